// The mysql drill on the booted stack (issue 12): a user of the database — the PBX, the stack's
// own MySQL client — writes through db.internal.<domain> (resolved by the VPC's caching resolver
// inside the PBX container, as its CDR connection does), counting acknowledged ids, for the whole
// drill. Failover: the MySQL primary's container is killed (its PID 1 SIGKILLed: a power-off, not
// a shutdown); `active: standby` is applied as `pulumi up` would (apply-run.ts: the stack's own
// promotion command over SSH, then the record sets); the writer reconnects by name. rtoSeconds:
// from the kill to the first write acknowledged again.
//
// Fallback, as README's runbook says: the killed primary is booted again on its own disk and
// network (reboot.ts); it comes back fenced — read-only from its own boot-role intent (the SSM
// active side), its health agent latched unhealthy, the name still answering the standby, a
// write sent to it directly refused — and takes no traffic; `active: primary` is applied (the
// stack's hastack-mysql-fallback on the primary: it replicates from the active side, catches up,
// fences it and takes its last transactions; then the rejoin on the standby; the records move
// last). fallbackSeconds: from the start of that apply to the first write acknowledged by the
// primary again. At the end every acknowledged write is on both servers, CHECKSUM TABLE is equal
// on both for every table of the replicated databases, the drill's table and account are gone,
// and the stack is exactly where it was: its switch state is BEFORE's (apply-run.ts driftFrom)
// and both servers have the roles they had (read_only, replication source, semi-sync).
import * as crypto from "crypto";
import { Writer, stackMysqlSettings } from "../../mysql";
import {
  ApplyTarget,
  executePlan,
  liveSwitchState,
  rehearsalDrift,
  snapshotDiff,
  switchSnapshot,
} from "../apply-run";
import { planApply } from "../apply";
import { Deployment } from "../../../synth/offline-synth";
import { PACKAGE_ROOT } from "../../../package-root";
import {
  DrillContext,
  DrillOutcome,
  DrillServer,
  inServer,
  refuseWithout,
  switchSynths,
  until,
} from "./container";
import { bootedTarget } from "../apply-run";
import { bootServerAgain } from "../reboot";
import { readCheckerStatus } from "../standins";

export interface MysqlStackDrillResult {
  acknowledged: number;
  /** Acknowledged writes missing on either server at the end (null: not counted). */
  lost: number | null;
  rtoSeconds: number | null;
  /** Kill → `active: standby` applied. */
  applySeconds: number | null;
  /** The killed primary booted again until its systemd ran and sshd answered. */
  rebootSeconds: number | null;
  /** `active: primary` apply started → first write acknowledged by the primary again. */
  fallbackSeconds: number | null;
  /** The `active: primary` apply alone. */
  fallbackApplySeconds: number | null;
  /** Longest time without an acknowledged write during the fallback. */
  fallbackPauseSeconds: number | null;
  /** Tables compared with CHECKSUM TABLE, and those that differ (or exist on one side only). */
  tablesCompared: number;
  mismatches: number;
  notRehearsed: string[];
  problems: string[];
}

const DRILL_USER = "hastack_drill";
const DRILL_TABLE = "app.hastack_drill";

function sql(s: DrillServer, statement: string, timeoutMs = 120_000): string {
  return inServer(s, ["mariadb", "--batch", "--skip-column-names", "-e", statement], {}, timeoutMs);
}

/** `SHOW SLAVE STATUS\G` as field → value ({} when the server replicates from nobody). */
export function parseReplicaStatus(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Za-z_]+):\s?(.*)$/.exec(line);
    if (m) {
      out[m[1]] = m[2].trim();
    }
  }
  return out;
}

/** What makes a server's role: read-only or not, its replication source and state, semi-sync. */
export interface DbRole {
  readOnly: string;
  source: string;
  io: string;
  sql: string;
  semiSyncSource: string;
  semiSyncReplica: string;
}

function dbRole(s: DrillServer): DbRole {
  const v = sql(
    s,
    "SELECT @@GLOBAL.read_only, " +
      "IFNULL((SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_ENABLED'), '-'), " +
      "IFNULL((SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_SLAVE_ENABLED'), '-')",
  )
    .trim()
    .split("\t");
  const st = parseReplicaStatus(inServer(s, ["mariadb", "--batch", "-e", "SHOW SLAVE STATUS\\G"]));
  return {
    readOnly: v[0] ?? "",
    source: st.Master_Host ?? "",
    io: st.Slave_IO_Running ?? "",
    sql: st.Slave_SQL_Running ?? "",
    semiSyncSource: v[1] ?? "",
    semiSyncReplica: v[2] ?? "",
  };
}

/** How two role snapshots of one server differ, one line per field ("" when the same). */
export function roleDrift(name: string, was: DbRole, is: DbRole): string[] {
  return (Object.keys(was) as (keyof DbRole)[])
    .filter((k) => was[k] !== is[k])
    .map((k) => `${name}: ${k} is ${JSON.stringify(is[k])}, was ${JSON.stringify(was[k])}`);
}

/** Tables whose checksums differ between the two sides, or that one side lacks. */
export function checksumMismatches(a: Record<string, string>, b: Record<string, string>): string[] {
  const names = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return names.filter((t) => a[t] === undefined || b[t] === undefined || a[t] !== b[t]);
}

/** The longest gap (ms) between consecutive times in [from, to], the ends included. */
export function longestGap(times: number[], from: number, to: number): number {
  const inside = times.filter((t) => t > from && t < to).sort((x, y) => x - y);
  let prev = from;
  let longest = 0;
  for (const t of [...inside, to]) {
    longest = Math.max(longest, t - prev);
    prev = t;
  }
  return longest;
}

function checksums(s: DrillServer, databases: string[]): Record<string, string> {
  const dbs = databases.map((d) => `'${d}'`).join(", ");
  const tables = sql(
    s,
    "SELECT CONCAT('`', table_schema, '`.`', table_name, '`') FROM information_schema.tables " +
      `WHERE table_schema IN (${dbs}) AND table_type = 'BASE TABLE' ORDER BY 1`,
  )
    .split("\n")
    .filter(Boolean);
  if (tables.length === 0) {
    return {};
  }
  const out: Record<string, string> = {};
  for (const line of sql(s, `CHECKSUM TABLE ${tables.join(", ")} EXTENDED`, 600_000)
    .split("\n")
    .filter(Boolean)) {
    const [table, sum] = line.split("\t");
    out[table] = sum;
  }
  return out;
}

function ids(s: DrillServer): Set<number> {
  return new Set(
    sql(s, `SELECT id FROM ${DRILL_TABLE}`, 300_000).trim().split("\n").filter(Boolean).map(Number),
  );
}

/**
 * Writes through `name` from inside `client`, one session after another: each stops at its
 * first error; the next resolves the name again (through the resolver's cache) and reconnects,
 * as an application's pool does. Every acknowledged id is kept with its time.
 */
class WriteLoad {
  readonly acked: { id: number; at: number }[] = [];
  readonly errors: string[] = [];
  /** Ids handed to the sessions started from now on begin here. */
  nextId = 1_000_000;
  private stopped = false;
  private writerNo = 0;
  private readonly loop: Promise<void>;

  constructor(client: DrillServer, name: string, password: string) {
    this.loop = (async () => {
      while (!this.stopped) {
        this.writerNo++;
        const first = this.nextId;
        this.nextId += 1_000_000;
        const w = new Writer(
          "nsenter",
          [
            "-t",
            String(client.leader),
            "-a",
            "--",
            "env",
            `MYSQL_PWD=${password}`,
            "mariadb",
            "-h",
            name,
            "-u",
            DRILL_USER,
            "--connect-timeout=5",
            "--ssl",
            "app",
          ],
          this.writerNo,
          first,
        );
        let seen = 0;
        const collect = (): void => {
          for (; seen < w.acked.length; seen++) {
            this.acked.push({ id: w.acked[seen], at: Date.now() });
          }
        };
        const watch = setInterval(collect, 50);
        const stop = setInterval(() => {
          if (this.stopped) {
            void w.stop();
          }
        }, 200);
        await w.done;
        clearInterval(watch);
        clearInterval(stop);
        collect();
        if (w.error.trim()) {
          this.errors.push(w.error.trim().split("\n")[0]);
        }
        if (!this.stopped) {
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    })();
  }

  /** The first write acknowledged at or after `t` (ms). */
  firstAfter(t: number): { id: number; at: number } | undefined {
    return this.acked.find((a) => a.at >= t);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

/** What the Route 53 stand-in's checker says of one server's health check (its status file). */
export interface CheckerView {
  /** The status it holds (undefined: never measured; Route 53 then counts it healthy). */
  health: boolean | undefined;
  /** Probes made, and probes the target passed, since the checker started. */
  probes: number;
  passes: number;
  failureThreshold: number;
  intervalSeconds: number;
}

function checkerView(t: ApplyTarget, healthFile: string, server: string): CheckerView | undefined {
  const s = t.model.servers.find((x) => x.name === server);
  const hc = t.model.healthChecks.find(
    (h) => h.ipAddress === s?.publicIp || h.ipAddress === s?.privateIp,
  );
  if (!hc) {
    return undefined;
  }
  const h = readCheckerStatus(healthFile);
  return {
    health: h.health[hc.id],
    probes: h.streak[hc.id]?.probes ?? 0,
    passes: h.streak[hc.id]?.passes ?? 0,
    failureThreshold: hc.failureThreshold,
    intervalSeconds: hc.intervalSeconds,
  };
}

/** The Route 53 stand-in's last verdict on the health check probing `server`'s agent. */
function healthOf(t: ApplyTarget, healthFile: string, server: string): boolean | undefined {
  return checkerView(t, healthFile, server)?.health;
}

/**
 * The verdict on a killed and fenced server's health check, from the checker's view once the
 * failover was applied (`atKill`: the server was already dead) and at the end of the watch: no
 * probe passed in between — its agent never answered healthy — and the checker then holds it
 * unhealthy. The checker flips only after `failureThreshold` failures in a row, so the watch must
 * end at least that many intervals after the kill; before, "healthy" is only the old status.
 */
export function fencedCheckProblems(
  server: string,
  atKill: CheckerView,
  atEnd: CheckerView,
  secondsSinceKill: number,
): string[] {
  const problems: string[] = [];
  const probes = atEnd.probes - atKill.probes;
  const passed = atEnd.passes - atKill.passes;
  if (probes <= 0) {
    problems.push(
      `the health checker made no probe of ${server} in the ${secondsSinceKill} s after the kill`,
    );
  }
  if (passed > 0) {
    problems.push(
      `${passed} of the health checker's ${probes} probes of ${server} passed after the kill: its agent answered healthy while it is fenced`,
    );
  }
  if (atEnd.health !== false) {
    problems.push(
      `the health checker holds ${server} ${atEnd.health === undefined ? "unmeasured (healthy)" : "healthy"} ${secondsSinceKill} s after the kill, while it is fenced (${atEnd.failureThreshold} failures × ${atEnd.intervalSeconds} s flip it)`,
    );
  }
  return problems;
}

function seconds(fromMs: number, toMs: number): number {
  return Math.round((toMs - fromMs) / 100) / 10;
}

/**
 * Runs the drill. `before`/`after` are the stack's synths with `active: primary` and `standby`;
 * the rehearsal must be at `before` (refused otherwise, before anything changes); it is left at
 * `before` again.
 */
export async function mysqlDrill(
  o: {
    target: ApplyTarget;
    before: Deployment;
    after: Deployment;
    domain: string;
    /** Databases the pair replicates (hastack:mysql.databases): compared with CHECKSUM TABLE. */
    databases: string[];
    /** The Route 53 stand-in's health status file. */
    healthFile: string;
    primary: DrillServer;
    standby: DrillServer;
    client: DrillServer;
    /** Boots a killed server again (same disk and network); resolves with its new PID 1. */
    bootAgain: (name: string) => Promise<DrillServer>;
    /** Seconds of steady load before the kill. Defaults to 15. */
    warmSeconds?: number;
  },
  log: (l: string) => void,
): Promise<MysqlStackDrillResult> {
  const problems: string[] = [];
  const r: MysqlStackDrillResult = {
    acknowledged: 0,
    lost: null,
    rtoSeconds: null,
    applySeconds: null,
    rebootSeconds: null,
    fallbackSeconds: null,
    fallbackApplySeconds: null,
    fallbackPauseSeconds: null,
    tablesCompared: 0,
    mismatches: 0,
    notRehearsed: [
      `write load through db.internal.${o.domain} (the VPC's name): db.${o.domain} is the EIPs, which the security groups do not admit clients through`,
    ],
    problems,
  };
  const name = `db.internal.${o.domain}`;
  const region = o.target.model.region;

  const failoverPlan = planApply(o.before, o.after, { region });
  const fallbackPlan = planApply(o.after, o.before, { region });
  // Refuse to start anywhere but BEFORE (for what the flip touches): a drill must leave the stack
  // as it found it, and the whole switch state is compared with this snapshot at the end.
  const driftAtStart = rehearsalDrift(o.target, o.before, failoverPlan);
  const stateAtStart = switchSnapshot(liveSwitchState(o.target));
  if (driftAtStart.length > 0) {
    problems.push(
      `the stack is not at \`active: primary\` for mysql, nothing was done: ${driftAtStart.join("; ")}`,
    );
    return r;
  }
  const rolesBefore = { primary: dbRole(o.primary), standby: dbRole(o.standby) };
  if (rolesBefore.primary.readOnly !== "0" || rolesBefore.standby.readOnly !== "1") {
    problems.push(
      `the MySQL pair is not primary-writable/standby-read-only (read_only ${rolesBefore.primary.readOnly}/${rolesBefore.standby.readOnly}), nothing was done`,
    );
    return r;
  }
  log(`roles before: ${JSON.stringify(rolesBefore)}`);

  const password = crypto.randomBytes(18).toString("base64url");
  log(`drill table and account on ${o.primary.name} (replicated to ${o.standby.name})`);
  sql(
    o.primary,
    `DROP TABLE IF EXISTS ${DRILL_TABLE}; ` +
      `CREATE TABLE ${DRILL_TABLE} (id BIGINT PRIMARY KEY, writer INT NOT NULL, ` +
      "at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), payload CHAR(64) NOT NULL) ENGINE=InnoDB; " +
      `CREATE OR REPLACE USER '${DRILL_USER}'@'%' IDENTIFIED BY '${password}'; ` +
      `GRANT INSERT, SELECT ON app.* TO '${DRILL_USER}'@'%';`,
  );
  await until("the drill table on the standby (replication)", 120, () =>
    sql(o.standby, "SHOW TABLES FROM app LIKE 'hastack_drill'").trim() ? true : undefined,
  );

  const load = new WriteLoad(o.client, name, password);
  let primary = o.primary;
  let killed = false;
  let killedAt = 0;
  let checkAtKill: CheckerView | undefined;
  let failedOver = false;
  try {
    await until(`the first acknowledged write through ${name}`, 180, () =>
      load.acked.length > 0 ? true : undefined,
    );
    await new Promise((res) => setTimeout(res, (o.warmSeconds ?? 15) * 1000));

    // --- Failover ---
    log(`${load.acked.length} writes acknowledged; killing ${primary.name} (SIGKILL to its PID 1)`);
    killedAt = Date.now();
    const firstIdAfterKill = load.nextId;
    process.kill(primary.leader, "SIGKILL");
    killed = true;
    log("applying `active: standby` (pulumi up's steps)");
    const failover = await executePlan(failoverPlan, o.target, log);
    failedOver = true;
    // The primary is dead by now: a probe counted from here on was answered after the kill.
    checkAtKill = checkerView(o.target, o.healthFile, primary.name);
    r.applySeconds = seconds(killedAt, Date.now());
    if (!failover.ok) {
      problems.push(
        ...failover.steps.filter((s) => s.outcome === "failed").map((s) => `failover: ${s.error}`),
      );
    }
    const first = await until("a write acknowledged after the kill", 600, () =>
      load.acked.find((a) => a.id >= firstIdAfterKill),
    );
    r.rtoSeconds = seconds(killedAt, first.at);
    log(`writes acknowledged again ${r.rtoSeconds} s after the kill`);
  } catch (e) {
    problems.push(`failover: ${(e as Error).message}`);
  }

  // --- Fallback (also the repair of a failover that went wrong: the stack must end at BEFORE) ---
  try {
    if (killed) {
      const t0 = Date.now();
      primary = await o.bootAgain(o.primary.name);
      r.rebootSeconds = seconds(t0, Date.now());
      const ro = await until(
        `MariaDB on ${primary.name} after its boot`,
        600,
        () => sql(primary, "SELECT @@GLOBAL.read_only").trim() || undefined,
      );
      problems.push(
        ...(await proveFenced(o, primary, ro, name, password, { killedAt, checkAtKill }, log)),
      );
    }
    if (failedOver) {
      log("applying `active: primary` (pulumi up's steps: fallback, rejoin, then the records)");
      const started = Date.now();
      const fallback = await executePlan(fallbackPlan, o.target, log);
      const applied = Date.now();
      r.fallbackApplySeconds = seconds(started, applied);
      if (!fallback.ok) {
        problems.push(
          ...fallback.steps
            .filter((s) => s.outcome === "failed")
            .map((s) => `fallback: ${s.error}`),
        );
      } else {
        // Once the apply ended the standby is read-only: a write acknowledged now is the primary's.
        const back = await until(
          "a write acknowledged by the primary after the fallback",
          600,
          () => load.firstAfter(applied),
        );
        r.fallbackSeconds = seconds(started, back.at);
        r.fallbackPauseSeconds = seconds(
          0,
          longestGap(
            load.acked.map((a) => a.at),
            started,
            back.at,
          ),
        );
        log(
          `fallback: applied in ${r.fallbackApplySeconds} s; writes acknowledged by the primary ${r.fallbackSeconds} s after it began (longest pause ${r.fallbackPauseSeconds} s)`,
        );
        await new Promise((res) => setTimeout(res, 10_000));
      }
    }
  } catch (e) {
    problems.push(`fallback: ${(e as Error).message}`);
  } finally {
    await load.stop();
  }
  r.acknowledged = load.acked.length;
  log(
    `${load.acked.length} acknowledged; writer errors: ${[...new Set(load.errors)].slice(0, 3).join(" | ")}`,
  );

  // --- The end state: every acknowledged write on both, equal checksums, BEFORE's roles ---
  try {
    const gtid = sql(primary, "SELECT @@GLOBAL.gtid_binlog_pos").trim();
    const waited = sql(o.standby, `SELECT MASTER_GTID_WAIT('${gtid}', 300)`, 330_000).trim();
    if (waited !== "0") {
      problems.push(`the standby did not apply the primary's ${gtid} within 300 s`);
    }
    const onPrimary = ids(primary);
    const onStandby = ids(o.standby);
    const lost = load.acked.filter((a) => !onPrimary.has(a.id) || !onStandby.has(a.id));
    r.lost = lost.length;
    if (lost.length > 0) {
      problems.push(
        `${lost.length} acknowledged writes missing (primary holds ${onPrimary.size}, standby ${onStandby.size}): ${lost
          .slice(0, 10)
          .map((a) => a.id)
          .join(", ")}`,
      );
    }
    const a = checksums(primary, o.databases);
    const b = checksums(o.standby, o.databases);
    const differ = checksumMismatches(a, b);
    r.tablesCompared = new Set([...Object.keys(a), ...Object.keys(b)]).size;
    r.mismatches = differ.length;
    if (differ.length > 0) {
      problems.push(`CHECKSUM TABLE differs for ${differ.join(", ")}`);
    }
    log(
      `lost ${r.lost} of ${r.acknowledged}; CHECKSUM TABLE equal on ${r.tablesCompared - r.mismatches} of ${r.tablesCompared} tables`,
    );
    // The drill's own table and account go: the stack's databases are as they were.
    sql(primary, `DROP TABLE IF EXISTS ${DRILL_TABLE}; DROP USER IF EXISTS '${DRILL_USER}'@'%';`);
    await until("the drill table gone on the standby", 120, () =>
      sql(o.standby, "SHOW TABLES FROM app LIKE 'hastack_drill'").trim() ? undefined : true,
    );
    const drift = [
      ...rehearsalDrift(o.target, o.before, failoverPlan),
      ...snapshotDiff(stateAtStart, switchSnapshot(liveSwitchState(o.target))),
      ...roleDrift(primary.name, rolesBefore.primary, dbRole(primary)),
      ...roleDrift(o.standby.name, rolesBefore.standby, dbRole(o.standby)),
    ];
    // Route 53 answers the primary only while its agent says healthy: unfenced by the fallback.
    await until(`the health checker to see ${primary.name} healthy`, 180, () =>
      healthOf(o.target, o.healthFile, primary.name) === false ? undefined : true,
    ).catch((e: Error) => drift.push(e.message));
    if (drift.length > 0) {
      problems.push(`the stack is not back at BEFORE: ${drift.join("; ")}`);
    } else {
      log("the stack is back at BEFORE: no switch change to apply, both servers in their roles");
    }
  } catch (e) {
    problems.push(`end state: ${(e as Error).message}`);
  }
  return r;
}

/**
 * The rebooted primary is fenced and takes no traffic: read-only (its boot-role intent), the
 * health checker keeps it out of DNS (its agent latched the reboot), the name answers the
 * standby from the client's resolver, and a write sent to it directly is refused.
 */
async function proveFenced(
  o: { target: ApplyTarget; healthFile: string; standby: DrillServer; client: DrillServer },
  primary: DrillServer,
  readOnly: string,
  name: string,
  password: string,
  kill: { killedAt: number; checkAtKill: CheckerView | undefined },
  log: (l: string) => void,
): Promise<string[]> {
  const problems: string[] = [];
  if (readOnly !== "1") {
    problems.push(`${primary.name} came back writable (read_only ${readOnly}), not fenced`);
  }
  const server = o.target.model.servers.find((s) => s.name === primary.name)!;
  const standbyIp = o.target.model.servers.find((s) => s.name === o.standby.name)!.privateIp;
  // Watched for three probe intervals after its sshd answers (the agent has had time to answer
  // if it would), and at least until the checker's failure threshold has passed since the kill.
  const atKill = kill.checkAtKill;
  let checkerSaid = "no check";
  if (!atKill) {
    problems.push(
      `no health-check counts of ${primary.name} from the failover: no check probes ${server.privateIp}, or the failover did not get that far`,
    );
  } else {
    const intervalMs = atKill.intervalSeconds * 1000;
    const end = Math.max(
      Date.now() + 3 * intervalMs,
      kill.killedAt + (atKill.failureThreshold + 1) * intervalMs + 5000,
    );
    let now = checkerView(o.target, o.healthFile, primary.name)!;
    while (Date.now() < end && now.passes === atKill.passes) {
      await new Promise((res) => setTimeout(res, 1000));
      now = checkerView(o.target, o.healthFile, primary.name)!;
    }
    const sinceKill = Math.round((Date.now() - kill.killedAt) / 1000);
    problems.push(...fencedCheckProblems(primary.name, atKill, now, sinceKill));
    checkerSaid = `${now.passes - atKill.passes} of ${now.probes - atKill.probes} probes passed since the kill, held ${now.health === false ? "unhealthy" : "healthy"} ${sinceKill} s after it`;
  }
  const answer = inServer(o.client, ["getent", "ahostsv4", name]).trim().split(/\s+/)[0];
  if (answer !== standbyIp) {
    problems.push(`${name} answers ${answer} to the client, not the standby's ${standbyIp}`);
  }
  let refused = "";
  try {
    inServer(
      o.client,
      [
        "mariadb",
        "-h",
        server.privateIp,
        "-u",
        DRILL_USER,
        "--connect-timeout=5",
        "--ssl",
        "app",
        "-e",
        `INSERT INTO ${DRILL_TABLE} (id, writer, payload) VALUES (1, 0, 'fenced?')`,
      ],
      { MYSQL_PWD: password },
    );
    problems.push(`${primary.name} accepted a write sent to it directly while fenced`);
  } catch (e) {
    const stderr = String((e as { stderr?: string }).stderr ?? (e as Error).message);
    refused = stderr.split("\n").find((l) => /^ERROR/.test(l)) ?? stderr.trim();
    if (!/read-only|read_only/i.test(refused)) {
      problems.push(
        `a write sent to ${primary.name} directly failed, but not as read-only: ${refused}`,
      );
    }
  }
  log(
    `${primary.name} is back fenced: read_only ${readOnly}, health checker: ${checkerSaid}, ${name} → ${answer}, direct write: ${refused}`,
  );
  return problems;
}

/** The drill as the registry runs it: `active: standby` for hastack:mysql and back. */
export async function runMysqlDrill(ctx: DrillContext): Promise<DrillOutcome> {
  const need = ["mysql-primary", "mysql-standby", "pbx-primary"];
  const refused = refuseWithout(ctx, need);
  if (refused) {
    return refused;
  }
  const { before, after } = await switchSynths(ctx.stack, "mysql");
  const target = await bootedTarget(ctx.stack, ctx.dir, ctx.settings);
  const r = await mysqlDrill(
    {
      target,
      before,
      after,
      domain: ctx.settings.domain,
      databases: stackMysqlSettings(PACKAGE_ROOT, ctx.stack).databases,
      healthFile: `${ctx.dir}/health.json`,
      primary: ctx.servers.get("mysql-primary")!,
      standby: ctx.servers.get("mysql-standby")!,
      client: ctx.servers.get("pbx-primary")!,
      bootAgain: async (name) => {
        const b = await bootServerAgain(ctx.dir, name, ctx.log);
        return { name, leader: b.leader };
      },
    },
    ctx.log,
  );
  return {
    figures: {
      acknowledged: r.acknowledged,
      lost: r.lost,
      rtoSeconds: r.rtoSeconds,
      fallbackSeconds: r.fallbackSeconds,
      applySeconds: r.applySeconds,
      rebootSeconds: r.rebootSeconds,
      fallbackApplySeconds: r.fallbackApplySeconds,
      fallbackPauseSeconds: r.fallbackPauseSeconds,
      tablesCompared: r.tablesCompared,
      mismatches: r.mismatches,
    },
    problems: r.problems,
    notRehearsed: r.notRehearsed,
  };
}
