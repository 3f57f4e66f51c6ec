// npm run synth -- --stack NAME [--out FILE] [--previous FILE] [--stack-file FILE]
// The main job without an AWS account: the desired state of a stack, as `pulumi stack export`
// would show it after `pulumi up`, computed offline under the SDK's mock runtime.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { readDeployment, synthesize, SynthInputError } from "../lib/synth/offline-synth";
import { PACKAGE_ROOT } from "../lib/package-root";

const USAGE = `usage: npm run synth -- --stack NAME [--out FILE] [--previous FILE] [--stack-file FILE]
  --stack NAME       stack to synthesize (reads Pulumi.NAME.yaml)
  --out FILE         write the deployment JSON here (default: standard output)
  --previous FILE    the stack's last state (an earlier synth or \`pulumi stack export\`): enables
                     the checks that compare with it, e.g. one migration phase at a time
  --stack-file FILE  read config from FILE instead of Pulumi.NAME.yaml`;

interface Flags {
  stack: string;
  out?: string;
  previous?: string;
  stackFile?: string;
}

export function parseFlags(argv: string[]): Flags {
  const flags: Partial<Flags> = {};
  const names: Record<string, keyof Flags> = {
    "--stack": "stack",
    "--out": "out",
    "--previous": "previous",
    "--stack-file": "stackFile",
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") {
      throw new UsageError("");
    }
    const [flag, inline] = arg.split("=", 2);
    const key = names[flag];
    if (!key) {
      throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
    }
    const value = inline ?? argv[++i];
    if (value === undefined || value.startsWith("--")) {
      throw new UsageError(`${flag} needs a value`);
    }
    flags[key] = value;
  }
  if (!flags.stack) {
    throw new UsageError("--stack NAME is required");
  }
  return flags as Flags;
}

class UsageError extends Error {}

async function main(): Promise<number> {
  let flags: Flags;
  try {
    flags = parseFlags(process.argv.slice(2));
  } catch (e) {
    const msg = (e as Error).message;
    process.stderr.write(msg ? `synth: ${msg}\n${USAGE}\n` : `${USAGE}\n`);
    return msg ? 2 : 0;
  }
  const projectDir = PACKAGE_ROOT;
  try {
    const started = Date.now();
    const previous = flags.previous ? readDeployment(flags.previous) : undefined;
    process.stderr.write(
      `synth: stack ${flags.stack}${previous ? ` (previous state: ${flags.previous})` : ""}\n`,
    );
    const deployment = await synthesize({
      projectDir,
      stack: flags.stack,
      stackFile: flags.stackFile,
      previous,
    });
    const text = JSON.stringify(deployment, null, 2) + "\n";
    if (flags.out) {
      fs.mkdirSync(path.dirname(path.resolve(flags.out)), { recursive: true });
      fs.writeFileSync(flags.out, text);
    } else {
      process.stdout.write(text);
    }
    const count = deployment.deployment.resources.length;
    process.stderr.write(
      `synth: ${count} resources in ${((Date.now() - started) / 1000).toFixed(2)} s${flags.out ? ` → ${flags.out}` : ""}\n`,
    );
    return 0;
  } catch (e) {
    if (e instanceof SynthInputError || pulumi.RunError.isInstance(e)) {
      process.stderr.write(`synth: ${(e as Error).message}\n`);
      return 1;
    }
    throw e;
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`synth: unexpected failure: ${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
