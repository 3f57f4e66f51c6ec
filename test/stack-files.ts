// Test support: temporary copies of Pulumi.prod.yaml with a change applied, synthesized the way
// `npm run synth` does. Whole-stack tests (flip `active`, step a migration phase) use these so
// they exercise exactly the file operators edit.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse, stringify } from "yaml";
import { Deployment, synthesize } from "../scripts/offline-synth";

/** The repository root (compiled tests run from dist/test). */
export const PROJECT_DIR = path.resolve(__dirname, "..", "..");

/** A stack file's config, as tests edit it (arbitrary YAML, so loosely typed on purpose). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type StackConfigDoc = Record<string, any>;
type StackDoc = { config: StackConfigDoc };

/** The prod stack file as an object. */
export function readProdStack(): StackDoc {
  return parse(fs.readFileSync(path.join(PROJECT_DIR, "Pulumi.prod.yaml"), "utf8")) as StackDoc;
}

/** Writes a copy of the prod stack file with `edit` applied; returns its path. */
export function writeStackFile(edit: (config: StackConfigDoc) => void = () => {}): string {
  const doc = readProdStack();
  edit(doc.config);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-stack-"));
  const file = path.join(dir, "Pulumi.prod.yaml");
  fs.writeFileSync(file, stringify(doc));
  return file;
}

/** Synth of prod with `edit` applied to its config (and an optional previous state). */
export async function synthProd(
  edit?: (config: StackConfigDoc) => void,
  previous?: Deployment,
): Promise<Deployment> {
  return synthesize({
    projectDir: PROJECT_DIR,
    stack: "prod",
    stackFile: writeStackFile(edit),
    previous,
  });
}
