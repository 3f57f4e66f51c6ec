// The pure parts of the nas drill (drills/nas.ts, issue 12 item 4): reading the NAS's job env
// files as the scripts source them, and which source each job backs up. No I/O: tested
// directly (test/lib/rehearse/drills-nas.test.ts).

/** A NAS job's env file (components/backup-jobs.ts renderJobEnv), by key. */
export type JobEnv = Record<string, string | undefined>;

/**
 * Reads an env file written by envFile (components/server-files.ts): `KEY=value` lines, the
 * value bare or single-quoted with `'\''` for a quote. Throws naming the line it cannot read.
 */
export function parseEnvFile(text: string): JobEnv {
  const out: JobEnv = {};
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "" || line.startsWith("#")) {
      return;
    }
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) {
      throw new Error(`env line ${i + 1} is not KEY=value: ${JSON.stringify(line)}`);
    }
    const raw = m[2];
    if (!raw.startsWith("'")) {
      out[m[1]] = raw;
      return;
    }
    const q = /^'((?:[^']|'\\'')*)'$/.exec(raw);
    if (!q) {
      throw new Error(`env line ${i + 1}: unbalanced quotes in ${JSON.stringify(line)}`);
    }
    out[m[1]] = q[1].replace(/'\\''/g, "'");
  });
  return out;
}

/** The NAS's jobs by the service they back up (BACKUP_SERVICE: mail, mysql, pbx). */
export function nasJobSources(jobs: JobEnv[]): Map<string, JobEnv[]> {
  const out = new Map<string, JobEnv[]>();
  for (const j of jobs) {
    const s = j.BACKUP_SERVICE ?? "unknown";
    out.set(s, [...(out.get(s) ?? []), j]);
  }
  return out;
}
