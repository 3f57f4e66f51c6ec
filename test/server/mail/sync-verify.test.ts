// hastack-mail-sync --verify is what the fallback runbook trusts before unfencing. It compared
// message counts only, so two servers each holding one different message "verified". Real
// Postfix + Dovecot (test/support/mail-harness.ts); the sync itself is made to carry nothing
// (a doveadm on PATH whose `sync` does nothing), as a sync that missed a message would.
import * as fs from "fs";
import * as path from "path";
import { expect } from "chai";
import { MailServer, MailWorld, requireBinaries } from "../../support/mail-harness";

const CAROL = "carol@example.test";
const DAN = "dan@example.test";

describe("hastack-mail-sync --verify compares messages, not counts", function () {
  this.timeout(240000);
  let world: MailWorld;
  let primary: MailServer;
  let standby: MailServer;
  const verify = async (): Promise<{ code: number; stderr: string }> =>
    primary
      .script("hastack-mail-sync", "--verify")
      .then(({ stderr }) => ({ code: 0, stderr }))
      .catch((e: Error) => ({ code: 1, stderr: e.message }));

  before(async () => {
    requireBinaries();
    world = await MailWorld.create();
    await world.setUsers({ [CAROL]: "carol-pw-1", [DAN]: "dan-pw-1" });
    [primary, standby] = await Promise.all([
      world.server("primary", "primary", world.ips[0]),
      world.server("standby", "standby", world.ips[1]),
    ]);
    await primary.script("hastack-mail-refresh");
    await standby.script("hastack-mail-refresh");
    // Both users hold one message on each side, the same one (a real sync carried it).
    await primary.deliver(DAN, "dan-both");
    await primary.deliver(CAROL, "carol-both");
    await primary.waitForMessages(DAN, 1);
    await primary.waitForMessages(CAROL, 1);
    await primary.script("hastack-mail-sync");
    await standby.waitForMessages(DAN, 1);
    await standby.waitForMessages(CAROL, 1);
    // Carol then gets one more message on each side, a different one, and no sync between (the
    // failover case: equal counts, uidnext and modseqs, different contents).
    await primary.deliver(CAROL, "carol-on-primary");
    await standby.deliver(CAROL, "carol-on-standby");
    await primary.waitForMessages(CAROL, 2);
    await standby.waitForMessages(CAROL, 2);
    const real = (await primary.shell("command -v doveadm")).stdout.trim();
    fs.writeFileSync(
      path.join(world.binDir, "doveadm"),
      `#!/bin/sh\n# Test: a sync that carries nothing.\n[ "$3" = sync ] && exit 0\nexec ${real} "$@"\n`,
      { mode: 0o755 },
    );
  });

  after(async () => {
    if (world) {
      await world.stop();
      world.remove();
    }
  });

  it("equal counts, different messages: exit 1 naming the user, not the user whose copies match", async () => {
    expect(await primary.tokens(CAROL)).to.deep.equal(["carol-both", "carol-on-primary"]);
    expect(await standby.tokens(CAROL)).to.deep.equal(["carol-both", "carol-on-standby"]);
    const { code, stderr } = await verify();
    expect(code).to.equal(1);
    expect(stderr).to.contain(`${CAROL}: messages differ from ${standby.ip}`);
    expect(stderr).not.to.contain(`${DAN}: messages differ`);
    expect(stderr).not.to.contain("verified");
  });

  it("a message on each side after an earlier sync: the real (full) sync merges both, verify exit 0", async () => {
    fs.rmSync(path.join(world.binDir, "doveadm"));
    const { code, stderr } = await verify();
    expect(code, stderr).to.equal(0);
    expect(stderr).to.contain("verified: 2 users hold the same messages");
    const all = ["carol-both", "carol-on-primary", "carol-on-standby"];
    expect(await primary.tokens(CAROL)).to.deep.equal(all);
    expect(await standby.tokens(CAROL)).to.deep.equal(all);
  });

  it("mail reaching the active side after the sync (a sender's retry) does not fail it: what each held before is on both", async () => {
    const real = (await primary.shell("command -v doveadm")).stdout.trim();
    const message = path.join(world.binDir, "late.eml");
    fs.writeFileSync(
      message,
      `From: sender@example.net\nTo: ${CAROL}\nSubject: hastack test carol-late\n` +
        `Message-Id: <carol-late@example.net>\n\ntoken carol-late\n`,
    );
    // The real sync, then one delivery to the standby before the check reads it.
    fs.writeFileSync(
      path.join(world.binDir, "doveadm"),
      `#!/bin/sh\n# Test: mail lands on the standby right after each sync.\n` +
        `if [ "$3" = sync ]; then ${real} "$@"; rc=$?\n` +
        `/usr/lib/dovecot/dovecot-lda -c ${standby.layout.dovecotConfig} -d ${CAROL} -f sender@example.net < ${message}\n` +
        `exit $rc; fi\nexec ${real} "$@"\n`,
      { mode: 0o755 },
    );
    try {
      const { code, stderr } = await verify();
      expect(code, stderr).to.equal(0);
      expect(stderr).to.contain("verified: 2 users hold the same messages");
      expect(await standby.tokens(CAROL)).to.include("carol-late");
      expect(await primary.tokens(CAROL)).to.include.members([
        "carol-both",
        "carol-on-primary",
        "carol-on-standby",
      ]);
    } finally {
      fs.rmSync(path.join(world.binDir, "doveadm"));
    }
  });
});
