// The pure parts of the pbx drill (drills/pbx.ts, issue 12 item 3): what it writes into the
// replicated set, how it reads FreePBX's own database settings, what the activation must have
// asked FreePBX for, and the RTO from the answers at the service address. No I/O: tested
// directly (test/lib/rehearse/drills-pbx.test.ts).
import { ComparisonPoint } from "../../../../components/pbx-replicated-set";

/** The name every piece of drill data carries, so cleanup finds exactly what the drill wrote. */
export const DRILL_MARK = "hastack-drill";

/** A file the drill writes under a tree point (path relative to the tree). */
export interface SeedFile {
  rel: string;
  content: string;
}

/**
 * What the drill writes into a tree point for `round` (1: on the primary before the switch, 2: on
 * the standby while it serves): a few files in a directory of the drill's own, one nested. The
 * directory is `DRILL_MARK-<run>`, removed afterwards.
 */
export function treeSeed(point: { key: string }, run: string, round: number): SeedFile[] {
  const dir = `${DRILL_MARK}-${run}`;
  return [
    { rel: `${dir}/round${round}-${point.key}.txt`, content: `${point.key} ${run} ${round}\n` },
    {
      rel: `${dir}/nested/round${round}-${point.key}.bin`,
      content: `${"x".repeat(4096 + round)}${run}\n`,
    },
  ];
}

/**
 * Where the drill writes a file the sync must NOT carry (the first exclude of the point that is
 * a directory: /var/spool/asterisk/tmp/): undefined when the point excludes no directory.
 */
export function excludedSeed(
  point: Extract<ComparisonPoint, { kind: "tree" }>,
  run: string,
): string | undefined {
  const dir = point.excludes.find((e) => e.endsWith("/"));
  return dir === undefined
    ? undefined
    : `${dir.replace(/^\/+/, "")}${DRILL_MARK}-${run}-must-not-sync.txt`;
}

/** astdb-style keys the drill writes into a SQLite point in `round` (call forward, DND…). */
export function sqliteSeed(run: string, round: number): [string, string][] {
  return [
    [`/${DRILL_MARK}/${run}/CF/${1000 + round}`, `08110000${round}`],
    [`/${DRILL_MARK}/${run}/DND/${1000 + round}`, "YES"],
  ];
}

/** A SQLite point's file: the path itself, or its glob with `*` standing for the drill's name. */
export function sqliteFile(point: Extract<ComparisonPoint, { kind: "sqlite" }>): string {
  return point.path.replace("*", DRILL_MARK);
}

/** The table the drill writes into a database point. */
export const DRILL_TABLE = "hastack_drill";

/** FreePBX's own database settings, as /etc/freepbx.conf gives them to FreePBX. */
export interface FreepbxDbSettings {
  user: string;
  host: string;
  port: number;
  database: string;
  /** The file AMPDBPASS is read from (never the password itself). */
  passwordFile: string;
}

/**
 * Reads AMPDBUSER/HOST/PORT/NAME and the password file from /etc/freepbx.conf (hastack's
 * server/pbx/freepbx.conf); throws naming every key that is missing.
 */
export function parseFreepbxConf(text: string): FreepbxDbSettings {
  const value = (key: string): string | undefined =>
    new RegExp(`\\$amp_conf\\['${key}'\\]\\s*=\\s*'([^']*)'`).exec(text)?.[1];
  const passwordFile =
    /\$amp_conf\['AMPDBPASS'\]\s*=\s*trim\(file_get_contents\('([^']+)'\)\)/.exec(text)?.[1];
  const got = {
    AMPDBUSER: value("AMPDBUSER"),
    AMPDBHOST: value("AMPDBHOST"),
    AMPDBPORT: value("AMPDBPORT"),
    AMPDBNAME: value("AMPDBNAME"),
    "AMPDBPASS (file)": passwordFile,
  };
  const missing = Object.entries(got)
    .filter(([, v]) => !v)
    .map(([k]) => k);
  if (missing.length > 0) {
    throw new Error(`/etc/freepbx.conf: no ${missing.join(", ")}`);
  }
  return {
    user: got.AMPDBUSER!,
    host: got.AMPDBHOST!,
    port: Number(got.AMPDBPORT),
    database: got.AMPDBNAME!,
    passwordFile: passwordFile!,
  };
}

/**
 * What the activation must have asked of the PBX's own tools, in order: stop Asterisk before
 * installing the shipped databases, start it after, then (FreePBX) reload. `calls` are the
 * stand-in's records, one argument list per call. Returns the problems (empty: as designed).
 */
export function activationProblems(
  calls: string[],
  o: { stop: string; start: string; reload?: string; installed: boolean },
): string[] {
  const want = [...(o.installed ? [o.stop, o.start] : []), ...(o.reload ? [o.reload] : [])];
  return JSON.stringify(calls) === JSON.stringify(want)
    ? []
    : [
        `the activation asked for ${calls.length ? calls.map((c) => `"${c}"`).join(", ") : "nothing"}; expected ${want.map((c) => `"${c}"`).join(", ")}`,
      ];
}

/** One probe of the service address: when, and which server answered (undefined: none). */
export interface Answer {
  at: number;
  server?: string;
}

/**
 * From the probes of the service address during a switch started at `from` (ms): seconds until
 * `to` first answered (null: never), and the longest span in which nobody answered (from the
 * last answer before it to the first after; a probe that failed counts as no answer).
 */
export function switchFigures(
  answers: Answer[],
  from: number,
  to: string,
): { rtoSeconds: number | null; longestSilenceSeconds: number } {
  const first = answers.find((a) => a.at >= from && a.server === to);
  let longest = 0;
  let lastAnswered: number | undefined;
  for (const a of answers) {
    if (a.server === undefined) {
      continue;
    }
    if (lastAnswered !== undefined) {
      longest = Math.max(longest, a.at - lastAnswered);
    }
    lastAnswered = a.at;
  }
  const round = (ms: number): number => Math.round(ms / 100) / 10;
  return {
    rtoSeconds: first ? round(first.at - from) : null,
    longestSilenceSeconds: round(longest),
  };
}
