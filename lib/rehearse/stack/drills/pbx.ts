// The pbx drill on the booted stack (issue 12 item 3, issue 16): known data goes into every
// point of the flavour's replicated set on the active PBX (components/pbx-replicated-set.ts
// comparisonPoints: each directory, astdb and any other SQLite database, FreePBX's database on
// the MySQL pair through FreePBX's own /etc/freepbx.conf); the stack's own sync unit (the one
// its timer starts, which pushes only from the server IMDS gives the service EIP) pushes it;
// `active: standby` is applied as `pulumi up` would (apply-run.ts: the stack's activation
// command over SSH, then the EIP move); the service address is probed from an admin address
// until the standby answers (rtoSeconds); every point is compared between the two servers. Then,
// as README's fallback says: more data on the standby while it serves, `hastack-pbx-sync final`
// back to the primary, `active: primary` applied (fallbackSeconds), every point compared again.
// The drill's data is removed from both servers and the MySQL pair at the end, whatever happened,
// and the stack is left at `active: primary`.
//
// Asterisk and FreePBX are not in Debian: the activation's `fwconsole stop|start|reload` reach a
// recording stand-in the drill puts on both PBX servers for its run (removed after); the drill
// checks the activation asked for them in the designed order, and names what it could not
// rehearse in notRehearsed. The service address is probed on SSH (22), not SIP (5060): no
// Asterisk listens on 5060 here.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { spawn } from "child_process";
import { parse as parseYaml } from "yaml";
import {
  ComparisonPoint,
  PBX_CONFIG_DATABASES,
  PBX_COPIES_DIR,
  PBX_FLAVOURS,
  PbxConfigDatabase,
  PbxFlavour,
  comparisonPoints,
  replicatedSet,
} from "../../../../components/pbx-replicated-set";
import { ASTERISK_CONTROL } from "../../../../components/pbx";
import { compareTrees, hashTree } from "../../backup";
import { Deployment } from "../../../synth/offline-synth";
import { PACKAGE_ROOT } from "../../../package-root";
import { ApplyTarget, bootedTarget, executePlan } from "../apply-run";
import { planApply } from "../apply";
import {
  DrillContext,
  DrillOutcome,
  DrillServer,
  inServer,
  refuseWithout,
  switchSynths,
  until,
} from "./container";
import {
  Answer,
  DRILL_MARK,
  DRILL_TABLE,
  activationProblems,
  excludedSeed,
  parseFreepbxConf,
  sqliteFile,
  sqliteSeed,
  switchFigures,
  treeSeed,
} from "./pbx-parts";

/** Where the stand-ins for FreePBX's and Elastix's tools record each call (per server). */
const STAND_IN_LOG = "/run/hastack-drill-pbx-tools.log";

/** The PBX's flavour and where FreePBX keeps its database, from the stack file. */
export function pbxSettingsOf(stack: string): {
  flavour: PbxFlavour;
  configDatabase: PbxConfigDatabase;
  sshUser: string;
} {
  const file = path.join(PACKAGE_ROOT, `Pulumi.${stack}.yaml`);
  const c =
    (parseYaml(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> }).config ?? {};
  const pbx = (c["hastack:pbx"] ?? {}) as { flavour?: string; configDatabase?: string };
  const flavour = (pbx.flavour ?? "freepbx") as PbxFlavour;
  const configDatabase = (pbx.configDatabase ?? "mysql-pair") as PbxConfigDatabase;
  if (!PBX_FLAVOURS.includes(flavour) || !PBX_CONFIG_DATABASES.includes(configDatabase)) {
    throw new Error(`${file}: hastack:pbx.flavour/configDatabase are not ones hastack knows`);
  }
  return { flavour, configDatabase, sshUser: String(c["hastack:sshUser"] ?? "admin") };
}

const rootOf = (s: DrillServer): string => `/proc/${s.leader}/root`;
const inRoot = (s: DrillServer, p: string): string => path.join(rootOf(s), p);

function sh(s: DrillServer, script: string, env: Record<string, string> = {}): string {
  return inServer(s, ["bash", "-c", script], env, 600_000);
}

/**
 * The stand-in for the tools the activation calls that Debian does not have (fwconsole,
 * amportal): records its arguments and succeeds. It does nothing a PBX would do.
 */
function standInScript(tool: string): string {
  return [
    "#!/bin/sh",
    `# hastack pbx drill: stand-in for ${tool} (not in Debian); records the call, does nothing else.`,
    `printf '%s\\n' "${tool} $*" >>${STAND_IN_LOG}`,
    "",
  ].join("\n");
}

/** The tools the flavour's activation calls by name, with the calls it should make. */
function activationTools(flavour: PbxFlavour): {
  tools: string[];
  stop: string;
  start: string;
  reload?: string;
} {
  const c = ASTERISK_CONTROL[flavour];
  return {
    tools: [...new Set([c.stop, c.start].map((x) => x.split(" ")[0]).concat(["fwconsole"]))],
    stop: c.stop,
    start: c.start,
    reload: flavour === "freepbx" ? "fwconsole reload" : undefined,
  };
}

/** A database point's client on `s`: FreePBX's own settings for the pair, root locally. */
function dbClient(
  s: DrillServer,
  point: Extract<ComparisonPoint, { kind: "database" }>,
): { argv: string[]; env: Record<string, string>; where: string } {
  if (point.where === "local") {
    return { argv: ["mariadb", "-N", "-B", point.database], env: {}, where: `${s.name} (local)` };
  }
  const conf = parseFreepbxConf(fs.readFileSync(inRoot(s, "/etc/freepbx.conf"), "utf8"));
  if (conf.database !== point.database) {
    throw new Error(
      `${s.name}: /etc/freepbx.conf names database ${conf.database}, the replicated set ${point.database}`,
    );
  }
  const password = fs.readFileSync(inRoot(s, conf.passwordFile), "utf8").trim();
  return {
    argv: [
      "mariadb",
      "--protocol=tcp",
      "-h",
      conf.host,
      "-P",
      String(conf.port),
      "-u",
      conf.user,
      "--connect-timeout=10",
      "-N",
      "-B",
      conf.database,
    ],
    env: { MYSQL_PWD: password },
    where: `${conf.user}@${conf.host} from ${s.name}`,
  };
}

function dbSql(
  s: DrillServer,
  point: Extract<ComparisonPoint, { kind: "database" }>,
  statement: string,
): string {
  const c = dbClient(s, point);
  return inServer(s, [...c.argv, "-e", statement], c.env);
}

/** One server's view of a point, for comparison: a hash per file / row set. */
function fingerprint(s: DrillServer, point: ComparisonPoint): Map<string, string> {
  switch (point.kind) {
    case "tree": {
      const root = inRoot(s, point.path);
      return fs.existsSync(root) ? hashTree(root, point.excludes) : new Map();
    }
    case "sqlite": {
      const file = inRoot(s, sqliteFile(point));
      if (!fs.existsSync(file)) {
        return new Map();
      }
      // Content, not bytes: the live file on each side (installed by the activation).
      const out = new Map<string, string>();
      const tables = inServer(s, [
        "sqlite3",
        "-readonly",
        sqliteFile(point),
        "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name",
      ])
        .split("\n")
        .filter(Boolean);
      for (const t of tables) {
        const rows = inServer(s, [
          "sqlite3",
          "-readonly",
          sqliteFile(point),
          `SELECT * FROM "${t}" ORDER BY 1`,
        ]);
        out.set(t, crypto.createHash("sha256").update(rows).digest("hex"));
      }
      const check = inServer(s, [
        "sqlite3",
        "-readonly",
        sqliteFile(point),
        "PRAGMA integrity_check",
      ]).trim();
      out.set("integrity_check", check);
      return out;
    }
    case "database": {
      const out = new Map<string, string>();
      for (const t of dbSql(s, point, "SHOW TABLES").split("\n").filter(Boolean)) {
        const n = dbSql(s, point, `SELECT COUNT(*) FROM \`${t}\``).trim();
        const sum = dbSql(s, point, `CHECKSUM TABLE \`${t}\` EXTENDED`).trim().split("\t")[1];
        out.set(t, `${n} rows, checksum ${sum}`);
      }
      return out;
    }
  }
}

/** Differences of every point between `a` and `b` (their fingerprints, backup.ts's comparison). */
function comparePoints(
  a: DrillServer,
  b: DrillServer,
  points: ComparisonPoint[],
): { compared: number; differences: string[] } {
  const differences: string[] = [];
  let compared = 0;
  for (const p of points) {
    const fa = fingerprint(a, p);
    compared += fa.size;
    differences.push(
      ...compareTrees(fa, fingerprint(b, p)).map(
        (d) => `${p.key}: ${d} on ${b.name} (vs ${a.name})`,
      ),
    );
  }
  return { compared, differences };
}

/** Probes the service address over SSH from the admin address until stopped. */
function probeAddress(o: { target: ApplyTarget; address: string; user: string; key: string }): {
  answers: Answer[];
  stop: () => Promise<void>;
} {
  const answers: Answer[] = [];
  let stopped = false;
  const once = (): Promise<Answer> =>
    new Promise((resolve) => {
      const at = Date.now();
      const argv = [
        ...(o.target.commandContext.via ?? []),
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        o.key,
        ...(o.target.commandContext.bindAddress ? ["-b", o.target.commandContext.bindAddress] : []),
        "-o",
        "BatchMode=yes",
        // Which server answered is read from its name; the host key is not what is measured.
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=3",
        "-o",
        "LogLevel=ERROR",
        `${o.user}@${o.address}`,
        "hostname",
      ];
      const c = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "ignore"] });
      let out = "";
      c.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const timer = setTimeout(() => c.kill("SIGKILL"), 8000);
      c.on("close", (code) => {
        clearTimeout(timer);
        resolve({ at, server: code === 0 && out.trim() ? out.trim() : undefined });
      });
    });
  const loop = (async () => {
    while (!stopped) {
      answers.push(await once());
      await new Promise((r) => setTimeout(r, 300));
    }
  })();
  return {
    answers,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

export interface PbxDrillResult {
  rtoSeconds: number | null;
  fallbackSeconds: number | null;
  longestSilenceSeconds: number;
  /** Points × servers compared, per round. */
  points: number;
  compared: number;
  mismatches: number;
  problems: string[];
  notRehearsed: string[];
}

/**
 * Runs the drill. `before`/`after`: the stack's synths with pbx `active: primary` and
 * `standby`; the rehearsal must be at `before`, and is left there.
 */
export async function pbxDrill(
  o: {
    target: ApplyTarget;
    before: Deployment;
    after: Deployment;
    region: string;
    flavour: PbxFlavour;
    configDatabase: PbxConfigDatabase;
    sshUser: string;
    adminKey: string;
    primary: DrillServer;
    standby: DrillServer;
  },
  log: (l: string) => void,
): Promise<PbxDrillResult> {
  const problems: string[] = [];
  const run = crypto.randomBytes(4).toString("hex");
  const points = comparisonPoints(replicatedSet(o.flavour, o.configDatabase));
  const servers = [o.primary, o.standby];
  const name = new Map(servers.map((s) => [s.name, inServer(s, ["hostname"]).trim()]));
  const tools = activationTools(o.flavour);
  const forward = planApply(o.before, o.after, { region: o.region });
  const back = planApply(o.after, o.before, { region: o.region });
  const eip = forward.steps.find((s) => s.kind === "eip");
  if (eip?.kind !== "eip") {
    throw new Error("`active: standby` moves no EIP in this stack (hastack:pbx.switchover: eip?)");
  }
  const address = eip.publicIp;
  let result: Omit<PbxDrillResult, "problems" | "notRehearsed"> = {
    rtoSeconds: null,
    fallbackSeconds: null,
    longestSilenceSeconds: 0,
    points: points.length,
    compared: 0,
    mismatches: 0,
  };
  // What existed before the drill, per server, so cleanup removes exactly what it made.
  const existed = new Map<string, boolean>();
  const made = (s: DrillServer, p: string): void => {
    const k = `${s.name}:${p}`;
    if (!existed.has(k)) {
      existed.set(k, fs.existsSync(inRoot(s, p)));
    }
  };
  const pathsOf = (p: ComparisonPoint): string[] =>
    p.kind === "tree" ? [p.path] : p.kind === "sqlite" ? [sqliteFile(p)] : [];
  for (const s of servers) {
    for (const p of points) {
      pathsOf(p).forEach((x) => made(s, x));
    }
    made(s, PBX_COPIES_DIR);
  }
  let atStandby = false;
  const findings: string[] = [];
  // FreePBX's settings come from /etc/freepbx.conf, which hastack-pbx-freepbx-db installs at boot
  // once FreePBX's account on the MySQL pair answers. The rehearsal creates that account with a
  // remote command after every server booted, so the boot script may have given up: run it
  // again (it is idempotent), and say so.
  if (points.some((p) => p.kind === "database" && p.where === "mysql-pair")) {
    for (const s of servers) {
      if (!fs.existsSync(inRoot(s, "/etc/freepbx.conf"))) {
        log(`${s.name}: no /etc/freepbx.conf; running hastack-pbx-freepbx-db again`);
        sh(s, "/usr/local/sbin/hastack-pbx-freepbx-db 2>&1", {
          ATTEMPTS: "12",
          RETRY_SECONDS: "5",
        });
        findings.push(
          `pbx: /etc/freepbx.conf was missing on ${s.name}: hastack-pbx-freepbx-db gave up at boot (FreePBX's account on the MySQL pair did not answer within its retries; the rehearsal creates it with a remote command after every server booted); the drill ran it again first`,
        );
      }
    }
  }

  const seed = (s: DrillServer, round: number): void => {
    for (const p of points) {
      if (p.kind === "tree") {
        for (const f of treeSeed(p, run, round)) {
          fs.mkdirSync(path.dirname(inRoot(s, path.join(p.path, f.rel))), { recursive: true });
          fs.writeFileSync(inRoot(s, path.join(p.path, f.rel)), f.content);
        }
        const excluded = round === 1 ? excludedSeed(p, run) : undefined;
        if (excluded) {
          fs.mkdirSync(path.dirname(inRoot(s, path.join(p.path, excluded))), { recursive: true });
          fs.writeFileSync(inRoot(s, path.join(p.path, excluded)), "must not sync\n");
        }
      } else if (p.kind === "sqlite") {
        const file = sqliteFile(p);
        fs.mkdirSync(path.dirname(inRoot(s, file)), { recursive: true });
        // Asterisk's own astdb schema (main/db.c); any SQLite point takes the same table.
        const rows = sqliteSeed(run, round)
          .map(([k, v]) => `INSERT OR REPLACE INTO astdb VALUES ('${k}', '${v}');`)
          .join(" ");
        inServer(s, [
          "sqlite3",
          file,
          `CREATE TABLE IF NOT EXISTS astdb (key VARCHAR(256), value VARCHAR(256), PRIMARY KEY(key)); ${rows}`,
        ]);
      } else {
        dbSql(
          s,
          p,
          `CREATE TABLE IF NOT EXISTS ${DRILL_TABLE} (id INT PRIMARY KEY, run CHAR(8) NOT NULL, ` +
            `round INT NOT NULL, note VARCHAR(64) NOT NULL) ENGINE=InnoDB; ` +
            `INSERT INTO ${DRILL_TABLE} VALUES ${[1, 2, 3]
              .map((i) => `(${round * 100 + i}, '${run}', ${round}, 'extension ${1000 + i}')`)
              .join(", ")};`,
        );
      }
    }
  };

  // Drill data that must be on a server after `round`s: seeded files, keys and rows present,
  // and the file seeded on the primary in an excluded directory never on the standby.
  const must = (rounds: number[], s: DrillServer, p: ComparisonPoint): string[] => {
    const out: string[] = [];
    if (p.kind === "tree") {
      const fp = fingerprint(s, p);
      for (const r of rounds) {
        for (const f of treeSeed(p, run, r)) {
          if (!fp.has(f.rel)) {
            out.push(`drill file ${p.path}/${f.rel} missing`);
          }
        }
      }
      const excluded = excludedSeed(p, run);
      if (excluded && s === o.standby && fs.existsSync(inRoot(s, path.join(p.path, excluded)))) {
        out.push(`${p.path}/${excluded} is excluded from the sync but was copied`);
      }
    } else if (p.kind === "sqlite") {
      const keys = fs.existsSync(inRoot(s, sqliteFile(p)))
        ? inServer(s, [
            "sqlite3",
            "-readonly",
            sqliteFile(p),
            `SELECT key FROM astdb WHERE key LIKE '/${DRILL_MARK}/${run}/%'`,
          ])
        : "";
      for (const r of rounds) {
        for (const [k] of sqliteSeed(run, r)) {
          if (!keys.split("\n").includes(k)) {
            out.push(`drill key ${k} missing from ${sqliteFile(p)}`);
          }
        }
      }
    } else {
      const got = dbSql(s, p, `SELECT DISTINCT round FROM ${DRILL_TABLE} WHERE run = '${run}'`);
      for (const r of rounds) {
        if (!got.split("\n").includes(String(r))) {
          out.push(`drill rows of round ${r} missing (read as ${dbClient(s, p).where})`);
        }
      }
    }
    return out;
  };

  const compareAll = (what: string, rounds: number[], kinds: ComparisonPoint["kind"][]): void => {
    const these = points.filter((p) => kinds.includes(p.kind));
    const r = comparePoints(o.primary, o.standby, these);
    const extra = these.flatMap((p) =>
      servers.flatMap((s) => must(rounds, s, p).map((d) => `${p.key}: ${d} on ${s.name}`)),
    );
    const found = [...r.differences, ...extra];
    result = {
      ...result,
      compared: result.compared + r.compared,
      mismatches: result.mismatches + found.length,
    };
    problems.push(...found.map((d) => `${what}: ${d}`));
    log(
      `${what}: ${these.length} points (${these.map((p) => p.key).join(", ")}), ${r.compared} files/tables compared, ${found.length} mismatches`,
    );
    for (const d of found.slice(0, 10)) {
      log(`  ${d}`);
    }
  };

  const syncLine = (s: DrillServer, command: string): string => {
    const out = sh(s, `${command} 2>&1`);
    log(`${s.name}: ${out.trim().split("\n").slice(-1)[0]}`);
    return out;
  };

  const switchTo = async (
    plan: ReturnType<typeof planApply>,
    to: DrillServer,
  ): Promise<{ seconds: number | null; silence: number }> => {
    fs.rmSync(inRoot(to, STAND_IN_LOG), { force: true });
    const probe = probeAddress({ target: o.target, address, user: o.sshUser, key: o.adminKey });
    await until(`an answer at ${address}:22`, 120, () =>
      probe.answers.some((a) => a.server) ? true : undefined,
    );
    const from = Date.now();
    log(`applying active: ${to === o.standby ? "standby" : "primary"} (pulumi up's steps)`);
    const applied = await executePlan(plan, o.target, (l) => log(l));
    if (!applied.ok) {
      problems.push(
        ...applied.steps.filter((s) => s.outcome === "failed").map((s) => `apply: ${s.error}`),
      );
    }
    try {
      await until(`${name.get(to.name)} answering at ${address}`, 300, () =>
        probe.answers.some((a) => a.at >= from && a.server === name.get(to.name))
          ? true
          : undefined,
      );
    } catch (e) {
      problems.push((e as Error).message);
    }
    await probe.stop();
    const f = switchFigures(probe.answers, from, name.get(to.name)!);
    log(
      `${address} answered by ${to.name} ${f.rtoSeconds ?? "never"} s after the apply started (longest span without an answer ${f.longestSilenceSeconds} s)`,
    );
    const calls = fs.existsSync(inRoot(to, STAND_IN_LOG))
      ? fs.readFileSync(inRoot(to, STAND_IN_LOG), "utf8").split("\n").filter(Boolean)
      : [];
    problems.push(
      ...activationProblems(calls, { ...tools, installed: true }).map(
        (p) => `activation on ${to.name}: ${p}`,
      ),
    );
    return { seconds: f.rtoSeconds, silence: f.longestSilenceSeconds };
  };

  try {
    for (const s of servers) {
      for (const t of tools.tools) {
        fs.writeFileSync(inRoot(s, `/usr/local/sbin/${t}`), standInScript(t), { mode: 0o755 });
      }
    }
    log(`run ${run}: drill data into ${points.map((p) => p.key).join(", ")} on ${o.primary.name}`);
    seed(o.primary, 1);
    // The stack's own sync: the unit its timer starts, run now instead of at the next interval.
    // It pushes only where hastack-is-active finds the service EIP among the server's public
    // addresses (IMDS public-ipv4s), as on AWS. A run the timer began before the data went in
    // would be joined, not repeated: wait for it first (bounded), then start a fresh one.
    const unit = "hastack-pbx-sync.service";
    await until(`${unit} on ${o.primary.name} not running`, 900, () =>
      sh(o.primary, `systemctl is-active ${unit} || true`).trim() === "activating"
        ? undefined
        : true,
    );
    const since = Math.floor(Date.now() / 1000) - 1;
    sh(o.primary, `systemctl start ${unit} || true`);
    const journal = sh(o.primary, `journalctl -u ${unit} -o cat --no-pager --since=@${since}`);
    const outcome = sh(o.primary, `systemctl show -p Result --value ${unit}`).trim();
    const said = journal.split("\n").filter((l) => l.startsWith("hastack-pbx-sync:"));
    log(`${o.primary.name}: ${unit} ${outcome}: ${said.slice(-1)[0] ?? journal.trim()}`);
    if (outcome !== "success" || !/pushed to /.test(journal)) {
      problems.push(`${unit} on ${o.primary.name} pushed nothing (${outcome}): ${journal.trim()}`);
    }
    // The SQLite points' live files change only at the activation: compared after the switch.
    compareAll("after the sync", [1], ["tree", "database"]);

    atStandby = true;
    const fwd = await switchTo(forward, o.standby);
    result = { ...result, rtoSeconds: fwd.seconds, longestSilenceSeconds: fwd.silence };
    compareAll("after the switch to the standby", [1], ["tree", "sqlite", "database"]);

    log(`more drill data on ${o.standby.name} while it serves`);
    seed(o.standby, 2);
    syncLine(o.standby, "/usr/local/sbin/hastack-pbx-sync final /etc/hastack/pbx-sync.env");
    const bck = await switchTo(back, o.primary);
    atStandby = false;
    result = {
      ...result,
      fallbackSeconds: bck.seconds,
      longestSilenceSeconds: Math.max(result.longestSilenceSeconds, bck.silence),
    };
    compareAll("after the fallback", [1, 2], ["tree", "sqlite", "database"]);
  } catch (e) {
    problems.push((e as Error).message);
  } finally {
    if (atStandby) {
      log("the drill stopped at the standby: applying active: primary to leave the stack as found");
      try {
        const r = await executePlan(back, o.target, (l) => log(l));
        if (!r.ok) {
          problems.push("could not apply active: primary again: the stack is left at standby");
        }
      } catch (e) {
        problems.push(`could not apply active: primary again: ${(e as Error).message}`);
      }
    }
    log("removing the drill's data and stand-ins from both PBX servers and the MySQL pair");
    for (const s of servers) {
      try {
        cleanup(s);
      } catch (e) {
        problems.push(`cleanup on ${s.name}: ${(e as Error).message}`);
      }
    }
  }

  function cleanup(s: DrillServer): void {
    for (const t of tools.tools) {
      fs.rmSync(inRoot(s, `/usr/local/sbin/${t}`), { force: true });
    }
    fs.rmSync(inRoot(s, STAND_IN_LOG), { force: true });
    for (const p of points) {
      if (p.kind === "database") {
        if (s === o.primary || p.where === "local") {
          dbSql(s, p, `DROP TABLE IF EXISTS ${DRILL_TABLE}`);
        }
        continue;
      }
      const target = pathsOf(p)[0];
      if (!existed.get(`${s.name}:${target}`)) {
        fs.rmSync(inRoot(s, target), { recursive: true, force: true });
        if (p.kind === "sqlite") {
          for (const j of ["-journal", "-wal", "-shm"]) {
            fs.rmSync(inRoot(s, target + j), { force: true });
          }
        }
      } else if (p.kind === "tree") {
        fs.rmSync(inRoot(s, path.join(p.path, `${DRILL_MARK}-${run}`)), {
          recursive: true,
          force: true,
        });
        const excluded = excludedSeed(p, run);
        if (excluded) {
          fs.rmSync(inRoot(s, path.join(p.path, excluded)), { force: true });
        }
      } else {
        inServer(s, [
          "sqlite3",
          target,
          `DELETE FROM astdb WHERE key LIKE '/${DRILL_MARK}/${run}/%'`,
        ]);
      }
    }
    if (!existed.get(`${s.name}:${PBX_COPIES_DIR}`)) {
      fs.rmSync(inRoot(s, PBX_COPIES_DIR), { recursive: true, force: true });
    }
  }

  return {
    ...result,
    problems,
    notRehearsed: [
      ...findings,
      `pbx: the service address ${address} is probed on SSH (22, admitted from the admin CIDRs through the same EIP and security group), the answering server read from its host name: no Asterisk listens on SIP 5060 here (Asterisk is not in Debian 12)`,
      `pbx: ${tools.tools.join(", ")} (FreePBX/Elastix, not in Debian): stand-ins the drill put on both PBX servers recorded what the activation asked (${[tools.stop, tools.start, tools.reload].filter(Boolean).join(", ")}; checked in that order) and did nothing else — Asterisk stopped and started, /etc/asterisk regenerated from FreePBX's database and phones re-registering are not rehearsed`,
    ],
  };
}

/** The drill as the registry runs it: `active: standby` for hastack:pbx and back. */
export async function runPbxDrill(ctx: DrillContext): Promise<DrillOutcome> {
  const need = ["pbx-primary", "pbx-standby"];
  const refused = refuseWithout(ctx, need);
  if (refused) {
    return refused;
  }
  const settings = pbxSettingsOf(ctx.stack);
  const { before, after } = await switchSynths(ctx.stack, "pbx");
  const target = await bootedTarget(ctx.stack, ctx.dir, ctx.settings);
  const r = await pbxDrill(
    {
      target,
      before,
      after,
      region: ctx.settings.region,
      ...settings,
      adminKey: path.join(ctx.dir, "admin-key"),
      primary: ctx.servers.get("pbx-primary")!,
      standby: ctx.servers.get("pbx-standby")!,
    },
    ctx.log,
  );
  return {
    figures: {
      rtoSeconds: r.rtoSeconds,
      mismatches: r.mismatches,
      fallbackSeconds: r.fallbackSeconds,
      longestSilenceSeconds: r.longestSilenceSeconds,
      points: r.points,
      compared: r.compared,
    },
    problems: r.problems,
    notRehearsed: r.notRehearsed,
  };
}
