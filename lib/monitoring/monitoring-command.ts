// What `npm run monitoring` does once its flags are parsed (scripts/monitoring.ts): read the
// stack outputs, render every file, and replace the output directory as a whole — a failure
// part-way leaves the old directory exactly as it was (issue 15).
import * as fs from "fs";
import { CliError } from "../cli/flags";
import { checkDirectoryTarget, writeDirectoryAtomic } from "../cli/output";
import {
  isMonitoringFile,
  MonitoringInputError,
  MonitoringOptions,
  readMonitoringOutputs,
  renderMonitoring,
} from "./monitoring-export";

export interface MonitoringCommand extends MonitoringOptions {
  /** `pulumi stack output --json`, or a synth / stack export file. */
  from: string;
  /** The directory to (re)place. */
  out: string;
  log: (line: string) => void;
}

/** Runs the export; throws CliError (exit 2) for bad input or an output it cannot write. */
export function runMonitoring(c: MonitoringCommand): void {
  const target = { flag: "--out", path: c.out, inputs: [c.from] };
  checkDirectoryTarget(target);
  let doc: unknown;
  try {
    doc = JSON.parse(fs.readFileSync(c.from, "utf8"));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new CliError(
      `--from ${c.from}: ${err.code ? `cannot read (${err.code})` : `not valid JSON (${err.message})`}`,
    );
  }
  let files: Record<string, string>;
  try {
    const outputs = readMonitoringOutputs(doc, c.from);
    for (const w of outputs.warnings ?? []) {
      c.log(`monitoring: WARNING: ${w}`);
    }
    files = renderMonitoring(outputs, c);
  } catch (e) {
    if (e instanceof MonitoringInputError) {
      throw new CliError(`--from ${e.message}`);
    }
    throw e;
  }
  // Targets of a service that is gone must not linger: file_sd would keep probing them.
  const removed = writeDirectoryAtomic(target, files, isMonitoringFile);
  for (const rel of removed) {
    c.log(`monitoring: removed stale ${rel}`);
  }
  for (const rel of Object.keys(files)) {
    c.log(`monitoring: wrote ${c.out}/${rel}`);
  }
}
