// The migration drill on the booted stack (issue 12 item 5): an old mail server outside the pair
// (migration-old.ts: Postfix + Dovecot at hastack:mail.migration.oldServer.ip, users from the
// stack's user list, mail stored before the move), and phases 2 → 9 of README "Moving mail to a
// new server" applied one at a time as `pulumi up` would (apply-run.ts, the stack's own step
// commands over SSH: user import, initial sync, final sync, retire check). A real Postfix outside
// the VPC (mail-world.ts) delivers a stream to a user of the domain throughout, finding the MX
// through the rehearsal's resolver; in each phase with a second MX the preferred new receiver is
// stopped for a while. Before phase 9 the old server runs hastack-mail-retire-old (README step
// 9). Counts per phase: where the stream's mail landed (the world's Postfix log), lost (sent and
// in no mailbox: 0), wrongServer (landed on a server the phase's MX, or the one before it while
// caches expire, does not name), leftBehind (on the old server, not on the new active one, when
// it shuts down). The stack is left at its own phase: every phase applied back, one at a time.
import * as fs from "fs";
import * as path from "path";
import { execFileSync } from "child_process";
import { PRODUCTION_LAYOUT } from "../../../../components/mail";
import { Deployment, InspectedResource, synthesizeEdited } from "../../../synth/offline-synth";
import { PACKAGE_ROOT } from "../../../package-root";
import { CACHE_DIR } from "../image";
import { ApplyPlan, planApply } from "../apply";
import {
  ApplyTarget,
  UnmaskedInputs,
  bootedTarget,
  executePlan,
  rehearsalDrift,
  servedSerial,
  unmaskedCommands,
} from "../apply-run";
import { StandInConfig } from "../standins";
import { DrillContext, DrillOutcome, inServer, refuseWithout, until } from "./container";
import { messageIdsOf, parsePostfixLog } from "./mail-count";
import { WORLD_DOMAIN, WorldMta, mailboxHeaderLines, worldMtaAddress } from "./mail-world";
import { OldMailServer } from "./migration-old";

/** Which receivers each phase's MX names (README's table): old, mx1 (primary), mx2 (standby). */
export function mxOfPhase(phase: number): ("old" | "mx1" | "mx2")[] {
  if (phase <= 5) {
    return ["old"];
  }
  return phase <= 7 ? ["mx1", "mx2", "old"] : ["mx1", "mx2"];
}

export interface PhaseCount {
  phase: number;
  sent: number;
  landed: { old: number; mx1: number; mx2: number; elsewhere: number };
  /** The receiver stopped during this phase ("" when the phase has no second MX). */
  stopped: string;
  applySeconds: number;
}

/**
 * Per phase: where each message sent in it landed (by the sender's `sent` delivery), and the ids
 * that landed on a receiver neither this phase's MX nor the previous phase's (caches) names. Pure.
 */
export function countPhases(
  sentIn: Map<string, number>,
  landedOn: Map<string, "old" | "mx1" | "mx2" | "elsewhere">,
  phases: number[],
): { perPhase: Map<number, PhaseCount["landed"] & { sent: number }>; wrongServer: string[] } {
  const perPhase = new Map<number, PhaseCount["landed"] & { sent: number }>(
    phases.map((p) => [p, { sent: 0, old: 0, mx1: 0, mx2: 0, elsewhere: 0 }]),
  );
  const wrongServer: string[] = [];
  for (const [id, phase] of sentIn) {
    const c = perPhase.get(phase)!;
    c.sent += 1;
    const where = landedOn.get(id);
    if (!where) {
      continue;
    }
    c[where] += 1;
    const allowed = new Set([...mxOfPhase(phase), ...mxOfPhase(Math.max(1, phase - 1))]);
    if (where === "elsewhere" || !allowed.has(where)) {
      wrongServer.push(`${id} (sent in phase ${phase}) landed on ${where}`);
    }
  }
  return { perPhase, wrongServer };
}

interface PhaseSynth {
  d: Deployment;
  unmasked: UnmaskedInputs;
}

async function synthPhase(stack: string, phase: number): Promise<PhaseSynth> {
  let inspected: InspectedResource[] = [];
  const d = await synthesizeEdited({
    projectDir: PACKAGE_ROOT,
    stack,
    edit: (c) => {
      const mail = c["hastack:mail"] as { migration?: { phase: number } };
      if (!mail.migration) {
        throw new Error("the stack has no hastack:mail.migration: nothing to drill");
      }
      mail.migration.phase = phase;
    },
    inspect: (rs) => (inspected = rs),
  });
  return { d, unmasked: unmaskedCommands(inspected) };
}

function writeStandIns(t: ApplyTarget, edit: (c: StandInConfig) => void): Promise<void> {
  const cfg = JSON.parse(fs.readFileSync(t.standInsConfig, "utf8")) as StandInConfig;
  edit(cfg);
  const tmp = `${t.standInsConfig}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(cfg), { mode: 0o600 });
  fs.renameSync(tmp, t.standInsConfig);
  const zone = cfg.dns.zones[0].name;
  const before = servedSerial(t.router, zone);
  process.kill(t.standInsPid, "SIGHUP");
  return until(`the stand-ins reloaded (serial of ${zone} past ${before})`, 60, () =>
    servedSerial(t.router, zone) > before ? true : undefined,
  ).then(() => undefined);
}

function message(id: string, to: string, subject: string): string {
  return [
    `From: correspondent@${WORLD_DOMAIN}`,
    `To: ${to}`,
    `Subject: ${subject}`,
    `Message-ID: <${id}>`,
    `Date: ${new Date().toUTCString().replace("GMT", "+0000")}`,
    "",
    `${subject}: a message of the hastack migration drill.`,
    "",
  ].join("\n");
}

/** Lets the world's Postfix deliver what it still holds (bounded). */
function drain(w: WorldMta): Promise<unknown> {
  return until("the world's queue empty", 300, () => {
    w.flush();
    return w.queued() === 0 ? true : undefined;
  });
}

export async function runMigrationDrill(ctx: DrillContext): Promise<DrillOutcome> {
  const log = ctx.log;
  const problems: string[] = [];
  const notRehearsed: string[] = [];
  const refused = refuseWithout(ctx, ["mail-primary", "mail-standby"]);
  if (refused) {
    return refused;
  }
  const primary = ctx.servers.get("mail-primary")!;
  const standby = ctx.servers.get("mail-standby")!;
  log("migration: synthesizing phases 1 to 9 of the stack's move");
  const synths: PhaseSynth[] = [];
  for (let p = 1; p <= 9; p++) {
    synths[p] = await synthPhase(ctx.stack, p);
  }
  const plans: ApplyPlan[] = [];
  const backs: ApplyPlan[] = [];
  for (let p = 2; p <= 9; p++) {
    plans[p] = planApply(synths[p - 1].d, synths[p].d, { region: ctx.settings.region });
    backs[p] = planApply(synths[p].d, synths[p - 1].d, { region: ctx.settings.region });
    for (const pl of [plans[p], backs[p]]) {
      if (pl.refused.length > 0) {
        throw new Error(`phase ${p}: ${pl.refused.map((r) => r.message).join("; ")}`);
      }
    }
  }
  const target = await bootedTarget(ctx.stack, ctx.dir, ctx.settings);
  const all = planApply(synths[1].d, synths[9].d, { region: ctx.settings.region });
  const drift = rehearsalDrift(target, synths[1].d, all);
  if (drift.length > 0) {
    return {
      figures: {},
      problems: [`the stack is not at its own migration phase 1: ${drift.join("; ")}`],
      notRehearsed,
    };
  }
  // The old server's address and master user, as the stack's own step command names them.
  const initial = plans[3].steps.find(
    (s) => s.kind === "command" && /hastack-mail-migrate/.test(s.command ?? ""),
  );
  const m =
    /hastack-mail-migrate'? '?initial'? '?(\d+\.\d+\.\d+\.\d+)'? '?([A-Za-z0-9._@-]+)'?/.exec(
      initial?.kind === "command" ? (initial.command ?? "") : "",
    );
  if (!m) {
    throw new Error(
      "phase 3 declares no hastack-mail-migrate initial command (is hastack:sshPrivateKey set?)",
    );
  }
  const [oldIp, masterUser] = [m[1], m[2]];
  const cfg = JSON.parse(fs.readFileSync(target.standInsConfig, "utf8")) as StandInConfig;
  const usersParam = Object.keys(cfg.parameters).find((n) => /\/mail\/users$/.test(n));
  if (!usersParam) {
    throw new Error("the stand-ins hold no <ssmRoot>/mail/users parameter");
  }
  const users = cfg.parameters[usersParam].value
    .split("\n")
    .map((l) => l.split(":")[0].trim())
    .filter(Boolean);
  const user = users[0];
  const masterParam = usersParam.replace(/\/users$/, "/migration/master-password");
  const masterPassword = execFileSync("openssl", ["rand", "-hex", "18"], {
    encoding: "utf8",
  }).trim();
  // The rehearsal image's CA (the one the servers trust): the cached image whose CA it is.
  const trusted = inServer(primary, [
    "cat",
    "/usr/local/share/ca-certificates/hastack-rehearsal.crt",
  ]);
  const imagesDir = path.join(CACHE_DIR, "images");
  const image = fs
    .readdirSync(imagesDir)
    .map((k) => path.join(imagesDir, k))
    .find((d) => {
      const f = path.join(d, "ca.crt");
      return fs.existsSync(f) && fs.readFileSync(f, "utf8").trim() === trusted.trim();
    });
  if (!image) {
    throw new Error(`no cached image under ${imagesDir} holds the CA the mail servers trust`);
  }
  const imageDir = image;
  const model = target.model;
  const eip = (n: string): string => model.servers.find((s) => s.name === n)!.publicIp!;
  const ips = { old: oldIp, mx1: eip("mail-primary"), mx2: eip("mail-standby") };
  const dnsDir = cfg.dns.dir;
  const resolver = /interface:\s*(\S+)/.exec(
    fs.readFileSync(path.join(dnsDir, "unbound.conf"), "utf8"),
  )?.[1];
  if (!resolver) {
    throw new Error(`${dnsDir}/unbound.conf names no interface`);
  }

  let at = 1;
  // The last phase applied going forward (the drill applies them all back at the end).
  let reached = 1;
  let old: OldMailServer | undefined;
  let world: WorldMta | undefined;
  let masterSet = false;
  const run = Date.now().toString(36);
  const sentIn = new Map<string, number>();
  const phaseFigures: PhaseCount[] = [];
  let leftBehind: number | null = null;
  let sending = true;
  let sender: Promise<void> | undefined;
  try {
    await writeStandIns(target, (c) => {
      c.parameters[masterParam] = {
        ...c.parameters[usersParam],
        type: "SecureString",
        value: masterPassword,
      };
    });
    masterSet = true;
    // An earlier run's copy on the new servers: the old server continues its INBOX's UIDVALIDITY.
    const [local, domain] = user.split("@");
    const uidlist = path.join(PRODUCTION_LAYOUT.mailRoot, domain, local, "Maildir/dovecot-uidlist");
    const uv = /^3 V(\d+) /.exec(
      inServer(primary, ["sh", "-c", 'test -f "$1" && head -n 1 "$1"; exit 0', "sh", uidlist]),
    )?.[1];
    if (uv) {
      log(`migration: ${user}'s INBOX on the new servers was copied before: UIDVALIDITY ${uv}`);
    }
    old = OldMailServer.create(
      {
        router: target.router,
        address: oldIp,
        hostname: `mail.${ctx.settings.domain}`,
        domain: ctx.settings.domain,
        users,
        masterUser,
        masterPassword,
        uidValidity: uv ? { [user]: Number(uv) } : undefined,
        ca: {
          cert: fs.readFileSync(path.join(imageDir, "ca.crt"), "utf8"),
          key: path.join(imageDir, "ca.key"),
        },
      },
      log,
    );
    for (let i = 0; i < 5; i++) {
      old.store(
        user,
        message(`hastack-migr-${run}-old${i}@${WORLD_DOMAIN}`, user, `held before the move ${i}`),
        i,
      );
    }
    const routerLo = execFileSync("ip", ["-n", target.router, "-4", "-o", "addr", "show", "lo"], {
      encoding: "utf8",
    });
    const taken = [...routerLo.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\//g)].map((x) => x[1]);
    world = WorldMta.create(
      {
        router: target.router,
        address: worldMtaAddress(model, [...taken, oldIp]),
        resolver,
        dnsDir,
        rndcConf: cfg.dns.rndcConf,
      },
      log,
    );
    const w = world;
    let n = 0;
    sender = (async () => {
      while (sending) {
        const id = `hastack-migr-${run}-${n++}@${WORLD_DOMAIN}`;
        if (w.send(`correspondent@${WORLD_DOMAIN}`, user, message(id, user, `phase ${at}`))) {
          sentIn.set(id, at);
        }
        await new Promise((r) => setTimeout(r, 2000));
      }
    })();
    await new Promise((r) => setTimeout(r, 10_000));
    for (let p = 2; p <= 9; p++) {
      if (p === 9) {
        const ttl = Math.max(
          ...model.zones
            .flatMap((z) => z.records)
            .filter((r) => r.type === "MX")
            .map((r) => r.ttl),
        );
        log(
          `migration: waiting one MX TTL (${ttl} s) after phase 8, then hastack-mail-retire-old on the old server`,
        );
        await new Promise((r) => setTimeout(r, ttl * 1000));
        const r = old.retire(path.join(PACKAGE_ROOT, "server/mail/hastack-mail-retire-old.sh"));
        log(
          `migration: retire-old exit ${r.status}: ${r.output.split("\n").slice(-2).join(" / ")}`,
        );
        if (r.status !== 0) {
          throw new Error(`hastack-mail-retire-old refused on the old server: ${r.output}`);
        }
      }
      const t0 = Date.now();
      log(`migration: applying phase ${p} (${plans[p].steps.length} step(s))`);
      const res = await executePlan(plans[p], target, log, synths[p].unmasked);
      if (!res.ok) {
        throw new Error(
          `phase ${p} failed: ${res.steps
            .filter((s) => s.outcome === "failed")
            .map((s) => s.error)
            .join("; ")}`,
        );
      }
      at = p;
      reached = p;
      const applySeconds = (Date.now() - t0) / 1000;
      let stopped = "";
      if (mxOfPhase(p).length > 1) {
        stopped = "mail-primary (mx1) Postfix";
        log(`migration: phase ${p}: stopping ${stopped} for 20 s`);
        inServer(primary, ["systemctl", "stop", "postfix"]);
        try {
          await new Promise((r) => setTimeout(r, 20_000));
        } finally {
          inServer(primary, ["systemctl", "start", "postfix"]);
        }
      }
      await new Promise((r) => setTimeout(r, 10_000));
      phaseFigures.push({
        phase: p,
        sent: 0,
        landed: { old: 0, mx1: 0, mx2: 0, elsewhere: 0 },
        stopped,
        applySeconds,
      });
    }
    sending = false;
    await sender;
    await drain(w);
    const onOld = new Set(old.messageIds(user));
    const onNew = new Set(
      messageIdsOf(mailboxHeaderLines(primary, PRODUCTION_LAYOUT.mailRoot, user)),
    );
    leftBehind = [...onOld].filter((id) => !onNew.has(id)).length;
  } catch (e) {
    problems.push(`stopped after phase ${at}: ${(e as Error).message}`);
  } finally {
    sending = false;
    await sender?.catch(() => undefined);
    for (let p = at; p >= 2; p--) {
      log(`migration: applying phase ${p - 1} back`);
      const res = await executePlan(backs[p], target, log, synths[p - 1].unmasked);
      if (!res.ok) {
        problems.push(`applying phase ${p - 1} back failed: the stack is left at phase ${p}`);
        break;
      }
      at = p - 1;
    }
    if (masterSet) {
      await writeStandIns(target, (c) => {
        delete c.parameters[masterParam];
      });
    }
  }
  let lost: string[] = [];
  let counted: ReturnType<typeof countPhases> = { perPhase: new Map(), wrongServer: [] };
  try {
    if (world && old) {
      // Back at phase 1 the old server is the MX again: what the world still holds goes there.
      await drain(world);
      // Where the stream landed, from the sender's own log, and what is in no mailbox.
      const wlog = parsePostfixLog(world.log());
      const landedOn = new Map<string, "old" | "mx1" | "mx2" | "elsewhere">();
      for (const d of wlog.deliveries.filter((x) => x.status === "sent")) {
        const id = wlog.messageIds.get(d.queueId);
        if (id) {
          const where = (Object.keys(ips) as ("old" | "mx1" | "mx2")[]).find(
            (k) => ips[k] === d.relayIp,
          );
          landedOn.set(id, where ?? "elsewhere");
        }
      }
      const mailboxes = new Set([
        ...old.messageIds(user),
        ...messageIdsOf(mailboxHeaderLines(primary, PRODUCTION_LAYOUT.mailRoot, user)),
        ...messageIdsOf(mailboxHeaderLines(standby, PRODUCTION_LAYOUT.mailRoot, user)),
      ]);
      lost = [...sentIn.keys()].filter((id) => !mailboxes.has(id));
      counted = countPhases(sentIn, landedOn, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
  } catch (e) {
    problems.push(`counting the stream: ${(e as Error).message}`);
  } finally {
    world?.remove();
    old?.remove();
  }
  const { perPhase, wrongServer } = counted;
  const after = rehearsalDrift(target, synths[1].d, all);
  problems.push(...after.map((d) => `after the drill: ${d}`));
  if (lost.length > 0) {
    problems.push(`${lost.length} message(s) lost: ${lost.slice(0, 5).join(", ")}`);
  }
  if (wrongServer.length > 0) {
    problems.push(
      `${wrongServer.length} message(s) on a server the MX did not name: ${wrongServer.slice(0, 5).join("; ")}`,
    );
  }
  if (leftBehind !== null && leftBehind > 0) {
    problems.push(`${leftBehind} message(s) left behind on the old server`);
  }
  if (reached < 9) {
    notRehearsed.push(
      `migration drill: phases ${reached + 1}–9 were not rehearsed in this run: it stopped after phase ${reached} (the problem names why)`,
    );
  }
  notRehearsed.push(
    "migration drill: the old server is a network namespace of this machine (no container, no boot), its mail stored before the move written straight into its Maildirs",
    "migration drill: on a stack an earlier run moved mail to, the old server's INBOX continues the UIDVALIDITY the new servers copied (the one real old server would); a second, different old server into the same servers is not rehearsed (imapc names every INBOX by one GUID: one-way dsync then copies nothing and only the retire check refuses)",
    "migration drill: the stream's messages and the synced mail stay in the new servers' mailboxes afterwards (as after a real move); only the records, parameters and the old server are undone",
  );
  return {
    figures: {
      phases: [...perPhase.entries()].map(([phase, c]) => ({
        phase,
        ...c,
        ...(phaseFigures.find((f) => f.phase === phase)
          ? {
              stopped: phaseFigures.find((f) => f.phase === phase)!.stopped,
              applySeconds: phaseFigures.find((f) => f.phase === phase)!.applySeconds,
            }
          : {}),
      })),
      sent: sentIn.size,
      lost: lost.length,
      wrongServer: wrongServer.length,
      leftBehind,
    },
    problems,
    notRehearsed,
  };
}
