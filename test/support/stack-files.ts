// Test support: synth of Pulumi.prod.yaml with a change applied, the way `npm run synth` does.
// Whole-stack tests (flip `active`, step a migration phase) use these so they exercise exactly
// the file operators edit.
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import {
  Deployment,
  StackConfigDoc,
  synthesizeEdited,
  writeEditedStackFile,
} from "../../lib/synth/offline-synth";
import { PACKAGE_ROOT } from "../../lib/package-root";

export { StackConfigDoc };

/** The repository root (compiled tests run from dist/test). */
export const PROJECT_DIR = PACKAGE_ROOT;

/** The prod stack file as an object. */
export function readProdStack(): { config: StackConfigDoc } {
  return parse(fs.readFileSync(path.join(PROJECT_DIR, "Pulumi.prod.yaml"), "utf8"));
}

/**
 * The prod config as index.ts hands it to parseStackConfig: hastack:* keys without namespace,
 * `region` from aws:region, and an SSH key (which the stack file holds as a secure value).
 */
export function prodConfigRaw(): StackConfigDoc {
  const raw: StackConfigDoc = {};
  for (const [key, value] of Object.entries(readProdStack().config)) {
    if (key === "aws:region") {
      raw.region = value;
    } else if (key.startsWith("hastack:")) {
      raw[key.slice("hastack:".length)] = value;
    }
  }
  raw.sshPrivateKey = "-----BEGIN OPENSSH PRIVATE KEY----- very secret";
  return raw;
}

// The directories writeStackFile made, removed when the test process exits (the suite made ~300
// of them per run in /tmp before).
const written: string[] = [];
process.once("exit", () => {
  for (const dir of written) {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Writes a copy of the prod stack file with `edit` applied; returns its path. The copy lives until
 * the test process exits.
 */
export function writeStackFile(edit: (config: StackConfigDoc) => void = () => {}): string {
  const file = writeEditedStackFile(PROJECT_DIR, "prod", edit);
  written.push(path.dirname(file));
  return file;
}

/** Synth of prod with `edit` applied to its config (and an optional previous state). */
export async function synthProd(
  edit: (config: StackConfigDoc) => void = () => {},
  previous?: Deployment,
): Promise<Deployment> {
  return synthesizeEdited({ projectDir: PROJECT_DIR, stack: "prod", edit, previous });
}

/**
 * What a flip of `active` may change — the switch and nothing else: DNS records, the service
 * EIP association, the role-change commands, and the active-side parameter servers read at boot
 * (so a rebooted old primary comes back read-only, never as a second writer).
 */
export function isSwitchResource(urn: string, type: string): boolean {
  return (
    type === "aws:route53/record:Record" ||
    type === "aws:ec2/eipAssociation:EipAssociation" ||
    type === "command:remote:Command" ||
    (type === "aws:ssm/parameter:Parameter" && urn.endsWith("-active-side"))
  );
}
