// Step 3 of the move (hastack-mail-migrate initial) on a new server that already has its users'
// INBOXes: a test delivery, a login or an earlier run (step 3 applied again after a step back;
// the migration drill's second run on the kept stack) makes them. `doveadm backup -R` failed
// there ("INBOX can't be deleted", exit 65) after expunging what the new server held; step 3
// merges one way instead.
// Real Postfix + Dovecot on loopback (test/support/mail-harness.ts), the rendered script.
import { expect } from "chai";
import { migrationSyncCommand } from "../../components/mail";
import { MailServer, MailWorld, requireBinaries } from "../support/mail-harness";

const ALICE = "alice@example.test";
const BOB = "bob@example.test";
const USERS = { [ALICE]: "alice-pw-1", [BOB]: "bob-pw-2" };
const MASTER = { name: "hastack-migrate", password: "old-master-secret" };

describe("migration step 3 onto a new server whose INBOXes exist (real Postfix + Dovecot)", function () {
  this.timeout(240000);
  let world: MailWorld;
  let old: MailServer;
  let fresh: MailServer;
  const onOld: Record<string, string[]> = { [ALICE]: [], [BOB]: [] };

  before(async () => {
    requireBinaries();
    world = await MailWorld.create();
    await world.setUsers(USERS);
    world.setParameter("migration/master-password", MASTER.password);
    [old, fresh] = await Promise.all([
      world.server("old", "primary", world.ips[2], { masterUser: MASTER }),
      world.server("new", "primary", world.ips[3]),
    ]);
    for (let i = 0; i < 3; i++) {
      await old.deliver(ALICE, `old-alice-${i}`);
      onOld[ALICE].push(`old-alice-${i}`);
    }
    await old.deliver(BOB, "old-bob-0");
    onOld[BOB].push("old-bob-0");
    await old.waitForMessages(ALICE, 3);
    await old.waitForMessages(BOB, 1);
    // ALICE's INBOX holds a message delivered to the new server (a test delivery); BOB's exists,
    // empty, because something opened it (a login).
    await fresh.deliver(ALICE, "new-alice-0");
    await fresh.waitForMessages(ALICE, 1);
    await fresh.doveadm("mailbox", "status", "-u", BOB, "guid", "INBOX");
  });

  after(async () => {
    if (world) {
      await world.stop();
      world.remove();
    }
  });

  const initial = (): Promise<{ stdout: string; stderr: string }> =>
    fresh.shell(
      migrationSyncCommand(
        {
          mode: "initial",
          oldIp: world.ips[2],
          masterUser: MASTER.name,
          oldPort: world.ports.imaps,
        },
        fresh.layout,
      ),
    );

  it("copies every old message and keeps the new server's own", async () => {
    await initial();
    expect(await fresh.tokens(ALICE)).to.deep.equal([...onOld[ALICE], "new-alice-0"].sort());
    expect(await fresh.tokens(BOB)).to.deep.equal(onOld[BOB]);
    for (const user of [ALICE, BOB]) {
      expect(await fresh.messageHashes(user)).to.include.members(await old.messageHashes(user));
    }
  });

  it("run again (a re-applied step 3) changes nothing", async () => {
    const before = await fresh.messageHashes(ALICE);
    await initial();
    expect(await fresh.messageHashes(ALICE)).to.deep.equal(before);
    expect(await fresh.tokens(BOB)).to.deep.equal(onOld[BOB]);
  });

  it("leaves the old server's mailboxes as they were (one way)", async () => {
    expect(await old.tokens(ALICE)).to.deep.equal([...onOld[ALICE]].sort());
    expect(await old.tokens(BOB)).to.deep.equal(onOld[BOB]);
  });
});
