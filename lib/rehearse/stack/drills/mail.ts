// The mail drill on the booted stack (issue 12 item 1, issue 17's DKIM check). A real Postfix
// outside the VPC (mail-world.ts) delivers a steady stream to a user of the domain, finding the
// MX through the rehearsal's resolver; the mail primary's container is killed (SIGKILL of its
// PID 1: a power-off); the sender falls back to the next MX and Route 53's stand-in (the health
// checker) fails `mail.<domain>` over; `active: standby` is applied as `pulumi up` would
// (apply-run.ts); the old primary is booted again (reboot.ts) and comes back fenced, taking no
// traffic; the fallback runs as README says (hastack-mail-fallback on the primary: two-way sync,
// verify, unfence; then `active: primary` applied). Figures: sent, delivered, lost (0),
// duplicated, rtoSeconds (kill → the first message accepted again), fallbackSeconds, and the
// mailboxes of both servers identical at the end. Before the kill and while the standby is
// active, a message the office sends OUT through the active server is DKIM-verified at the
// world's receiver against the TXT record the rehearsal's bind9 serves.
//
// The pair must be the domain's MX for inbound mail to reach it: a stack in the middle of an MX
// migration (prod today: phase 1, MX = the old server) gets the finished move's records applied
// first and its own applied back at the end, so the stack is left as it was found.
import * as fs from "fs";
import * as path from "path";
import { execFileSync, spawnSync } from "child_process";
import { PRODUCTION_LAYOUT } from "../../../../components/mail";
import { Deployment, synthesize, synthesizeEdited } from "../../../synth/offline-synth";
import { PACKAGE_ROOT } from "../../../package-root";
import { ApplyPlan, describeStep, planApply } from "../apply";
import { ApplyTarget, bootedTarget, executePlan } from "../apply-run";
import { StandInConfig, readCheckerStatus } from "../standins";
import { bootServerAgain } from "../reboot";
import {
  DrillContext,
  DrillOutcome,
  DrillServer,
  inServer,
  refuseWithout,
  until,
} from "./container";
import {
  Delivery,
  countStream,
  deliveriesTo,
  messageIdsOf,
  parsePostfixLog,
  secondsAfter,
} from "./mail-count";
import { WORLD_DOMAIN, WorldMta, mailboxHeaderLines, worldMtaAddress } from "./mail-world";

export interface MailStackDrillResult {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  identical: boolean;
  rtoSeconds: number | null;
  dnsFailoverSeconds: number | null;
  applySeconds: number | null;
  rebootSeconds: number | null;
  fencedDeliveries: number | null;
  /** Messages the killed primary had accepted since its last sync began (an upper bound). */
  onlyOnKilled: number | null;
  fallbackSeconds: number | null;
  dkimVerified: { before: boolean | null; after: boolean | null };
  notRehearsed: string[];
  problems: string[];
}

/** dkimpy (Debian's python3-dkim) verifying stdin with TXT records from one resolver only. */
const DKIM_VERIFIER = `
import json, sys, dkim, dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = [sys.argv[1]]
def txt(name, timeout=5):
    try:
        answer = r.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
    except Exception:
        return None
    return b"".join(answer[0].strings)
msg = sys.stdin.buffer.read().replace(b"\\r\\n", b"\\n").replace(b"\\n", b"\\r\\n")
d = dkim.DKIM(msg)
try:
    ok = d.verify(dnsfunc=txt)
except dkim.DKIMException as e:
    ok = False
print(json.dumps({"ok": bool(ok), "d": (d.domain or b"").decode(), "s": (d.selector or b"").decode()}))
`;

const FENCE_FILE = "/var/lib/hastack/fenced";

function message(o: { from: string; to: string; id: string; subject: string }): string {
  return [
    `From: ${o.from}`,
    `To: ${o.to}`,
    `Subject: ${o.subject}`,
    `Message-ID: <${o.id}>`,
    `Date: ${new Date().toUTCString().replace("GMT", "+0000")}`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=us-ascii",
    "",
    `${o.subject}: a message of the hastack mail drill.`,
    "",
  ].join("\n");
}

/** What the checker measured for each health check (absent: not measured yet, healthy). */
function healthOf(statusFile: string): Record<string, boolean> {
  try {
    return readCheckerStatus(statusFile).health;
  } catch {
    return {};
  }
}

function fenced(s: DrillServer): boolean {
  return (
    spawnSync("nsenter", ["-t", String(s.leader), "-a", "--", "test", "-e", FENCE_FILE]).status ===
    0
  );
}

/** The health agent's answer on the server itself (its HTTP status), 0 when it does not answer. */
function agentStatus(s: DrillServer): number {
  const r = spawnSync(
    "nsenter",
    [
      "-t",
      String(s.leader),
      "-a",
      "--",
      "python3",
      "-c",
      "import urllib.request,urllib.error,sys\ntry:\n  print(urllib.request.urlopen('http://127.0.0.1:9780/health',timeout=5).status)\nexcept urllib.error.HTTPError as e:\n  print(e.code)",
    ],
    { encoding: "utf8", timeout: 30_000 },
  );
  return Number((r.stdout ?? "").trim()) || 0;
}

/** Plans the steps of one update and checks they are record changes only (a mail flip is). */
function recordsOnly(plan: ApplyPlan, what: string): string[] {
  return plan.steps
    .filter((s) => s.kind !== "record")
    .map((s) => `${what}: unexpected step ${describeStep(s)} (a mail flip changes records only)`);
}

export interface MailDrillInput {
  target: ApplyTarget;
  /** The stack as booted (its config today) and the drill's BEFORE/AFTER. */
  asIs: Deployment;
  before: Deployment;
  after: Deployment;
  region: string;
  domain: string;
  dir: string;
  primary: DrillServer;
  standby: DrillServer;
  /** The stack's user the stream is addressed to (the rehearsal's mail user). */
  user: string;
  /** Seconds of steady stream before the kill. Defaults to 15. */
  warmSeconds?: number;
  /** Seconds between two messages of the stream. Defaults to 1. */
  intervalSeconds?: number;
}

export async function mailDrill(
  o: MailDrillInput,
  log: (l: string) => void,
): Promise<MailStackDrillResult> {
  const problems: string[] = [];
  const notRehearsed: string[] = [];
  const run = `${Date.now().toString(36)}`;
  const isDrill = (id: string): boolean => id.startsWith(`hastack-drill-${run}-`);
  const cfg = JSON.parse(fs.readFileSync(o.target.standInsConfig, "utf8")) as StandInConfig;
  const dnsDir = cfg.dns.dir;
  const unbound = fs.readFileSync(path.join(dnsDir, "unbound.conf"), "utf8");
  const resolver = /interface:\s*(\S+)/.exec(unbound)?.[1];
  if (!resolver) {
    throw new Error(`${dnsDir}/unbound.conf names no interface: cannot find the resolver`);
  }
  const model = o.target.model;
  const eipOf = (name: string): string => {
    const ip = model.servers.find((s) => s.name === name)?.publicIp;
    if (!ip) {
      throw new Error(`${name} has no EIP in the synth`);
    }
    return ip;
  };
  const mx1 = eipOf(o.primary.name);
  const mx2 = eipOf(o.standby.name);
  const hcOf = (ip: string): string | undefined =>
    cfg.healthChecks.find((h) => h.ipAddress === ip)?.id;
  const mx1Check = hcOf(mx1);
  const mailName = `mail.${o.domain}`;

  const prep = planApply(o.asIs, o.before, { region: o.region });
  const flip = planApply(o.before, o.after, { region: o.region });
  const back = planApply(o.after, o.before, { region: o.region });
  const restore = planApply(o.before, o.asIs, { region: o.region });
  for (const [p, what] of [
    [prep, "the finished migration's records"],
    [flip, "active: standby"],
    [back, "active: primary"],
    [restore, "the stack's own records"],
  ] as const) {
    if (p.refused.length > 0) {
      throw new Error(`${what}: ${p.refused.map((r) => r.message).join("; ")}`);
    }
  }
  problems.push(...recordsOnly(flip, "active: standby"), ...recordsOnly(back, "active: primary"));

  const routerLo = execFileSync("ip", ["-n", o.target.router, "-4", "-o", "addr", "show", "lo"], {
    encoding: "utf8",
  });
  const taken = [...routerLo.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]);
  const world = WorldMta.create(
    {
      router: o.target.router,
      address: worldMtaAddress(model, taken),
      resolver,
      dnsDir,
      rndcConf: cfg.dns.rndcConf,
    },
    log,
  );

  const state = { killed: false, rebooted: false };
  // Which of the three configs the rehearsal's records are at: the drill ends at asIs.
  let at: "asIs" | "before" | "after" = "asIs";
  const deployments = { asIs: o.asIs, before: o.before, after: o.after };
  let primary = o.primary;
  const apply = async (plan: ApplyPlan, what: string): Promise<number> => {
    const t0 = Date.now();
    log(`applying ${what} (${plan.steps.length} step(s), as pulumi up would)`);
    const r = await executePlan(plan, o.target, log);
    if (!r.ok) {
      throw new Error(
        `applying ${what} failed: ${r.steps
          .filter((s) => s.outcome === "failed")
          .map((s) => s.error)
          .join("; ")}`,
      );
    }
    return (Date.now() - t0) / 1000;
  };
  const mxAnswer = (): string => world.resolve(o.domain, "MX");
  const waitMx = (first: string, seconds: number): Promise<string> =>
    until(`MX of ${o.domain} preferring ${first} at the world's resolver`, seconds, () => {
      const a = mxAnswer();
      const best = a
        .split(" ")
        .reduce<{ p: number; h: string }[]>((acc, v, i, all) => {
          if (i % 2 === 0) {
            acc.push({ p: Number(v), h: all[i + 1] ?? "" });
          }
          return acc;
        }, [])
        .sort((x, y) => x.p - y.p)[0];
      return best?.h.replace(/\.$/, "") === first ? a : undefined;
    });

  // The stream: one message a second into the world MTA's queue, each with its own Message-ID.
  const sent: string[] = [];
  const sendFailures: string[] = [];
  let streaming = false;
  let seq = 0;
  const seen: { d: Delivery; at: number; id?: string }[] = [];
  let follow: NodeJS.Timeout | undefined;
  const readLog = (): void => {
    const parsed = parsePostfixLog(world.log());
    for (let i = seen.length; i < parsed.deliveries.length; i++) {
      seen.push({ d: parsed.deliveries[i], at: Date.now() });
    }
    for (const s of seen) {
      s.id ??= parsed.messageIds.get(s.d.queueId);
    }
  };
  const streamLoop = async (): Promise<void> => {
    while (streaming) {
      const id = `hastack-drill-${run}-${++seq}@${WORLD_DOMAIN}`;
      const ok = world.send(
        `correspondent@${WORLD_DOMAIN}`,
        o.user,
        message({ from: `correspondent@${WORLD_DOMAIN}`, to: o.user, id, subject: `drill ${seq}` }),
      );
      if (ok) {
        sent.push(id);
      } else {
        sendFailures.push(id);
      }
      await new Promise((r) => setTimeout(r, (o.intervalSeconds ?? 1) * 1000));
    }
  };

  /** Sends one message OUT through `via` to the world and DKIM-verifies it there. */
  const dkimCheck = async (via: DrillServer, when: string): Promise<boolean> => {
    const id = `hastack-drill-${run}-out-${when}@${o.domain}`;
    const to = `inbox@${WORLD_DOMAIN}`;
    execFileSync(
      "nsenter",
      ["-t", String(via.leader), "-a", "--", "/usr/sbin/sendmail", "-i", "-f", o.user, to],
      {
        input: message({ from: o.user, to, id, subject: `DKIM ${when} (via ${via.name})` }),
        timeout: 60_000,
      },
    );
    const got = await until(`the message sent out via ${via.name} at the world`, 240, () =>
      world.inbox().find((m) => messageIdsOf(m.text).includes(id)),
    );
    const r = spawnSync(
      "ip",
      ["netns", "exec", world.ns, "/usr/bin/python3", "-c", DKIM_VERIFIER, resolver],
      { input: got.text, encoding: "utf8", timeout: 60_000 },
    );
    let v: { ok: boolean; d: string; s: string } = { ok: false, d: "", s: "" };
    try {
      v = JSON.parse((r.stdout ?? "").trim().split("\n").pop() ?? "") as typeof v;
    } catch {
      problems.push(`DKIM ${when}: the verifier failed: ${(r.stderr ?? "").trim().slice(-300)}`);
    }
    log(
      `DKIM ${when}: sent via ${via.name}, ${v.ok ? "verified" : "NOT verified"} (d=${v.d} s=${v.s}) against the TXT record served by the rehearsal's bind9`,
    );
    if (!v.ok) {
      problems.push(
        `DKIM ${when}: mail sent via ${via.name} does not verify against ${v.s || "?"}._domainkey.${o.domain} as the rehearsal serves it`,
      );
    }
    return v.ok;
  };

  const result: MailStackDrillResult = {
    sent: 0,
    delivered: 0,
    lost: 0,
    duplicated: 0,
    identical: false,
    rtoSeconds: null,
    dnsFailoverSeconds: null,
    applySeconds: null,
    rebootSeconds: null,
    fencedDeliveries: null,
    onlyOnKilled: null,
    fallbackSeconds: null,
    dkimVerified: { before: null, after: null },
    notRehearsed,
    problems,
  };
  let streamDone: Promise<void> | undefined;
  try {
    if (prep.steps.length > 0) {
      log(
        `the pair is not the MX of ${o.domain} in the stack's config (MX ${mxAnswer() || "?"}): ` +
          "applying the finished migration's records first, the stack's own at the end",
      );
      await apply(prep, "the finished migration's records");
    }
    at = "before";
    await waitMx(`mx1.${o.domain}`, 180);
    for (const s of [primary, o.standby]) {
      if (fenced(s)) {
        throw new Error(`${s.name} is fenced before the drill: the stack is not at BEFORE`);
      }
    }
    await until(`${mailName} answered with ${mx1} at the world's resolver`, 180, () =>
      world.resolve(mailName, "A") === mx1 ? true : undefined,
    );
    result.dkimVerified.before = await dkimCheck(primary, "before");

    log(`stream: one message every ${o.intervalSeconds ?? 1} s to ${o.user} from the world MTA`);
    streaming = true;
    streamDone = streamLoop();
    follow = setInterval(readLog, 250);
    await until("the stream's first delivery", 180, () =>
      seen.some((s) => s.d.status === "sent") ? true : undefined,
    );
    // Steady state, as in production: the primary's sync (its timer's job) has run since the
    // user's mailbox exists. (On a stack booted before the refresh made each INBOX under a shared
    // GUID, a mailbox first written on both sides between two syncs could never be synced.)
    log(`steady state: hastack-mail-sync on ${primary.name} (its timer's job) with mail flowing`);
    const syncStartedAt = Date.now();
    inServer(primary, [`${PRODUCTION_LAYOUT.sbinDir}/hastack-mail-sync`], {}, 900_000);
    await new Promise((r) => setTimeout(r, (o.warmSeconds ?? 15) * 1000));
    const toMx1 = seen.filter((s) => s.d.status === "sent" && s.d.relayIp === mx1).length;
    if (toMx1 === 0) {
      problems.push(`no message of the stream reached ${primary.name} (${mx1}) before the kill`);
    }
    log(
      `stream: ${sent.length} sent, ${toMx1} delivered to ${primary.name}; killing it (SIGKILL to its PID 1)`,
    );
    const killedAt = Date.now();
    // What only the killed server held (accepted since its last sync began): unreadable on the
    // standby until the fallback brings its disk back, lost if the disk were lost (the RPO).
    result.onlyOnKilled = seen.filter(
      (s) => s.d.status === "sent" && s.d.relayIp === mx1 && s.at >= syncStartedAt,
    ).length;
    process.kill(primary.leader, "SIGKILL");
    state.killed = true;
    const firstAfter = await until("a message accepted after the kill", 300, () =>
      // The killed server accepts nothing after the kill: a line read late is not a recovery.
      seen.find((s) => s.at > killedAt && s.d.status === "sent" && s.d.relayIp !== mx1),
    );
    result.rtoSeconds = secondsAfter(killedAt, firstAfter.at);
    log(
      `mail accepted again ${result.rtoSeconds} s after the kill (relay ${firstAfter.d.relay} ${firstAfter.d.relayIp ?? ""})`,
    );
    const failedOver = await until(`${mailName} failed over to ${mx2}`, 300, () =>
      world.resolve(mailName, "A") === mx2 ? Date.now() : undefined,
    );
    result.dnsFailoverSeconds = secondsAfter(killedAt, failedOver);
    log(
      `Route 53's stand-in: ${mailName} answers ${mx2} ${result.dnsFailoverSeconds} s after the kill`,
    );

    result.applySeconds = Math.round(await apply(flip, "active: standby"));
    at = "after";
    await waitMx(`mx2.${o.domain}`, 180);
    result.dkimVerified.after = await dkimCheck(o.standby, "after");

    log(`booting ${primary.name} again (its disk and addresses kept)`);
    const rebooted = await bootServerAgain(o.dir, primary.name, log);
    const rebootedAt = Date.now();
    state.rebooted = true;
    result.rebootSeconds = rebooted.seconds;
    primary = { name: primary.name, leader: rebooted.leader };
    // Fenced: the boot fences (hastack-fence-on-boot), the agent answers 503, the checker holds it
    // unhealthy, and while it is up no message of the stream goes to it.
    await until(`${primary.name}'s health agent answering`, 240, () =>
      agentStatus(primary) !== 0 ? true : undefined,
    );
    const fencedNow = fenced(primary);
    const agent = agentStatus(primary);
    if (!fencedNow || agent !== 503) {
      problems.push(
        `${primary.name} came back ${fencedNow ? "fenced" : "NOT fenced"} with its health agent answering ${agent} (expected fenced, 503)`,
      );
    }
    await new Promise((r) => setTimeout(r, 35_000));
    readLog();
    const checkerSays = mx1Check ? healthOf(cfg.checker.statusFile)[mx1Check] : undefined;
    if (checkerSays !== false) {
      problems.push(
        `the health checker holds ${primary.name}'s check ${mx1Check ?? "?"} ${checkerSays === undefined ? "unmeasured (healthy)" : "healthy"} while it is fenced`,
      );
    }
    if (world.resolve(mailName, "A") !== mx2) {
      problems.push(
        `${mailName} answered ${world.resolve(mailName, "A")} while ${primary.name} is fenced`,
      );
    }
    const window = seen.filter((s) => s.at >= rebootedAt);
    const toFenced = deliveriesTo(
      {
        deliveries: window.map((s) => s.d),
        messageIds: new Map(window.filter((s) => s.id).map((s) => [s.d.queueId, s.id!])),
      },
      [mx1],
      isDrill,
    );
    result.fencedDeliveries = toFenced.length;
    if (toFenced.length > 0) {
      problems.push(
        `${toFenced.length} message(s) delivered to ${primary.name} while it was fenced: ${toFenced.slice(0, 3).join(", ")}`,
      );
    }
    const toStandby = window.filter((s) => s.d.status === "sent" && s.d.relayIp === mx2).length;
    log(
      `${primary.name} is back: fenced (${agent}), checker ${checkerSays === false ? "unhealthy" : String(checkerSays)}; ` +
        `${toStandby} message(s) to ${o.standby.name}, ${toFenced.length} to ${primary.name} since its boot`,
    );

    // The fallback, as README says: on the primary, hastack-mail-fallback; then active: primary.
    const fallbackAt = Date.now();
    log(`fallback: hastack-mail-fallback on ${primary.name} (two-way sync, verify, unfence)`);
    const out = inServer(
      primary,
      [`${PRODUCTION_LAYOUT.sbinDir}/hastack-mail-fallback`],
      {},
      900_000,
    );
    for (const line of out.trim().split("\n").filter(Boolean).slice(-3)) {
      log(`fallback:   ${line}`);
    }
    await apply(back, "active: primary");
    at = "before";
    await waitMx(`mx1.${o.domain}`, 180);
    await until(`${mailName} answered with ${mx1} again`, 300, () =>
      world.resolve(mailName, "A") === mx1 ? true : undefined,
    );
    result.fallbackSeconds = secondsAfter(fallbackAt, Date.now());
    const backAt = Date.now();
    await until(`a message delivered to ${primary.name} after the fallback`, 180, () =>
      seen.some((s) => s.at > backAt && s.d.status === "sent" && s.d.relayIp === mx1)
        ? true
        : undefined,
    );
    log(`fallback done in ${result.fallbackSeconds} s: ${primary.name} takes the stream again`);
  } catch (e) {
    problems.push((e as Error).message);
  } finally {
    streaming = false;
    await streamDone;
    // Put the stack back where it was, whatever happened above.
    if (state.killed && !state.rebooted) {
      try {
        const r = await bootServerAgain(o.dir, primary.name, log);
        primary = { name: primary.name, leader: r.leader };
        state.rebooted = true;
      } catch (e) {
        problems.push(`repair: booting ${primary.name} again failed: ${(e as Error).message}`);
      }
    }
    if (at === "after" && state.rebooted) {
      try {
        inServer(primary, [`${PRODUCTION_LAYOUT.sbinDir}/hastack-mail-fallback`], {}, 900_000);
        await apply(back, "active: primary (repair)");
        at = "before";
      } catch (e) {
        problems.push(
          `repair: the fallback failed, ${primary.name} stays fenced: ${(e as Error).message}`,
        );
      }
    }
  }

  // Every message out of the world's queue, then the primary's sync (its timer's job) once more.
  if (state.rebooted || !state.killed) {
    try {
      await until("the world MTA's queue to empty", 600, () => {
        if (world.queued() === 0) {
          return true;
        }
        world.flush();
        return undefined;
      });
      readLog();
      log(`final sync: hastack-mail-sync --verify on ${primary.name}`);
      inServer(
        primary,
        [`${PRODUCTION_LAYOUT.sbinDir}/hastack-mail-sync`, "--verify"],
        {},
        900_000,
      );
      const c = countStream(
        sent,
        {
          primary: messageIdsOf(mailboxHeaderLines(primary, PRODUCTION_LAYOUT.mailRoot, o.user)),
          standby: messageIdsOf(mailboxHeaderLines(o.standby, PRODUCTION_LAYOUT.mailRoot, o.user)),
        },
        isDrill,
      );
      Object.assign(result, {
        sent: c.sent,
        delivered: c.delivered,
        lost: c.lost,
        duplicated: c.duplicated,
        identical: c.identical,
      });
      log(
        `counts: ${c.sent} sent, ${c.delivered} delivered, ${c.lost} lost, ${c.duplicated} duplicated; ` +
          `mailboxes ${c.identical ? "identical" : "DIFFER"} on both servers`,
      );
      if (c.lost > 0) {
        problems.push(`${c.lost} message(s) lost: ${c.lostIds.slice(0, 5).join(", ")}`);
      }
      if (!c.identical) {
        problems.push(
          `the mailboxes differ: only on ${primary.name} ${c.onlyPrimary.slice(0, 3).join(", ")}; only on ${o.standby.name} ${c.onlyStandby.slice(0, 3).join(", ")}`,
        );
      }
      if (sendFailures.length > 0) {
        problems.push(`the world MTA refused ${sendFailures.length} message(s) of the stream`);
      }
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  if (follow) {
    clearInterval(follow);
  }
  if (at !== "asIs") {
    const home =
      at === "before" ? restore : planApply(deployments[at], o.asIs, { region: o.region });
    try {
      await apply(home, "the stack's own records back");
    } catch (e) {
      problems.push(`repair: ${(e as Error).message}`);
    }
  }
  world.remove();
  notRehearsed.push(
    "mail drill: a killed container's network namespace refuses connections (RST) at once, where a powered-off EC2 instance answers nothing and a sender waits its connect timeout (Postfix: 30 s) before the next MX",
    "mail drill: mail sent OUT for the DKIM check is handed to the active server's sendmail (signed as mail from the server itself), not submitted by a user over SMTP AUTH (the rehearsal's user password is not kept on disk)",
  );
  return result;
}

/** The drill as the registry runs it, from the stack's synth: `active: standby` for hastack:mail. */
export async function runMailDrill(ctx: DrillContext): Promise<DrillOutcome> {
  const refused = refuseWithout(ctx, ["mail-primary", "mail-standby"]);
  if (refused) {
    return refused;
  }
  // The pair as the MX: the stack's config without a migration (the finished move).
  const pairConfig = (active: string) => (c: Record<string, unknown>) => {
    const mail: Record<string, unknown> = {
      ...(c["hastack:mail"] as Record<string, unknown>),
      active,
    };
    delete mail.migration;
    c["hastack:mail"] = mail;
  };
  const asIs = await synthesize({ projectDir: PACKAGE_ROOT, stack: ctx.stack });
  const before = await synthesizeEdited({
    projectDir: PACKAGE_ROOT,
    stack: ctx.stack,
    edit: pairConfig("primary"),
  });
  const after = await synthesizeEdited({
    projectDir: PACKAGE_ROOT,
    stack: ctx.stack,
    edit: pairConfig("standby"),
  });
  const target = await bootedTarget(ctx.stack, ctx.dir, ctx.settings);
  const r = await mailDrill(
    {
      target,
      asIs,
      before,
      after,
      region: ctx.settings.region,
      domain: ctx.settings.domain,
      dir: ctx.dir,
      primary: ctx.servers.get("mail-primary")!,
      standby: ctx.servers.get("mail-standby")!,
      user: `rehearsal@${ctx.settings.domain}`,
    },
    ctx.log,
  );
  return {
    figures: {
      sent: r.sent,
      delivered: r.delivered,
      lost: r.lost,
      duplicated: r.duplicated,
      identical: r.identical,
      rtoSeconds: r.rtoSeconds,
      dnsFailoverSeconds: r.dnsFailoverSeconds,
      applySeconds: r.applySeconds,
      rebootSeconds: r.rebootSeconds,
      fencedDeliveries: r.fencedDeliveries,
      onlyOnKilled: r.onlyOnKilled,
      fallbackSeconds: r.fallbackSeconds,
      dkimVerified: r.dkimVerified,
    },
    problems: r.problems,
    notRehearsed: r.notRehearsed,
  };
}
