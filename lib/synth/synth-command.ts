// What `npm run synth` does once its flags are parsed (scripts/synth.ts): read the previous
// state, synthesize, say loudly which checks could not run, write the deployment atomically.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { CliError } from "../cli/flags";
import { checkResources, formatViolations, PolicyInput } from "../../policy/rules";
import { checkFileTarget, writeFileAtomic } from "../cli/output";
import {
  readPreviousState,
  stackOutputsOf,
  synthesize,
  SynthInputError,
  Deployment,
} from "./offline-synth";

export interface SynthCommand {
  /** Folder with Pulumi.yaml and the stack files. */
  projectDir: string;
  stack: string;
  /** Defaults to standard output. */
  out?: string;
  previous?: string;
  /** Defaults to <projectDir>/Pulumi.<stack>.yaml. */
  stackFile?: string;
  /** Check the desired state against the policy pack (policy/rules.ts). Defaults to false. */
  policy?: boolean;
  /** Progress and warnings (stderr). */
  log: (line: string) => void;
  /** The deployment when there is no --out (stdout). */
  print: (text: string) => void;
}

/** The migration phase a deployment applied, from its stack outputs. */
export function migrationPhaseOf(d: Deployment): number | undefined {
  const services = stackOutputsOf(d).services as
    { mail?: { migrationPhase?: unknown } } | undefined;
  const phase = services?.mail?.migrationPhase;
  return typeof phase === "number" ? phase : undefined;
}

/**
 * Runs the synth. Throws CliError: exit 1 for a bad stack, config or previous file (the
 * message names the key or path), 2 for an output path that cannot take the file.
 */
export async function runSynth(c: SynthCommand): Promise<void> {
  const started = Date.now();
  const stackFile = c.stackFile ?? path.join(c.projectDir, `Pulumi.${c.stack}.yaml`);
  const target = c.out
    ? { flag: "--out", path: c.out, inputs: [stackFile, ...(c.previous ? [c.previous] : [])] }
    : undefined;
  if (target) {
    checkFileTarget(target); // before the work: a bad --out fails in a second, not after it
  }
  let deployment: Deployment;
  let inspected: PolicyInput[] = [];
  try {
    const previous = c.previous ? readPreviousState(c.previous) : undefined;
    c.log(`synth: stack ${c.stack}${previous ? ` (previous state: ${c.previous})` : ""}`);
    deployment = await synthesize({
      projectDir: c.projectDir,
      stack: c.stack,
      stackFile: c.stackFile,
      previous,
      inspect: c.policy ? (resources) => (inspected = resources) : undefined,
    });
  } catch (e) {
    if (e instanceof SynthInputError || pulumi.RunError.isInstance(e)) {
      throw new CliError((e as Error).message, 1);
    }
    throw e;
  }
  if (c.policy) {
    const violations = checkResources(inspected);
    if (violations.length > 0) {
      throw new CliError(
        `${violations.length} policy violation(s) (policy/rules.ts), nothing written:\n${formatViolations(violations)}`,
        1,
      );
    }
    c.log(`synth: policy pack: ${inspected.length} resources, no violation`);
  }
  const phase = migrationPhaseOf(deployment);
  if (!c.previous && phase !== undefined && phase > 0) {
    c.log(
      `synth: WARNING: the one-phase-at-a-time check of hastack:mail.migration.phase (${phase}) was SKIPPED: ` +
        `no --previous state to compare with. Give the last synth or \`pulumi stack export\` with --previous FILE; ` +
        `\`pulumi up\` compares with the stack's own previous outputs.`,
    );
  }
  const text = JSON.stringify(deployment, null, 2) + "\n";
  if (target) {
    writeFileAtomic(target, text);
  } else {
    c.print(text);
  }
  const count = deployment.deployment.resources.length;
  c.log(
    `synth: ${count} resources in ${((Date.now() - started) / 1000).toFixed(2)} s${c.out ? ` → ${c.out}` : ""}`,
  );
}
