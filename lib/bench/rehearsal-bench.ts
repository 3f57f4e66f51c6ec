// `npm run bench -- --rehearsal warm|cold` (issue 11's speed targets): the whole-stack rehearsal
// booted and checked once, timed, against its targets — warm (base image cached) ≤ 300 s, cold
// (image built first, into an empty cache) ≤ 900 s, 8 servers on the machine's cores. It runs the
// rehearsal command itself (`rehearse stack --drills none`) under its own state directory, so a
// stack kept up under the default one is never touched; the machine's rehearsal lock keeps it
// from sharing the cores with another rehearsal. Needs root, like the rehearsal.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PACKAGE_ROOT } from "../package-root";

export type RehearsalMode = "warm" | "cold";

/** Seconds the issue allows: booted and checked, 8 servers, 2 cores. */
export const REHEARSAL_TARGET_SECONDS: Record<RehearsalMode, number> = { warm: 300, cold: 900 };

export const REHEARSAL_STATE_DIR = "/var/lib/hastack-rehearsal-bench";

export interface RehearsalFigures {
  mode: RehearsalMode;
  /** Wall clock of the whole command: image (cold), boot, checks, teardown. */
  seconds: number;
  /** The rehearsal's own figure (boot + checks), from its JSON line. */
  rehearsalSeconds: number | null;
  servers: number | null;
  booted: number | null;
  passed: boolean;
  timings: Record<string, unknown>;
  cores: number;
  loadBefore: number;
  loadAfter: number;
  targetSeconds: number;
}

/** The last stdout line of the rehearsal as its summary, or null when it printed none. */
export function readRehearsalSummary(stdout: string): Record<string, unknown> | null {
  const last = stdout.trim().split("\n").pop() ?? "";
  try {
    const v: unknown = JSON.parse(last);
    return v !== null && typeof v === "object" ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The verdict on one run: passed (booted clean) and within the target. */
export function rehearsalCheck(f: RehearsalFigures): { name: string; ok: boolean; detail: string } {
  const what = f.mode === "warm" ? "image cached" : "image built first";
  const load = `load ${f.loadBefore.toFixed(1)} → ${f.loadAfter.toFixed(1)} on ${f.cores} cores`;
  return {
    name: `whole-stack rehearsal ${f.mode} (${what}) within ${f.targetSeconds} s`,
    ok: f.passed && f.seconds <= f.targetSeconds,
    detail: f.passed
      ? `${f.seconds} s, ${f.booted}/${f.servers} booted (${load})`
      : `the rehearsal failed after ${f.seconds} s (${f.booted ?? 0}/${f.servers ?? "?"} booted; ${load}): see its output above`,
  };
}

/** Runs the rehearsal once in `mode`; its progress goes to `log`. */
export async function benchRehearsal(o: {
  mode: RehearsalMode;
  lockWait: number;
  log: (line: string) => void;
}): Promise<RehearsalFigures> {
  // Cold: an empty cache of its own, so the base image is built as on a fresh machine, and
  // removed after; the machine's cache is left as it was.
  const cache =
    o.mode === "cold" ? fs.mkdtempSync(path.join(os.tmpdir(), "hastack-bench-cache-")) : undefined;
  const loadBefore = os.loadavg()[0];
  const started = Date.now();
  try {
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>(
      (resolve, reject) => {
        const child = spawn(
          process.execPath,
          [
            path.join(PACKAGE_ROOT, "dist", "scripts", "rehearse.js"),
            "stack",
            "--drills",
            "none",
            "--lock-wait",
            String(o.lockWait),
          ],
          {
            stdio: ["ignore", "pipe", "pipe"],
            env: {
              ...process.env,
              HASTACK_REHEARSAL_DIR: REHEARSAL_STATE_DIR,
              ...(cache ? { HASTACK_CACHE_DIR: cache } : {}),
            },
          },
        );
        let out = "";
        let partial = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.stderr.on("data", (d: Buffer) => {
          const lines = (partial + d.toString()).split("\n");
          partial = lines.pop() ?? "";
          for (const l of lines) {
            o.log(`  ${l}`);
          }
        });
        // Ctrl-C reaches the child too (same process group): it removes what it made.
        child.on("error", reject);
        child.on("close", (c) => resolve({ code: c, stdout: out }));
      },
    );
    const s = readRehearsalSummary(stdout) ?? {};
    const num = (v: unknown): number | null => (typeof v === "number" ? v : null);
    return {
      mode: o.mode,
      seconds: Math.round((Date.now() - started) / 1000),
      rehearsalSeconds: num(s.seconds),
      servers: num(s.servers),
      booted: num(s.booted),
      passed: code === 0,
      timings: (s.timings as Record<string, unknown>) ?? {},
      cores: os.cpus().length,
      loadBefore,
      loadAfter: os.loadavg()[0],
      targetSeconds: REHEARSAL_TARGET_SECONDS[o.mode],
    };
  } finally {
    if (cache) {
      fs.rmSync(cache, { recursive: true, force: true });
    }
  }
}
