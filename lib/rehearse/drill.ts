// The shell every rehearsal drill shares (flags, progress, cleanup on signals, verdict, JSON
// line) and the drill registry. Drill modules live beside this file as lib/rehearse/<drill>.ts (or
// lib/rehearse/<drill>/index.ts) and load lazily, so one drill's missing binaries never stop another.
import * as fs from "fs";
import * as net from "net";
import * as path from "path";

/** Known drills and what each proves. */
export const DRILLS: Record<string, string> = {
  mysql:
    "kill the MySQL/MariaDB primary under load, fail over, fall back; zero acknowledged writes lost",
  backup: "back up to the primary NAS, replicate to the standby NAS, restore and compare checksums",
  stack:
    "boot every server of the synth from its exact user-data as a container, wired as on AWS; check services and flows",
};

export function usage(): string {
  return [
    "usage: npm run rehearse -- <drill> [flags]   (<drill> --help for its flags)",
    ...Object.entries(DRILLS).map(([name, what]) => `  ${name.padEnd(8)} ${what}`),
  ].join("\n");
}

/** Absolute path of a binary on PATH or in the sbin directories, else undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin", "/usr/bin"]);
  for (const dir of dirs) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** A free TCP port on 127.0.0.1 (bound, then released; the race is harmless on loopback). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Bad flags for a drill: the CLI prints the message and the drill's usage, exit 2. */
export class DrillUsageError extends Error {}

/** What a drill module provides; `runDrill` is the command-line shell around it. */
export interface Drill<Options> {
  usage: string;
  /** Parses the drill's flags; throws DrillUsageError for bad ones. */
  parseArgs(args: string[]): Options & { help?: boolean };
  /** Runs the drill, logging progress; `summary` is the JSON line printed last on stdout. */
  run(
    options: Options,
    log: (line: string) => void,
  ): Promise<{ passed: boolean; problems: string[]; summary: string }>;
  /** Stops the drill's daemons and removes its files, synchronously (signals, exit). */
  cleanupSync(): void;
}

/**
 * The shell every drill shares: flags (exit 2 when bad), --help, progress on stderr, cleanup
 * on SIGINT/SIGTERM (exit 130/143) and at exit, the problems, PASSED/FAILED and the JSON line.
 * Exit 0 when the drill passed, 1 when not.
 */
export async function runDrill<Options>(
  name: string,
  drill: Drill<Options>,
  args: string[],
): Promise<number> {
  let options: Options & { help?: boolean };
  try {
    options = drill.parseArgs(args);
  } catch (e) {
    if (e instanceof DrillUsageError) {
      process.stderr.write(`rehearse ${name}: ${e.message}\n${drill.usage}\n`);
      return 2;
    }
    throw e;
  }
  if (options.help) {
    process.stdout.write(drill.usage + "\n");
    return 0;
  }
  const log = (line: string): void => {
    process.stderr.write(`rehearse ${name}: ${line}\n`);
  };
  // An interrupted drill must not leave daemons or temp dirs behind.
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping the drill's servers and removing its files`);
    drill.cleanupSync();
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  const onExit = (): void => drill.cleanupSync();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.once("exit", onExit);
  try {
    const result = await drill.run(options, log);
    for (const p of result.problems) {
      log(`PROBLEM: ${p}`);
    }
    log(result.passed ? "PASSED" : "FAILED");
    process.stdout.write(result.summary + "\n");
    return result.passed ? 0 : 1;
  } catch (e) {
    log(`FAILED: ${(e as Error).message}`);
    return 1;
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    process.removeListener("exit", onExit);
  }
}

interface DrillModule {
  main?: (args: string[]) => Promise<number>;
}

/** Resolves a drill name to its module's entry point; throws a message for unknown names. */
export function loadDrill(name: string | undefined): (args: string[]) => Promise<number> {
  if (name === undefined || !Object.prototype.hasOwnProperty.call(DRILLS, name)) {
    throw new Error(
      `${name === undefined ? "no drill given" : `unknown drill ${JSON.stringify(name)}`}: expected one of ${Object.keys(DRILLS).join(", ")}`,
    );
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(path.join(__dirname, name)) as DrillModule;
  if (typeof mod.main !== "function") {
    throw new Error(`lib/rehearse/${name}.ts does not export main(args): Promise<number>`);
  }
  return mod.main;
}
