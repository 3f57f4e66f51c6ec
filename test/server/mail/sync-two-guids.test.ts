// A user whose very first message reaches both servers before any sync (a failover of a new user,
// or the standby taking mail as second MX) gets an INBOX on each server, each under its own
// mailbox GUID. Dovecot 2.3's dsync swaps the two GUIDs at every pass and never copies a message
// ("Remote lost mailbox GUID"; found by the mail drill), so hastack-mail-sync then runs a one-way
// pass (the standby takes the primary's GUID) before its second two-way pass. Real Postfix +
// Dovecot (test/support/mail-harness.ts), the stack's rendered scripts, SMTP to each server.
import { expect } from "chai";
import * as fs from "fs";
import { MailServer, MailWorld, requireBinaries } from "../../support/mail-harness";

const ERIN = "erin@example.test";
const FAY = "fay@example.test";
const DAN = "dan@example.test";
const GUS = "gus@example.test";

describe("a mailbox made on both servers before a sync (two GUIDs) is merged by hastack-mail-sync", function () {
  this.timeout(300000);
  let world: MailWorld;
  let primary: MailServer;
  let standby: MailServer;
  let danGuid: string;
  let erinBefore: Record<string, string>[];

  /** Mailbox name → GUID of `user` on `server`. */
  const guids = async (server: MailServer, user: string): Promise<Record<string, string>> => {
    const out = await server.doveadm("-f", "tab", "mailbox", "status", "-u", user, "guid", "*");
    const rows = out.trim().split("\n").slice(1);
    return Object.fromEntries(rows.filter(Boolean).map((r) => r.split("\t") as [string, string]));
  };
  const run = async (name: string, ...args: string[]): Promise<{ code: number; out: string }> =>
    primary
      .script(name, ...args)
      .then(({ stderr }) => ({ code: 0, out: stderr }))
      .catch((e: Error) => ({ code: 1, out: e.message }));

  before(async () => {
    requireBinaries();
    world = await MailWorld.create();
    await world.setUsers({
      [ERIN]: "erin-pw-1",
      [FAY]: "fay-pw-1",
      [DAN]: "dan-pw-1",
      [GUS]: "gus-pw-1",
    });
    [primary, standby] = await Promise.all([
      world.server("primary", "primary", world.ips[0]),
      world.server("standby", "standby", world.ips[1]),
    ]);
    // Dan has been synced before: his INBOX has one GUID, which the fix must leave alone.
    await primary.deliver(DAN, "dan-synced");
    await primary.waitForMessages(DAN, 1);
    await primary.script("hastack-mail-sync");
    await standby.waitForMessages(DAN, 1);
    danGuid = (await guids(primary, DAN)).INBOX;
    // Erin's and Fay's very first messages: one on each server, no sync between.
    for (const user of [ERIN, FAY]) {
      const name = user.split("@")[0];
      await primary.deliver(user, `${name}-first-on-primary`);
      await standby.deliver(user, `${name}-first-on-standby`);
      await primary.waitForMessages(user, 1);
      await standby.waitForMessages(user, 1);
    }
    // Erin also filed a message in a folder of the same name on each side (as a mail client's
    // Sent is made on first use), each made by its own server.
    for (const [server, token] of [
      [primary, "erin-sent-on-primary"],
      [standby, "erin-sent-on-standby"],
    ] as const) {
      await server.doveadm("mailbox", "create", "-u", ERIN, "Sent");
      await server.shell(
        `printf 'Message-Id: <${token}@example.net>\\nSubject: ${token}\\n\\n${token}\\n' | ` +
          `doveadm -c ${server.layout.dovecotConfig} save -u ${ERIN} -m Sent`,
      );
    }
  });

  after(async () => {
    if (world) {
      await world.dispose();
    }
  });

  it("each server holds its own INBOX under its own GUID before the sync (the defect's start)", async () => {
    const [p, s] = await Promise.all([guids(primary, ERIN), guids(standby, ERIN)]);
    erinBefore = [p, s];
    expect(p.INBOX).to.match(/^[0-9a-f]{32}$/);
    expect(s.INBOX).to.match(/^[0-9a-f]{32}$/);
    expect(p.INBOX).not.to.equal(s.INBOX);
    expect(p.Sent).not.to.equal(s.Sent);
  });

  it("the timer's sync exits 0 and both servers hold every message of both sides, once", async () => {
    const { code, out } = await run("hastack-mail-sync");
    expect(code, out).to.equal(0);
    expect(out).to.contain("two GUIDs: one-way pass first");
    const erin = ["erin-first-on-primary", "erin-first-on-standby", "erin-sent-on-primary"];
    erin.push("erin-sent-on-standby");
    const fay = ["fay-first-on-primary", "fay-first-on-standby"];
    for (const server of [primary, standby]) {
      // tokens() lists every message of every mailbox: a duplicate would appear twice.
      expect(await server.tokens(ERIN), `${ERIN} on ${server.name}`).to.deep.equal(erin.sort());
      expect(await server.tokens(FAY), `${FAY} on ${server.name}`).to.deep.equal(fay);
      expect(await server.tokens(DAN), `${DAN} on ${server.name}`).to.deep.equal(["dan-synced"]);
    }
    // Same messages in the same mailboxes, byte for byte.
    for (const user of [ERIN, FAY, DAN]) {
      expect(await standby.messageHashes(user), user).to.deep.equal(
        await primary.messageHashes(user),
      );
    }
  });

  it("every mailbox has one GUID on both servers; a mailbox already in sync kept its own", async () => {
    for (const user of [ERIN, FAY, DAN]) {
      expect(await guids(standby, user), user).to.deep.equal(await guids(primary, user));
    }
    expect((await guids(primary, DAN)).INBOX).to.equal(danGuid);
    // Each mailbox kept one of its two GUIDs (the one-way pass copies one side's; none is made up).
    const erin = await guids(primary, ERIN);
    for (const box of ["INBOX", "Sent"]) {
      expect([erinBefore[0][box], erinBefore[1][box]], box).to.include(erin[box]);
    }
    expect(out(await run("hastack-mail-sync", "--verify"))).to.contain(
      "verified: 4 users hold the same messages",
    );
  });

  it("later syncs exit 0 and change no GUID again; new mail on either side still reaches both", async () => {
    const before = await guids(primary, ERIN);
    await primary.deliver(ERIN, "erin-later-on-primary");
    await standby.deliver(ERIN, "erin-later-on-standby");
    await primary.waitForMessages(ERIN, 5);
    await standby.waitForMessages(ERIN, 5);
    const { code, out: log } = await run("hastack-mail-sync");
    expect(code, log).to.equal(0);
    expect(log).not.to.contain("two GUIDs");
    expect(await guids(primary, ERIN)).to.deep.equal(before);
    expect(await guids(standby, ERIN)).to.deep.equal(before);
    expect(await standby.tokens(ERIN)).to.have.length(6);
    expect(await primary.tokens(ERIN)).to.deep.equal(await standby.tokens(ERIN));
  });

  it("the fallback (reverse sync, verify) merges a user whose first mail reached both, then unfences", async () => {
    // Gus is new: his first message reached the primary just before it failed, the next one the
    // standby while it served.
    await primary.deliver(GUS, "gus-first-on-primary");
    await standby.deliver(GUS, "gus-first-on-standby");
    await primary.waitForMessages(GUS, 1);
    await standby.waitForMessages(GUS, 1);
    const { code, out: log } = await run("hastack-mail-fallback");
    expect(code, log).to.equal(0);
    expect(log).to.contain("two GUIDs: one-way pass first");
    expect(log).to.contain("verified: 4 users hold the same messages");
    expect(log).to.contain("fence released");
    expect(fs.existsSync(primary.file("state/unfenced")), "unfence ran").to.equal(true);
    const gus = ["gus-first-on-primary", "gus-first-on-standby"];
    expect(await primary.tokens(GUS)).to.deep.equal(gus);
    expect(await standby.tokens(GUS)).to.deep.equal(gus);
  });
});

function out(r: { code: number; out: string }): string {
  expect(r.code, r.out).to.equal(0);
  return r.out;
}
