// What the mail drill found on the booted stack (issue 12): a user whose first message reached
// the primary and, before the next sync, another reached the standby (the primary had died) got
// two INBOXes with two GUIDs, and the pair's two-way dsync could never sync them again (exit 2,
// "Remote lost mailbox GUID"): the fallback refused for good. Real Postfix + Dovecot with the
// rendered configs and scripts (test/support/mail-harness.ts): each server's refresh makes the
// INBOX under the GUID both derive from the user's name, so the first sync succeeds.
import { expect } from "chai";
import { MailServer, MailWorld, requireBinaries } from "../../support/mail-harness";

const CAROL = "carol@example.test";

describe("mail pair: a mailbox first written on both servers between two syncs still syncs", function () {
  this.timeout(240000);
  let world: MailWorld;
  let primary: MailServer;
  let standby: MailServer;

  before(async () => {
    requireBinaries();
    world = await MailWorld.create();
    await world.setUsers({ [CAROL]: "carol-pw-1" });
    primary = await world.server("primary", "primary", world.ips[0]);
    standby = await world.server("standby", "standby", world.ips[1]);
  });

  after(async () => {
    if (world) {
      await world.stop();
      world.remove();
    }
  });

  it("both servers give the user's INBOX the same GUID before any mail", async () => {
    // The refresh timer runs on both servers with Dovecot up (first boot runs it before).
    await primary.script("hastack-mail-refresh");
    await standby.script("hastack-mail-refresh");
    const guid = async (s: MailServer): Promise<string> =>
      (await s.doveadm("mailbox", "status", "-u", CAROL, "guid", "INBOX")).trim();
    const [p, s] = [await guid(primary), await guid(standby)];
    expect(p).to.match(/^INBOX guid=[0-9a-f]{32}$/);
    expect(s).to.equal(p);
  });

  it("one message on each side, then the primary's sync: exit 0 and both hold both", async () => {
    await primary.deliver(CAROL, "first-on-primary");
    await standby.deliver(CAROL, "first-on-standby");
    await primary.waitForMessages(CAROL, 1);
    await standby.waitForMessages(CAROL, 1);
    const { stderr } = await primary.script("hastack-mail-sync", "--verify");
    expect(stderr).to.contain("verified: 1 users hold the same messages");
    const tokens = await primary.tokens(CAROL);
    expect(tokens).to.have.length(2);
    expect(await standby.tokens(CAROL)).to.deep.equal(tokens);
  });
});
