// The mysql drill on the booted stack (issue 12): a user of the database — the PBX, the stack's
// own MySQL client — writes through db.internal.<domain> (resolved by the VPC's caching resolver
// inside the PBX container, as its CDR connection does), counting acknowledged ids; the MySQL
// primary's container is killed (its PID 1 SIGKILLed: a power-off, not a shutdown); `active:
// standby` is applied as `pulumi up` would (apply-run.ts: the stack's own promotion command over
// SSH, then the record sets); the writer reconnects by name until a write is acknowledged again.
// rtoSeconds: from the kill to that first acknowledged write. lost: acknowledged ids the promoted
// standby does not hold.
//
// Not rehearsed here (named in the result): the fallback, which needs the killed server booted
// again (the rehearsal cannot restart one container yet); the public name db.<domain>, which
// resolves to EIPs that the security groups do not admit the VPC's clients through.
import * as crypto from "crypto";
import { Writer } from "../../mysql";
import { ApplyTarget, executePlan } from "../apply-run";
import { planApply } from "../apply";
import { Deployment, synthesize, synthesizeEdited } from "../../../synth/offline-synth";
import { PACKAGE_ROOT } from "../../../package-root";
import { DrillContext, DrillOutcome, DrillServer, inServer, until } from "./container";
import { bootedTarget } from "../apply-run";

export interface MysqlStackDrillResult {
  acknowledged: number;
  lost: number;
  rtoSeconds: number | null;
  applySeconds: number;
  fallbackSeconds: null;
  notRehearsed: string[];
  problems: string[];
}

const DRILL_USER = "hastack_drill";

function sql(s: DrillServer, statement: string): string {
  return inServer(s, ["mariadb", "--batch", "--skip-column-names", "-e", statement]);
}

/**
 * Runs the drill. `before`/`after` are the stack's synths with `active: primary` and `standby`;
 * the rehearsal must be at `before`. Leaves the stack at `after` with the primary down.
 */
export async function mysqlDrill(
  o: {
    target: ApplyTarget;
    before: Deployment;
    after: Deployment;
    region: string;
    domain: string;
    primary: DrillServer;
    standby: DrillServer;
    client: DrillServer;
    /** Seconds of steady load before the kill. Defaults to 15. */
    warmSeconds?: number;
  },
  log: (l: string) => void,
): Promise<MysqlStackDrillResult> {
  const problems: string[] = [];
  const name = `db.internal.${o.domain}`;
  const password = crypto.randomBytes(18).toString("base64url");
  log(`mysql: drill table and account on ${o.primary.name} (replicated to ${o.standby.name})`);
  sql(
    o.primary,
    "CREATE TABLE IF NOT EXISTS app.hastack_drill (id BIGINT PRIMARY KEY, writer INT NOT NULL, " +
      "at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), payload CHAR(64) NOT NULL) ENGINE=InnoDB; " +
      `CREATE OR REPLACE USER '${DRILL_USER}'@'%' IDENTIFIED BY '${password}'; ` +
      `GRANT INSERT, SELECT ON app.* TO '${DRILL_USER}'@'%';`,
  );
  await until("the drill table on the standby (replication)", 120, () =>
    sql(o.standby, "SHOW TABLES FROM app LIKE 'hastack_drill'").trim() ? true : undefined,
  );

  // Writers one after another: each session stops at its first error; the next resolves the
  // name again (through the resolver's cache) and reconnects, as an application's pool does.
  const acked: { id: number; at: number }[] = [];
  let stopped = false;
  let nextId = 1_000_000;
  let writerNo = 0;
  const errors: string[] = [];
  const loop = (async () => {
    while (!stopped) {
      writerNo++;
      const first = nextId;
      nextId += 1_000_000;
      const w = new Writer(
        "nsenter",
        [
          "-t",
          String(o.client.leader),
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
        writerNo,
        first,
      );
      let seen = 0;
      const watch = setInterval(() => {
        for (; seen < w.acked.length; seen++) {
          acked.push({ id: w.acked[seen], at: Date.now() });
        }
      }, 50);
      const stop = setInterval(() => {
        if (stopped) {
          void w.stop();
        }
      }, 200);
      await w.done;
      clearInterval(watch);
      clearInterval(stop);
      for (; seen < w.acked.length; seen++) {
        acked.push({ id: w.acked[seen], at: Date.now() });
      }
      if (w.error.trim()) {
        errors.push(w.error.trim().split("\n")[0]);
      }
      if (!stopped) {
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  })();

  await until("the first acknowledged write through " + name, 180, () =>
    acked.length > 0 ? true : undefined,
  );
  await new Promise((r) => setTimeout(r, (o.warmSeconds ?? 15) * 1000));
  const beforeKill = acked.length;
  log(`mysql: ${beforeKill} writes acknowledged; killing ${o.primary.name} (SIGKILL to its PID 1)`);
  const killedAt = Date.now();
  // Writers started from here on have ids from this one up: the first of their acks is the RTO.
  const firstIdAfterKill = nextId;
  process.kill(o.primary.leader, "SIGKILL");

  log("mysql: applying `active: standby` (pulumi up's steps)");
  const plan = planApply(o.before, o.after, { region: o.region });
  const applied = await executePlan(plan, o.target, (l) => log(`mysql: ${l}`));
  const applySeconds = (Date.now() - killedAt) / 1000;
  if (!applied.ok) {
    problems.push(
      ...applied.steps.filter((s) => s.outcome === "failed").map((s) => `apply: ${s.error}`),
    );
  }
  let rtoSeconds: number | null = null;
  try {
    const first = await until("a write acknowledged after the kill", 600, () =>
      acked.find((a) => a.id >= firstIdAfterKill),
    );
    rtoSeconds = Math.round(((first.at - killedAt) / 1000) * 10) / 10;
    log(`mysql: writes acknowledged again ${rtoSeconds} s after the kill`);
    await new Promise((r) => setTimeout(r, 10_000));
  } catch (e) {
    problems.push((e as Error).message);
  }
  stopped = true;
  await loop;

  const held = new Set(
    sql(o.standby, "SELECT id FROM app.hastack_drill")
      .trim()
      .split("\n")
      .filter(Boolean)
      .map(Number),
  );
  const lostIds = acked.filter((a) => !held.has(a.id)).map((a) => a.id);
  if (lostIds.length > 0) {
    problems.push(
      `${lostIds.length} acknowledged writes missing on the standby: ${lostIds.slice(0, 10).join(", ")}`,
    );
  }
  log(
    `mysql: ${acked.length} acknowledged, ${lostIds.length} lost, writer errors: ${[...new Set(errors)].slice(0, 3).join(" | ")}`,
  );
  return {
    acknowledged: acked.length,
    lost: lostIds.length,
    rtoSeconds,
    applySeconds: Math.round(applySeconds),
    fallbackSeconds: null,
    notRehearsed: [
      "mysql fallback: the killed primary is not booted again (the rehearsal cannot restart one server)",
      `write load through ${name} (the VPC's name): db.${o.domain} is the EIPs, which the security groups do not admit clients through`,
    ],
    problems,
  };
}

/** The drill as the registry runs it: `active: standby` for hastack:mysql, from the stack's synth. */
export async function runMysqlDrill(ctx: DrillContext): Promise<DrillOutcome> {
  const need = ["mysql-primary", "mysql-standby", "pbx-primary"];
  const missing = need.filter((n) => !ctx.servers.has(n));
  if (missing.length > 0) {
    return {
      figures: {},
      problems: [`no running container for ${missing.join(", ")}`],
      notRehearsed: [],
    };
  }
  const before = await synthesize({ projectDir: PACKAGE_ROOT, stack: ctx.stack });
  const after = await synthesizeEdited({
    projectDir: PACKAGE_ROOT,
    stack: ctx.stack,
    edit: (c) => {
      c["hastack:mysql"] = { ...c["hastack:mysql"], active: "standby" };
    },
  });
  const target = await bootedTarget(ctx.stack, ctx.dir, ctx.settings);
  const r = await mysqlDrill(
    {
      target,
      before,
      after,
      region: ctx.settings.region,
      domain: ctx.settings.domain,
      primary: ctx.servers.get("mysql-primary")!,
      standby: ctx.servers.get("mysql-standby")!,
      client: ctx.servers.get("pbx-primary")!,
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
    },
    problems: r.problems,
    notRehearsed: r.notRehearsed,
  };
}
