// Real mail servers on loopback, configured by what components/mail.ts renders: mail goes in
// through Postfix (SMTP → LMTP → Dovecot Maildir), the stack's own scripts move it, and every
// message must arrive — counted and compared by content hash. Two parts:
//   - the pair: the primary's two-way dsync with the standby, mail landing on either side
//     between syncs, the fallback's reverse sync + verification before unfencing;
//   - the migration: steps 3 and 7 from an "old" server over IMAPS (verified TLS, master user),
//     mail reaching the old server between the two steps and the new one after step 6.
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { migrationSyncCommand } from "../../components/mail";
import { MailServer, MailWorld, requireBinaries } from "../support/mail-harness";

const ALICE = "alice@example.test";
const BOB = "bob@example.test";
const USERS = { [ALICE]: "alice-pw-1", [BOB]: "bob-pw-2", "postmaster@example.test": "pm-pw-3" };
const MASTER = { name: "hastack-migrate", password: "old-master-secret" };

/** Figures for the report: counts and durations, printed after the suite. */
const figures: string[] = [];

async function timed<T>(label: string, f: () => Promise<T>): Promise<T> {
  const started = Date.now();
  const result = await f();
  figures.push(`${label}: ${Date.now() - started} ms`);
  return result;
}

let tokenSeq = 0;
async function deliverMany(
  server: MailServer,
  user: string,
  count: number,
  tag: string,
): Promise<string[]> {
  // All at once, as `count` senders would.
  const tokens = Array.from({ length: count }, () => `${tag}-${++tokenSeq}`);
  await Promise.all(tokens.map((token) => server.deliver(user, token)));
  return tokens;
}

/** Both servers hold exactly the same messages for `user`: same mailboxes, same bytes. */
async function expectSameMessages(a: MailServer, b: MailServer, user: string): Promise<string[]> {
  const [ha, hb] = await Promise.all([a.messageHashes(user), b.messageHashes(user)]);
  expect(hb, `${user}: ${b.name} vs ${a.name}`).to.deep.equal(ha);
  return ha;
}

describe("mail servers for real (Postfix + Dovecot on loopback, rendered configs and scripts)", function () {
  this.timeout(240000);
  let world: MailWorld;

  before(async () => {
    requireBinaries();
    world = await MailWorld.create();
    await world.setUsers(USERS);
    world.setParameter("migration/master-password", MASTER.password);
  });

  after(async () => {
    if (world) {
      await world.stop();
      world.remove();
    }
    if (figures.length > 0) {
      console.log(`      figures:\n${figures.map((f) => `        ${f}`).join("\n")}`);
    }
  });

  describe("the pair: the primary's two-way dsync with the standby", () => {
    let primary: MailServer;
    let standby: MailServer;
    const sent: Record<string, string[]> = { [ALICE]: [], [BOB]: [] };

    before(async () => {
      [primary, standby] = await Promise.all([
        world.server("primary", "primary", world.ips[0]),
        world.server("standby", "standby", world.ips[1]),
      ]);
    });

    it("delivers through Postfix and Dovecot LMTP into Maildir under the mail root", async () => {
      sent[ALICE].push(...(await deliverMany(primary, ALICE, 1, "first")));
      await primary.waitForMessages(ALICE, 1);
      const maildir = path.join(primary.layout.mailRoot, "example.test", "alice", "Maildir");
      const files = ["new", "cur"].flatMap((d) =>
        fs.existsSync(path.join(maildir, d)) ? fs.readdirSync(path.join(maildir, d)) : [],
      );
      expect(files).to.have.length(1);
      expect(await primary.tokens(ALICE)).to.deep.equal(sent[ALICE]);
    });

    it("refuses a recipient that is not a user (no backscatter)", async () => {
      let failed = false;
      await primary.deliver("nobody-here@example.test", "unknown").catch((e: Error) => {
        failed = true;
        expect(String(e)).to.match(/550|Recipient address rejected/);
      });
      expect(failed, "Postfix accepted mail for an unknown user").to.equal(true);
    });

    it("the first sync copies every message to the standby, byte for byte", async () => {
      sent[ALICE].push(...(await deliverMany(primary, ALICE, 7, "before-sync")));
      sent[BOB].push(...(await deliverMany(primary, BOB, 4, "before-sync")));
      await primary.waitForMessages(ALICE, 8);
      await primary.waitForMessages(BOB, 4);
      expect(await standby.tokens(ALICE)).to.deep.equal([]);
      const { stderr } = await timed("pair sync #1 (12 messages, 3 users)", () =>
        primary.script("hastack-mail-sync"),
      );
      expect(stderr).to.contain(`synced every mailbox with ${world.ips[1]}`);
      for (const user of [ALICE, BOB]) {
        expect(await standby.tokens(user)).to.deep.equal([...sent[user]].sort());
        await expectSameMessages(primary, standby, user);
      }
      figures.push(
        `pair sync #1: ${sent[ALICE].length + sent[BOB].length} messages on the standby`,
      );
    });

    it("mail that reached either server between syncs is on both after the next sync", async () => {
      // The standby is the second MX: when the primary is unreachable, senders deliver there.
      const onPrimary = await deliverMany(primary, ALICE, 5, "between-primary");
      const onStandby = await deliverMany(standby, ALICE, 3, "between-standby");
      const bobOnStandby = await deliverMany(standby, BOB, 2, "between-standby");
      sent[ALICE].push(...onPrimary, ...onStandby);
      sent[BOB].push(...bobOnStandby);
      await primary.waitForMessages(ALICE, 13);
      await standby.waitForMessages(ALICE, 11);
      await timed("pair sync #2 (10 new messages, both directions)", () =>
        primary.script("hastack-mail-sync"),
      );
      for (const user of [ALICE, BOB]) {
        const expected = [...sent[user]].sort();
        expect(await primary.tokens(user), `${user} on primary`).to.deep.equal(expected);
        expect(await standby.tokens(user), `${user} on standby`).to.deep.equal(expected);
        await expectSameMessages(primary, standby, user);
      }
      expect(sent[ALICE]).to.have.length(16);
      expect(sent[BOB]).to.have.length(6);
      figures.push("pair sync #2: 16 + 6 = 22 messages identical on both servers, 0 lost");
    });

    it("records the success for monitoring (replication metric, last-sync stamp)", async () => {
      const metric = fs.readFileSync(
        path.join(primary.layout.textfileDir, "hastack_replication_mail.prom"),
        "utf8",
      );
      const m =
        /^hastack_replication_last_success_timestamp_seconds\{service="mail",side="standby"\} (\d+)\n$/.exec(
          metric,
        );
      expect(m, metric).to.not.equal(null);
      expect(Math.abs(Number(m![1]) - Date.now() / 1000)).to.be.lessThan(120);
      expect(fs.existsSync(path.join(primary.layout.stateDir, "last-sync"))).to.equal(true);
    });

    it('with the standby unreachable, exits 75 (the timer\'s "next time") naming it; the metric stays old', async () => {
      const metricFile = path.join(primary.layout.textfileDir, "hastack_replication_mail.prom");
      const before = fs.readFileSync(metricFile, "utf8");
      world.setParameter("private-ip/standby", world.ips[8]);
      try {
        const err = await primary.script("hastack-mail-sync").catch((e: Error) => e);
        expect(String(err)).to.contain("exit 75");
        expect(String(err)).to.contain(`cannot reach ${world.ips[8]}`);
        expect(fs.readFileSync(metricFile, "utf8")).to.equal(before);
      } finally {
        world.setParameter("private-ip/standby", world.ips[1]);
      }
    });

    it("the fallback refuses to unfence while the reverse sync cannot run", async () => {
      const unfenced = path.join(primary.layout.stateDir, "unfenced");
      // The standby (which served during the outage) is unreachable: nothing may be released.
      world.setParameter("private-ip/standby", world.ips[8]);
      try {
        let failed = false;
        await primary.script("hastack-mail-fallback").catch(() => {
          failed = true;
        });
        expect(failed, "fallback succeeded without reaching the standby").to.equal(true);
        expect(fs.existsSync(unfenced)).to.equal(false);
      } finally {
        world.setParameter("private-ip/standby", world.ips[1]);
      }
    });

    it("the fallback pulls what the standby took while it served, verifies, then unfences", async () => {
      const unfenced = path.join(primary.layout.stateDir, "unfenced");
      const taken = await deliverMany(standby, BOB, 4, "during-outage");
      sent[BOB].push(...taken);
      await standby.waitForMessages(BOB, 10);
      const { stderr } = await timed("fallback: reverse sync + verify", () =>
        primary.script("hastack-mail-fallback"),
      );
      expect(stderr).to.contain("users hold the same messages (GUIDs per mailbox) on both servers");
      expect(fs.existsSync(unfenced)).to.equal(true);
      expect(await primary.tokens(BOB)).to.deep.equal([...sent[BOB]].sort());
      await expectSameMessages(primary, standby, BOB);
    });

    it("refuses an unknown argument with exit 2", async () => {
      const err = await primary.script("hastack-mail-sync", "--sideways").catch((e: Error) => e);
      expect(String(err)).to.contain("exit 2");
    });
  });

  describe("the migration from an old server: steps 3 and 7 over IMAPS", () => {
    let old: MailServer;
    let fresh: MailServer;
    const onOld: Record<string, string[]> = { [ALICE]: [], [BOB]: [] };
    const onNew: string[] = [];

    before(async () => {
      [old, fresh] = await Promise.all([
        world.server("old", "primary", world.ips[2], { masterUser: MASTER }),
        world.server("new", "primary", world.ips[3]),
      ]);
      onOld[ALICE].push(...(await deliverMany(old, ALICE, 6, "old-before-3")));
      onOld[BOB].push(...(await deliverMany(old, BOB, 4, "old-before-3")));
      await old.waitForMessages(ALICE, 6);
      await old.waitForMessages(BOB, 4);
    });

    const command = (mode: "initial" | "final"): string =>
      migrationSyncCommand(
        { mode, oldIp: world.ips[2], masterUser: MASTER.name, oldPort: world.ports.imaps },
        fresh.layout,
      );

    it("step 3 refuses to run before step 2 (no users imported)", async () => {
      world.setParameter("users", "# nothing imported yet\n");
      try {
        const err = await fresh.shell(command("initial")).catch((e: Error) => e);
        expect(String(err)).to.contain("no users in /hastack/mail/users");
        expect(await fresh.tokens(ALICE)).to.deep.equal([]);
      } finally {
        await world.setUsers(USERS);
      }
    });

    it("refuses an old server whose certificate does not name the shared host name", async () => {
      const imposter = await world.server("imposter", "primary", world.ips[4], {
        masterUser: MASTER,
        certificateName: "someone-else.example.net",
      });
      await deliverMany(imposter, ALICE, 1, "imposter");
      const cmd = migrationSyncCommand(
        {
          mode: "initial",
          oldIp: world.ips[4],
          masterUser: MASTER.name,
          oldPort: world.ports.imaps,
        },
        fresh.layout,
      );
      const err = await fresh.shell(cmd).catch((e: Error) => e);
      expect(err).to.be.instanceOf(Error);
      expect(String(err)).to.match(/certificate|verify/i);
      expect(await fresh.tokens(ALICE)).to.deep.equal([]);
      await imposter.stop();
    });

    it("step 3 (initial) copies every mailbox byte for byte", async () => {
      await timed("migration step 3 (10 messages, 3 users)", () => fresh.shell(command("initial")));
      for (const user of [ALICE, BOB]) {
        expect(await fresh.tokens(user)).to.deep.equal([...onOld[user]].sort());
        await expectSameMessages(old, fresh, user);
      }
      figures.push("migration step 3: 10 of 10 messages on the new server");
    });

    it("step 7 (final) adds what reached the old server since and keeps what landed on the new one", async () => {
      // Between steps 3 and 6 the MX still points at the old server …
      onOld[ALICE].push(...(await deliverMany(old, ALICE, 3, "old-between-3-and-6")));
      onOld[BOB].push(...(await deliverMany(old, BOB, 1, "old-between-3-and-6")));
      // … from step 6 new mail lands on the new server.
      onNew.push(...(await deliverMany(fresh, ALICE, 3, "new-after-6")));
      await old.waitForMessages(ALICE, 9);
      await fresh.waitForMessages(ALICE, 9);
      await timed("migration step 7 (4 messages to carry, 3 to keep)", () =>
        fresh.shell(command("final")),
      );
      expect(await fresh.tokens(ALICE)).to.deep.equal([...onOld[ALICE], ...onNew].sort());
      expect(await fresh.tokens(BOB)).to.deep.equal([...onOld[BOB]].sort());
      // Every message of the old server is on the new one, byte for byte.
      for (const user of [ALICE, BOB]) {
        const oldHashes = await old.messageHashes(user);
        const newHashes = await fresh.messageHashes(user);
        expect(newHashes).to.include.members(oldHashes);
      }
      figures.push(
        `migration step 7: new server holds ${onOld[ALICE].length + onOld[BOB].length} of ` +
          `${onOld[ALICE].length + onOld[BOB].length} old messages + ${onNew.length} delivered to it, 0 lost`,
      );
    });

    it("the old server's mailboxes are left as they were (one-way)", async () => {
      expect(await old.tokens(ALICE)).to.deep.equal([...onOld[ALICE]].sort());
      expect(await old.tokens(BOB)).to.deep.equal([...onOld[BOB]].sort());
    });

    it("running step 7 again changes nothing (idempotent)", async () => {
      const before = await fresh.messageHashes(ALICE);
      await fresh.shell(command("final"));
      expect(await fresh.messageHashes(ALICE)).to.deep.equal(before);
    });
  });
});
