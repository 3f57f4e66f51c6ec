// npm run synth -- --stack NAME [--out FILE] [--previous FILE] [--stack-file FILE] [--policy]
// The desired state of a stack without an AWS account (lib/synth/synth-command.ts).
import { exitWith, parseFlags, runTool, stringFlag, UsageError } from "../lib/cli/flags";
import { PACKAGE_ROOT } from "../lib/package-root";

const USAGE = `usage: npm run synth -- --stack NAME [--out FILE] [--previous FILE] [--stack-file FILE] [--policy]
  --stack NAME       stack to synthesize (reads Pulumi.NAME.yaml)
  --out FILE         write the deployment JSON here, atomically (default: standard output)
  --previous FILE    the stack's last state (an earlier synth or \`pulumi stack export\`): enables
                     the checks that compare with it, e.g. one migration phase at a time
  --stack-file FILE  read config from FILE instead of Pulumi.NAME.yaml
  --policy           check the desired state against the security policy pack (policy/): every
                     violation listed, exit 1, nothing written
exit: 0 written, 1 bad stack, config or state file, 2 bad flags or output path`;

function main(argv: string[]): Promise<number> {
  return runTool("synth", USAGE, async () => {
    const { values } = parseFlags(argv, {
      stack: { type: "string" },
      out: { type: "string" },
      previous: { type: "string" },
      "stack-file": { type: "string" },
      policy: { type: "boolean" },
    });
    const stack = stringFlag(values, "stack");
    if (!stack) {
      throw new UsageError("--stack NAME is required");
    }
    // Loaded after the flags: --help and a bad flag answer without loading the Pulumi SDK.
    const { runSynth } = await import("../lib/synth/synth-command");
    await runSynth({
      projectDir: PACKAGE_ROOT,
      stack,
      out: stringFlag(values, "out"),
      previous: stringFlag(values, "previous"),
      stackFile: stringFlag(values, "stack-file"),
      policy: values.policy === true,
      log: (line) => process.stderr.write(line + "\n"),
      print: (text) => process.stdout.write(text),
    });
    return 0;
  });
}

if (require.main === module) {
  exitWith("synth", main(process.argv.slice(2)));
}
