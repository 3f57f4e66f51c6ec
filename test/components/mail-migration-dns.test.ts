// The mail migration for real (issue 18): each phase's records, synthesized by MailPair under
// mocks, are served by a real bind9; a real sending Postfix resolves the domain's MX itself and
// delivers to real Postfix + Dovecot servers — the old server, the new primary (mx1) and the
// new standby (mx2) — all in a network namespace this test creates with only `lo`. Phases run
// in the operator's order, 1 → 9, then 0 (the finished move, oldServer removed). In every phase
// N messages go out with every receiver up, then again with the preferred receiver stopped
// wherever the MX set has a second entry, and each message is found where it landed:
// 0 lost, 0 on the wrong server, 0 left only on the old server when it is shut down.
import { expect } from "chai";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { migrationSyncCommand } from "../../components/mail";
import { migrationPlan, mxPolicyViolations, parseMx } from "../../components/mail-migration";
import { PACKAGE_ROOT } from "../../lib/package-root";
import { synthMailPair } from "../support/mail-synth";
import {
  DOMAIN,
  MailServer,
  MailWorld,
  NetNamespace,
  requireBinaries,
  waitFor,
} from "../support/mail-harness";

const ALICE = `alice@${DOMAIN}`;
const USERS = { [ALICE]: "alice-pw-1", [`postmaster@${DOMAIN}`]: "pm-pw-3" };
const MASTER = { name: "hastack-migrate", password: "old-master-secret" };
/** Messages per batch (one batch per receiver situation per phase). */
const N = 3;
// named listens only on interface addresses: in the namespace, lo's own 127.0.0.1.
const DNS_IP = "127.0.0.1";
const MX1 = `mx1.${DOMAIN}`;
const MX2 = `mx2.${DOMAIN}`;
const MX_OLD = `mx-old.${DOMAIN}`;
const RETIRE_OLD = path.join(PACKAGE_ROOT, "server/mail/hastack-mail-retire-old.sh");

interface ZoneRecord {
  name: string;
  type: string;
  ttl: number;
  records: string[];
}

/** The records MailPair declares in `phase` (failover sets: the PRIMARY answer, all healthy). */
async function synthRecords(phase: number, oldIp: string): Promise<ZoneRecord[]> {
  const migration =
    phase === 0
      ? { phase }
      : { phase, oldServer: { hostname: `mail.${DOMAIN}`, ip: oldIp, masterUser: MASTER.name } };
  const { d } = await synthMailPair({ migration }, { domain: DOMAIN });
  return d.deployment.resources
    .filter((r) => r.type === "aws:route53/record:Record")
    .filter((r) => {
      const policies = r.inputs.failoverRoutingPolicies as { type: string }[] | undefined;
      return !policies || policies[0].type === "PRIMARY";
    })
    .map((r) => ({
      name: String(r.inputs.name),
      type: String(r.inputs.type),
      ttl: Number(r.inputs.ttl),
      records: r.inputs.records as string[],
    }));
}

/** A zone file; the mock EIPs of mx1/mx2 become the servers' loopback addresses. */
function zoneFile(records: ZoneRecord[], serial: number, eips: Map<string, string>): string {
  const swap = (v: string): string => v.replace(/\d+\.\d+\.\d+\.\d+/g, (ip) => eips.get(ip) ?? ip);
  const lines = [
    "$TTL 60",
    `@ IN SOA ns.${DOMAIN}. hostmaster.${DOMAIN}. ${serial} 60 60 600 60`,
    `@ IN NS ns.${DOMAIN}.`,
    `ns IN A ${DNS_IP}`,
  ];
  for (const r of records) {
    for (const v of r.records) {
      const value =
        r.type === "MX"
          ? `${v.split(" ")[0]} ${v.split(" ")[1]}.`
          : r.type === "TXT"
            ? // Route 53's form: character strings of a long value are joined by `""`.
              swap(v)
                .split('""')
                .map((part) => JSON.stringify(part))
                .join(" ")
            : swap(v);
      lines.push(`${r.name}. ${r.ttl} IN ${r.type} ${value}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

describe("mail migration for real: bind9 serves each phase, a real MTA follows the MX (issue 18)", function () {
  this.timeout(900000);
  let ns: NetNamespace | undefined;
  let world: MailWorld | undefined;
  let named: ChildProcess | undefined;
  let old: MailServer, mx1: MailServer, mx2: MailServer, sender: MailServer;
  const root = fs.mkdtempSync("/tmp/hastack-dns-");
  const eips = new Map<string, string>();
  let serial = 1;
  let seq = 0;
  const counts = { sent: 0, lost: 0, wrongServer: 0 };
  const landedOnOld: string[] = [];
  /** Servers whose mailboxes are read to find a message (the old one until it is shut down). */
  const receivers = (): MailServer[] => (oldShutDown ? [mx1, mx2] : [old, mx1, mx2]);
  let oldShutDown = false;
  const phasesDone = new Set<number>();
  const figures: string[] = [];
  /** Each phase's records (a failed synth fails that phase's test). */
  const records = new Map<number, Promise<ZoneRecord[]>>();

  /** Synthesizes every phase's records, one after another (the SDK's mocks are global). */
  function synthesizeAll(oldIp: string): void {
    let previous: Promise<unknown> = Promise.resolve();
    for (const phase of [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]) {
      const synth = previous.then(() => synthRecords(phase, oldIp));
      // Handled here, thrown where the phase awaits it.
      previous = synth.catch(() => undefined);
      records.set(phase, synth);
    }
  }

  const serverOf = (host: string): MailServer =>
    ({ [MX1]: mx1, [MX2]: mx2, [MX_OLD]: old })[host] ?? expect.fail(`unknown MX host ${host}`);

  const dig = (name: string, type: string): string[] => {
    const r = spawnSync(
      ...ns!.command("dig", ["+short", "+time=2", "+tries=2", `@${DNS_IP}`, name, type]),
      { encoding: "utf8", timeout: 20000 },
    );
    return (r.stdout ?? "").trim().split("\n").filter(Boolean).sort();
  };

  /** Serves `records` from bind9 and waits until it answers with the new serial. */
  async function serve(records: ZoneRecord[]): Promise<void> {
    serial += 1;
    fs.writeFileSync(path.join(root, "zone"), zoneFile(records, serial, eips));
    const check = spawnSync("named-checkzone", [DOMAIN, path.join(root, "zone")], {
      encoding: "utf8",
    });
    expect(check.status, check.stdout + check.stderr).to.equal(0);
    named!.kill("SIGHUP");
    await waitFor(
      `bind9 serving serial ${serial}`,
      () => dig(DOMAIN, "SOA").some((l) => l.split(" ")[2] === String(serial)),
      30000,
      () => fs.readFileSync(path.join(root, "named.log"), "utf8").split("\n").slice(-10).join("\n"),
    );
  }

  /** Sends N messages through the sender (all at once, as N clients would); where each landed. */
  async function sendBatch(tag: string): Promise<Map<string, string[]>> {
    const tokens = Array.from({ length: N }, () => `${tag}-${++seq}`);
    await Promise.all(tokens.map((token) => sender.deliver(ALICE, token)));
    counts.sent += tokens.length;
    const where = new Map<string, string[]>();
    const look = async (): Promise<boolean> => {
      const servers = receivers();
      const held = await Promise.all(servers.map(async (s) => new Set(await s.tokens(ALICE))));
      where.clear();
      servers.forEach((s, i) => {
        for (const t of tokens.filter((t) => held[i].has(t))) {
          where.set(t, [...(where.get(t) ?? []), s.name]);
        }
      });
      return where.size === tokens.length;
    };
    await waitFor(`${tag}: ${N} messages delivered`, look, 90000, () =>
      sender.log("postfix").split("\n").slice(-12).join("\n"),
    ).catch(() => undefined);
    await look();
    counts.lost += tokens.filter((t) => !where.has(t)).length;
    return where;
  }

  /** Sends a batch and checks every message landed on `expected` (and only there). */
  async function expectLanding(tag: string, expected: MailServer): Promise<void> {
    const where = await sendBatch(tag);
    const wrong = [...where].filter(([, on]) => on.join(",") !== expected.name);
    counts.wrongServer += wrong.length;
    if (expected === old) {
      landedOnOld.push(...where.keys());
    }
    figures.push(`${tag}: ${where.size}/${N} on ${expected.name}`);
    expect(where.size, `${tag}: lost ${N - where.size}`).to.equal(N);
    expect(wrong, `${tag}: expected on ${expected.name}`).to.deep.equal([]);
  }

  /** The phase's MX answer from bind9, checked against the plan and the issue-18 policies. */
  async function applyPhase(phase: number): Promise<{ preference: number; host: string }[]> {
    await serve(await records.get(phase)!);
    const plan = migrationPlan({
      phase,
      oldServer:
        phase === 0
          ? undefined
          : { hostname: `mail.${DOMAIN}`, ip: old.ip, mxPreference: 0, raisedPreference: 10 },
      domain: DOMAIN,
      activeServer: MX1,
      standbyServer: MX2,
    });
    const mx = dig(DOMAIN, "MX").map((v) => v.replace(/\.$/, ""));
    expect(mx, `phase ${phase}: MX answered by bind9`).to.deep.equal([...plan.mx].sort());
    const violations = mxPolicyViolations(phase, mx, {
      old: phase === 0 ? undefined : MX_OLD,
      pair: [MX1, MX2],
      oldAcceptsMail: plan.oldServerAcceptsMail,
    });
    expect(violations).to.deep.equal([]);
    expect(dig(`mail.${DOMAIN}`, "A"), `phase ${phase}: mail.${DOMAIN}`).to.deep.equal([
      plan.clientsOnOldServer ? old.ip : mx1.ip,
    ]);
    const spf = dig(DOMAIN, "TXT").join(" ");
    expect(spf.includes(`ip4:${old.ip}`), `phase ${phase}: SPF ${spf}`).to.equal(
      plan.spfAuthorisesOldServer,
    );
    expect(dig(MX_OLD, "A"), `phase ${phase}: ${MX_OLD}`).to.deep.equal(
      plan.oldServerRecord ? [old.ip] : [],
    );
    return parseMx(mx);
  }

  /** Every receiver up; then the preferred one stopped wherever a second MX exists. */
  async function deliveries(phase: number, mx: { host: string }[]): Promise<void> {
    phasesDone.add(phase);
    await expectLanding(`phase${phase}-all-up`, serverOf(mx[0].host));
    if (mx.length > 1) {
      const preferred = serverOf(mx[0].host);
      await preferred.stopPostfix();
      try {
        await expectLanding(`phase${phase}-${preferred.name}-down`, serverOf(mx[1].host));
      } finally {
        await preferred.startPostfix();
      }
    }
    // The sender holds nothing back: every message left its queue.
    const { stdout } = await sender.shell(
      `postqueue -c '${sender.layout.postfixConfigDir}' -j | wc -l`,
    );
    expect(Number(stdout.trim()), `phase ${phase}: messages left in the sender's queue`).to.equal(
      0,
    );
  }

  const migrate = (mode: "initial" | "final" | "retire") =>
    mx1.shell(
      migrationSyncCommand(
        { mode, oldIp: old.ip, masterUser: MASTER.name, oldPort: 993, oldSmtpPort: 25 },
        mx1.layout,
      ),
    );

  before(async function () {
    requireBinaries();
    for (const [bin, pkg] of [
      ["named", "bind9"],
      ["named-checkzone", "bind9-utils"],
      ["dig", "bind9-dnsutils"],
      ["ip", "iproute2"],
    ]) {
      if (spawnSync("sh", ["-c", `command -v ${bin}`]).status !== 0) {
        throw new Error(
          `missing ${bin}: install Debian package ${pkg} (bash test/install-deps.sh)`,
        );
      }
    }
    if (process.getuid?.() !== 0) {
      throw new Error("this test creates a network namespace (ip netns add): run it as root");
    }
    ns = await NetNamespace.create(
      "hastack-mig",
      `nameserver ${DNS_IP}\noptions timeout:2 attempts:2\n`,
    );
    world = await MailWorld.create({ netns: ns });
    await world.setUsers(USERS);
    world.setParameter("migration/master-password", MASTER.password);
    fs.writeFileSync(
      path.join(root, "named.conf"),
      [
        "options {",
        `  directory "${root}";`,
        `  pid-file "${root}/named.pid";`,
        `  session-keyfile "${root}/session.key";`,
        `  listen-on port 53 { ${DNS_IP}; };`,
        "  listen-on-v6 { none; };",
        "  recursion no;",
        "  dnssec-validation no;",
        "};",
        "controls { };",
        `zone "${DOMAIN}" { type primary; file "${root}/zone"; };`,
        "",
      ].join("\n"),
    );
    fs.writeFileSync(path.join(root, "zone"), zoneFile([], serial, eips));
    const log = fs.openSync(path.join(root, "named.log"), "a");
    named = spawn(...ns.command("named", ["-g", "-c", path.join(root, "named.conf")]), {
      stdio: ["ignore", log, log],
    });
    fs.closeSync(log);
    await waitFor(
      "bind9 answering",
      () => dig(DOMAIN, "SOA").length > 0,
      30000,
      () => fs.readFileSync(path.join(root, "named.log"), "utf8"),
    );
    // Every phase's records, synthesized while the servers start.
    synthesizeAll(world.ips[2]);
    // Distinct loopback addresses, one per server, as one IP per EC2 instance.
    [mx1, mx2, old, sender] = await Promise.all([
      world.server("mx1", "primary", world.ips[0]),
      world.server("mx2", "standby", world.ips[1]),
      world.server("old", "primary", world.ips[2], { masterUser: MASTER }),
      world.server("sender", "primary", world.ips[9 - 1], { sender: true }),
    ]);
    // The stack's mock EIPs of mx1/mx2 → the servers' addresses in the namespace.
    const phase1 = await records.get(1)!;
    const a = (name: string) => phase1.find((r) => r.name === name && r.type === "A")!.records[0];
    eips.set(a(MX1), mx1.ip);
    eips.set(a(MX2), mx2.ip);
  });

  after(async () => {
    try {
      if (world) {
        await world.stop();
        world.remove();
      }
      named?.kill("SIGKILL");
    } finally {
      const name = ns?.name;
      await ns?.remove();
      fs.rmSync(root, { recursive: true, force: true });
      if (name) {
        expect(NetNamespace.exists(name), `namespace ${name} removed`).to.equal(false);
      }
      console.log(
        `      figures: ${JSON.stringify(counts)}\n${figures.map((f) => `        ${f}`).join("\n")}`,
      );
    }
  });

  it("phase 1: mail stays on the old server (MX, mail.<domain>, SPF name it)", async () => {
    await deliveries(1, await applyPhase(1));
  });

  it("phase 2: users imported on the new active server; mail still on the old one", async () => {
    await mx1.script("hastack-mail-refresh", "--require-users");
    await deliveries(2, await applyPhase(2));
  });

  it("phase 3: the first copy old → new; mail still on the old one", async () => {
    const mx = await applyPhase(3);
    await migrate("initial");
    expect(await mx1.tokens(ALICE)).to.include.members(landedOnOld);
    await deliveries(3, mx);
  });

  for (const phase of [4, 5]) {
    it(`phase ${phase}: mail still on the old server`, async () => {
      await deliveries(phase, await applyPhase(phase));
    });
  }

  it("phase 6: new mail lands on mx1, on mx2 when mx1 is down — never on the old server", async () => {
    await deliveries(6, await applyPhase(6));
  });

  it("phase 7: final sync; the old server takes mail only while both new servers are down", async () => {
    const mx = await applyPhase(7);
    await migrate("final");
    await deliveries(7, mx);
    await Promise.all([mx1.stopPostfix(), mx2.stopPostfix()]);
    try {
      await expectLanding("phase7-both-new-down", old);
    } finally {
      await Promise.all([mx1.startPostfix(), mx2.startPostfix()]);
    }
  });

  it("phase 8: the old MX leaves while the old server still accepts mail; the retire check refuses", async () => {
    await deliveries(8, await applyPhase(8));
    expect(await world!.canConnect(old.ip, 25)).to.equal(true);
    const refused = await migrate("retire").catch((e: Error) => e);
    expect(String(refused)).to.contain(
      `refusing: the old server still accepts SMTP on ${old.ip}:25`,
    );
  });

  it("phase 9: the old server stops taking mail, drains, the retire check carries and verifies every message", async () => {
    const { stderr: retired } = await old.shell(
      `${RETIRE_OLD} --config-dir '${old.layout.postfixConfigDir}' --wait 120`,
    );
    expect(retired).to.contain("the queue is empty and no mail can arrive");
    expect(await world!.canConnect(old.ip, 25)).to.equal(false);
    const { stderr } = await migrate("retire");
    expect(stderr).to.match(/checked \d+ message\(s\) on the old server: all here/);
    expect(stderr).to.contain("verified: every message of the old server");
    // Only now does the update drop the old server from SPF and delete its A record.
    const mx = await applyPhase(9);
    // 0 left on the old server at shutdown: everything it ever took is on the new active one.
    const onOld = await old.tokens(ALICE);
    expect(onOld).to.include.members(landedOnOld);
    expect(await mx1.tokens(ALICE)).to.include.members(onOld);
    figures.push(`old server at shutdown: ${onOld.length} messages, all on mx1 (0 left behind)`);
    await old.stop();
    oldShutDown = true;
    await deliveries(9, mx);
  });

  it("phase 0 after 9 (oldServer removed): the pair alone, the same MX as phase 9", async () => {
    await deliveries(0, await applyPhase(0));
  });

  it("counts over phases 0–9: 0 lost, 0 on the wrong server", () => {
    expect([...phasesDone].sort()).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(counts.lost).to.equal(0);
    expect(counts.wrongServer).to.equal(0);
    expect(counts.sent).to.be.greaterThan(0);
  });
});
