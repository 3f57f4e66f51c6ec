// Issue 17, queued mail: hastack-mail-queue (server/mail/hastack-mail-queue.sh, as
// components/mail.ts renders it) against a real Postfix on loopback. Mail is really queued —
// accepted over SMTP while Dovecot's LMTP is down, so Postfix defers it — then held with
// `postsuper -h`: the exported size and age are non-zero and promtool accepts the textfile;
// `flush` refuses while held mail is left; `adopt` moves the queue from Debian's directory to
// the data volume's with Postfix stopped (and refuses while a Postfix still runs on it); after
// release the same messages reach the mailbox and the metrics drop to zero.
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  DOMAIN,
  MailServer,
  MailWorld,
  requireBinaries,
  run,
  waitFor,
} from "../../support/mail-harness";

const USER = `bob@${DOMAIN}`;

/** One metric family's samples from a Prometheus textfile: `name{labels}` → value. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) {
      out.set(m[2] ?? "", Number(m[3]));
    }
  }
  return out;
}

describe("hastack-mail-queue: the Postfix queue's size and age, flushed and moved", function () {
  let world: MailWorld;
  let server: MailServer;
  let promFile: string;

  before(async function () {
    requireBinaries();
    if (spawnSync("sh", ["-c", "command -v promtool"]).status !== 0) {
      throw new Error(
        "promtool not found: install the Debian package prometheus (test/install-deps.sh)",
      );
    }
    world = await MailWorld.create();
    await world.setUsers({ [USER]: "secret-bob" });
    server = await world.server("mx1", "primary", world.ips[0]);
    promFile = path.join(server.layout.textfileDir, "hastack_mail_queue.prom");
  });

  after(async () => {
    await world?.dispose();
  });

  async function metrics(): Promise<string> {
    await server.script("hastack-mail-queue", "metrics");
    const text = fs.readFileSync(promFile, "utf8");
    const lint = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    expect(lint.status, `promtool check metrics:\n${lint.stdout}${lint.stderr}`).to.equal(0);
    return text;
  }

  function queued(text: string): Record<string, number> {
    return Object.fromEntries(
      [...samples(text, "hastack_mail_queue_messages")].map(([labels, v]) => [
        /queue="([a-z]+)"/.exec(labels)![1],
        v,
      ]),
    );
  }

  const age = (text: string): number =>
    samples(text, "hastack_mail_queue_oldest_message_age_seconds").get("")!;

  async function postqueue(): Promise<{ queue_name: string; queue_id: string }[]> {
    const { stdout } = await run("postqueue", ["-c", server.layout.postfixConfigDir, "-j"]);
    return stdout
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as { queue_name: string; queue_id: string });
  }

  it("an empty queue exports zeros and a fresh report time", async () => {
    const before = Math.floor(Date.now() / 1000);
    const text = await metrics();
    expect(queued(text)).to.deep.equal({
      maildrop: 0,
      incoming: 0,
      active: 0,
      deferred: 0,
      hold: 0,
    });
    expect(age(text)).to.equal(0);
    const reported = samples(text, "hastack_mail_queue_last_report_timestamp_seconds").get("")!;
    expect(reported).to.be.within(before, before + 120);
  });

  it("held mail gives a non-zero size and age; flush refuses while it is left", async () => {
    const started = Math.floor(Date.now() / 1000);
    // Dovecot down: Postfix accepts the mail but cannot hand it to LMTP, so it stays queued.
    await server.stopDovecot();
    await server.deliver(USER, "queued1");
    await server.deliver(USER, "queued2");
    await waitFor(
      "both messages deferred",
      async () => (await postqueue()).filter((m) => m.queue_name === "deferred").length === 2,
      120000,
      () => server.log("postfix").split("\n").slice(-10).join("\n"),
    );
    await run("postsuper", ["-c", server.layout.postfixConfigDir, "-h", "ALL"]);
    let text = "";
    await waitFor(
      "the oldest message at least 2 s old",
      async () => age((text = await metrics())) >= 2,
      60000,
    );
    expect(queued(text)).to.include({ hold: 2, deferred: 0, active: 0 });
    expect(age(text)).to.be.at.most(Math.floor(Date.now() / 1000) - started + 1);

    const flush = spawnSync(
      "bash",
      [path.join(server.layout.sbinDir, "hastack-mail-queue"), "flush", "--wait", "30"],
      { env: world.env(), encoding: "utf8", timeout: 120000 },
    );
    expect(flush.status, flush.stderr).to.equal(1);
    expect(flush.stderr).to.contain("refusing: 2 message(s) still queued (2 on hold)");
  });

  it("adopt moves the queue to the data volume's directory, only with Postfix stopped", async () => {
    const oldQueue = server.layout.postfixQueueDir;
    const newQueue = server.file("data/postfix");
    const ids = (await postqueue()).map((m) => m.queue_id);
    expect(ids).to.have.length(2);
    const mainCf = path.join(server.layout.postfixConfigDir, "main.cf");
    fs.writeFileSync(
      mainCf,
      fs
        .readFileSync(mainCf, "utf8")
        .replace(`queue_directory = ${oldQueue}`, `queue_directory = ${newQueue}`),
    );
    fs.mkdirSync(newQueue, { recursive: true });

    // The old Postfix still runs on the old queue: refused, nothing moved.
    const refused = spawnSync(
      "bash",
      [path.join(server.layout.sbinDir, "hastack-mail-queue"), "adopt", oldQueue],
      { env: world.env(), encoding: "utf8", timeout: 120000 },
    );
    expect(refused.status, refused.stderr).to.equal(1);
    expect(refused.stderr).to.contain("a Postfix still runs on");
    expect(fs.readdirSync(path.join(oldQueue, "hold"))).to.have.length(2);

    const masterPid = Number(fs.readFileSync(path.join(oldQueue, "pid", "master.pid"), "utf8"));
    await server.stopPostfix();
    // adopt asks `kill -0` of the old master, which a zombie still answers: on a server systemd
    // reaps the master at once, here init takes seconds (the harness's stop counts the zombie
    // as stopped). Wait for the reaping, as a server would not need to.
    await waitFor(
      `the stopped Postfix master (pid ${masterPid}) reaped`,
      () => {
        try {
          process.kill(masterPid, 0);
          return false;
        } catch {
          return true;
        }
      },
      60000,
    );
    server.layout.postfixQueueDir = newQueue;
    const dovecotConf = server.layout.dovecotConfig;
    fs.writeFileSync(
      dovecotConf,
      fs
        .readFileSync(dovecotConf, "utf8")
        .split(`${oldQueue}/private/`)
        .join(`${newQueue}/private/`),
    );
    const { stderr } = await server.script("hastack-mail-queue", "adopt", oldQueue);
    expect(stderr).to.contain(`moved`);
    for (const q of ["maildrop", "incoming", "active", "deferred", "hold"]) {
      const dir = path.join(oldQueue, q);
      const left = fs.existsSync(dir)
        ? spawnSync("find", [dir, "-type", "f"], { encoding: "utf8" }).stdout.trim()
        : "";
      expect(left, `files left in ${dir}`).to.equal("");
    }
    // Adopting again finds nothing to move and changes nothing.
    await server.script("hastack-mail-queue", "adopt", oldQueue);

    await server.startPostfix();
    const text = await metrics();
    expect(queued(text)).to.include({ hold: 2 });
    expect(age(text)).to.be.at.least(2);
  });

  it("once released, flush delivers every queued message and the metrics drop to zero", async () => {
    await server.startDovecot();
    await run("postsuper", ["-c", server.layout.postfixConfigDir, "-H", "ALL"]);
    await server.script("hastack-mail-queue", "flush", "--wait", "120");
    await server.waitForMessages(USER, 2, 60000);
    expect(await server.tokens(USER)).to.deep.equal(["queued1", "queued2"]);
    const text = await metrics();
    expect(Object.values(queued(text)).reduce((a, b) => a + b, 0)).to.equal(0);
    expect(age(text)).to.equal(0);
  });
});
