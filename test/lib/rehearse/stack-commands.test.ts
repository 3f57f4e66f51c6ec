// The remote-command runner of the stack rehearsal (issue 11; `--apply` of issue 12 builds on
// it): what it reads from a synth (real @pulumi/command resources under mocks, secrets and all),
// the order it runs them in, and real runs over SSH to a real sshd on loopback — stdin, the
// environment (AcceptEnv), a failing command naming its URN, a host key other than the pinned
// one refused before anything runs, a host that never answers.
import { expect } from "chai";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import { InspectedResource, runUnderMocks, synthesize } from "../../../lib/synth/offline-synth";
import { PACKAGE_ROOT } from "../../../lib/package-root";
import {
  RemoteCommandError,
  RemoteCommandSpec,
  orderCommands,
  remoteCommandsOf,
  dialDelaySeconds,
  runRemoteCommand,
  runRemoteCommands,
  runRemoteCommandsWhenReady,
} from "../../../lib/rehearse/stack/commands";
import { freePort } from "../../../lib/rehearse/drill";

function spec(over: Partial<RemoteCommandSpec>): RemoteCommandSpec {
  return {
    urn: `urn:pulumi:t::p::command:remote:Command::${over.name ?? "c"}`,
    name: "c",
    host: "127.0.0.1",
    port: 22,
    user: "root",
    dialErrorLimit: 1,
    environment: {},
    triggers: [],
    dependsOn: [],
    ...over,
  };
}

describe("stack rehearsal: remote commands from the synth", function () {
  this.timeout(180_000);
  let specs: RemoteCommandSpec[];
  before(async () => {
    let unmasked: InspectedResource[] = [];
    const d = await runUnderMocks(
      () => {
        const connection = {
          host: "198.51.100.7",
          user: "admin",
          privateKey: pulumi.secret("PRIVATE"),
          hostKey: "ssh-ed25519 AAAAHOST",
          dialErrorLimit: 40,
        };
        const first = new command.remote.Command("setup", {
          connection,
          create: "bash -s",
          stdin: "echo hi",
          environment: pulumi.secret({ HASTACK_X: "secret-value" }),
        });
        // An input reference (no dependsOn): the engine orders it after `first` all the same.
        new command.remote.Command("uses-output", {
          connection,
          create: "true",
          triggers: [first.id],
        });
        new command.remote.Command(
          "flip",
          { connection: { ...connection, port: 2222 }, triggers: ["primary"] },
          { dependsOn: [first] },
        );
      },
      { inspect: (rs) => (unmasked = rs) },
    );
    specs = remoteCommandsOf(d, unmasked);
  });

  it("reads each command's connection, operations, stdin and secret environment", () => {
    const setup = specs.find((s) => s.name === "setup")!;
    expect(setup).to.include({
      host: "198.51.100.7",
      port: 22,
      user: "admin",
      privateKey: "PRIVATE",
      hostKey: "ssh-ed25519 AAAAHOST",
      dialErrorLimit: 40,
      create: "bash -s",
      stdin: "echo hi",
    });
    expect(setup.environment).to.deep.equal({ HASTACK_X: "secret-value" });
    const flip = specs.find((s) => s.name === "flip")!;
    expect(flip.port).to.equal(2222);
    expect(flip.create).to.equal(undefined);
  });

  it("takes dependencies from dependsOn and from input references", () => {
    const setup = specs.find((s) => s.name === "setup")!;
    expect(specs.find((s) => s.name === "flip")!.dependsOn).to.deep.equal([setup.urn]);
    expect(specs.find((s) => s.name === "uses-output")!.dependsOn).to.deep.equal([setup.urn]);
    expect(setup.dependsOn).to.deep.equal([]);
  });

  it("refuses masked inputs, naming the command", async () => {
    const d = await runUnderMocks(() => {
      new command.remote.Command("masked", {
        connection: pulumi.secret({ host: "h", privateKey: "k" }),
        create: "true",
      });
    });
    expect(() => remoteCommandsOf(d)).to.throw(/Command::masked: connection is "\[secret\]"/);
  });

  it("orders dependencies first and names the members of a cycle", () => {
    const a = spec({ name: "a", urn: "A", dependsOn: ["C"] });
    const b = spec({ name: "b", urn: "B" });
    const c = spec({ name: "c", urn: "C", dependsOn: ["B"] });
    expect(orderCommands([a, b, c]).map((s) => s.name)).to.deep.equal(["b", "c", "a"]);
    expect(() =>
      orderCommands([
        spec({ name: "x", urn: "X", dependsOn: ["Y"] }),
        spec({ name: "y", urn: "Y", dependsOn: ["X"] }),
      ]),
    ).to.throw(/cycle: x, y/);
  });
});

async function until(what: string, cond: () => Promise<boolean>, seconds: number): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    if (await cond()) {
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`gave up after ${seconds} s waiting for ${what}`);
}

describe("stack rehearsal: remote commands over a real sshd", function () {
  this.timeout(120_000);
  let dir: string;
  let sshd: ChildProcess | undefined;
  let port: number;
  let clientKey: string;
  let hostPub: string;
  let otherHostPub: string;
  const user = os.userInfo().username;

  before(async function () {
    for (const bin of ["/usr/sbin/sshd", "ssh", "ssh-keygen"]) {
      if (spawnSync("sh", ["-c", `command -v ${bin}`]).status !== 0) {
        throw new Error(
          `${bin} not found: install openssh-server openssh-client (test/install-deps.sh)`,
        );
      }
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-cmd-test-"));
    const keygen = (f: string): string => {
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, f)]);
      return fs.readFileSync(path.join(dir, `${f}.pub`), "utf8").trim();
    };
    const clientPub = keygen("client");
    clientKey = fs.readFileSync(path.join(dir, "client"), "utf8");
    hostPub = keygen("host").split(" ").slice(0, 2).join(" ");
    otherHostPub = keygen("other-host").split(" ").slice(0, 2).join(" ");
    fs.writeFileSync(path.join(dir, "authorized_keys"), `${clientPub}\n`);
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    port = await freePort();
    fs.writeFileSync(
      path.join(dir, "sshd_config"),
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${path.join(dir, "host")}`,
        `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
        `PidFile ${path.join(dir, "sshd.pid")}`,
        // What server/mysql/sshd-accept-env.conf installs on the servers.
        "AcceptEnv HASTACK_*",
        "StrictModes no",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "",
      ].join("\n"),
    );
    sshd = spawn(
      "/usr/sbin/sshd",
      ["-D", "-f", path.join(dir, "sshd_config"), "-E", path.join(dir, "sshd.log")],
      { stdio: "ignore" },
    );
    await until(
      "sshd to listen",
      () =>
        new Promise((resolve) => {
          const s = net.connect(port, "127.0.0.1", () => {
            s.destroy();
            resolve(true);
          });
          s.on("error", () => resolve(false));
        }),
      30,
    );
  });

  after(() => {
    sshd?.kill("SIGTERM");
    if (dir) {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const target = (over: Partial<RemoteCommandSpec>): RemoteCommandSpec =>
    spec({ port, user, privateKey: clientKey, hostKey: hostPub, ...over });

  it("pipes stdin and sends the environment through AcceptEnv", async () => {
    const out = await runRemoteCommand(
      target({
        create: "bash -s",
        stdin: 'echo "from stdin: $HASTACK_GREETING"; echo "other: ${OTHER_VAR:-unset}"\n',
        environment: { HASTACK_GREETING: "hello world; $(not run)", OTHER_VAR: "x" },
      }),
    );
    // OTHER_VAR is sent too, but sshd accepts only HASTACK_*: as on the servers.
    expect(out.stdout).to.equal("from stdin: hello world; $(not run)\nother: unset\n");
  });

  it("fails a non-zero exit with an error naming the URN, the host and the status", async () => {
    const s = target({ name: "broken", create: "echo bad thing >&2; exit 7" });
    let err: RemoteCommandError | undefined;
    await runRemoteCommand(s).catch((e: RemoteCommandError) => (err = e));
    expect(err).to.be.instanceOf(RemoteCommandError);
    expect(err!.message).to.contain(s.urn);
    expect(err!.message).to.match(/exited 7: bad thing/);
  });

  it("refuses a host whose key is not the pinned one, before the command runs", async () => {
    const marker = path.join(dir, "ran-with-wrong-key");
    let err: Error | undefined;
    await runRemoteCommand(
      target({ name: "pinned", hostKey: otherHostPub, create: `touch ${marker}` }),
    ).catch((e: Error) => (err = e));
    expect(err?.message).to.match(
      /Command::pinned: 127\.0\.0\.1 did not present the connection's hostKey in 1 dial attempts: refused/,
    );
    expect(fs.existsSync(marker)).to.equal(false);
  });

  it("uses the context's key and host key in place of the synth's secrets and mocks", async () => {
    const out = await runRemoteCommand(
      target({ privateKey: "[secret]", hostKey: "ssh-ed25519 AAAAMOCK", create: "echo ok" }),
      { connect: () => ({ privateKey: clientKey, hostKey: hostPub }) },
    );
    expect(out.stdout).to.equal("ok\n");
    let err: Error | undefined;
    await runRemoteCommand(target({ privateKey: "[secret]", create: "true" })).catch(
      (e: Error) => (err = e),
    );
    expect(err?.message).to.match(/no private key .* the context must supply it/);
  });

  it("dials up to dialErrorLimit times, then fails naming the URN", async () => {
    const closed = await freePort();
    const started = Date.now();
    let err: Error | undefined;
    await runRemoteCommand(
      target({ name: "nobody", port: closed, dialErrorLimit: 3, create: "true" }),
      {
        dialIntervalSeconds: 0.2,
      },
    ).catch((e: Error) => (err = e));
    expect(err?.message).to.match(
      /Command::nobody: .* after 3 dial attempts: .*Connection refused/,
    );
    expect(Date.now() - started).to.be.greaterThan(350);
  });

  it("runs every create in dependency order and stops at the first failure", async () => {
    const log = path.join(dir, "order.log");
    const mk = (name: string, deps: string[], create?: string): RemoteCommandSpec =>
      target({ name, urn: name.toUpperCase(), dependsOn: deps, create });
    const runs = await runRemoteCommands([
      mk("second", ["FIRST"], `echo second >>${log}`),
      mk("no-create", ["FIRST"]),
      mk("first", [], `echo first >>${log}`),
    ]);
    expect(fs.readFileSync(log, "utf8")).to.equal("first\nsecond\n");
    expect(runs.map((r) => `${r.urn}:${r.result}`)).to.deep.equal([
      "FIRST:ran",
      "SECOND:ran",
      "NO-CREATE:skipped",
    ]);
    fs.rmSync(log);
    let err: Error | undefined;
    await runRemoteCommands([
      mk("fails", [], "exit 3"),
      mk("after", ["FAILS"], `echo after >>${log}`),
    ]).catch((e: Error) => (err = e));
    expect(err?.message).to.match(/^FAILS: create on .* exited 3/);
    expect(fs.existsSync(log)).to.equal(false);
  });

  it("retries another host key within dialErrorLimit (the provider checks it in ssh.Dial), never running the command", async () => {
    const marker = path.join(dir, "ran-with-wrong-key-3");
    let err: Error | undefined;
    await runRemoteCommand(
      target({
        name: "pinned3",
        hostKey: otherHostPub,
        dialErrorLimit: 3,
        create: `touch ${marker}`,
      }),
      { dialIntervalSeconds: 0.1 },
    ).catch((e: Error) => (err = e));
    expect(err?.message).to.match(/Command::pinned3: .* hostKey in 3 dial attempts: refused/);
    expect(fs.existsSync(marker)).to.equal(false);
  });

  it("counts a refused key as a dial error, as the provider's ssh.Dial does (cloud-init installs it)", async () => {
    const wrong = path.join(dir, "wrong-key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", wrong]);
    let err: Error | undefined;
    await runRemoteCommand(
      target({
        name: "nokey",
        privateKey: fs.readFileSync(wrong, "utf8"),
        dialErrorLimit: 2,
        create: "true",
      }),
      { dialIntervalSeconds: 0.1 },
    ).catch((e: Error) => (err = e));
    expect(err?.message).to.match(/Command::nokey: .* after 2 dial attempts: .*Permission denied/);
  });

  it("runs each command once its dependencies are done and its host is ready, independent ones together", async () => {
    const log = path.join(dir, "ready.log");
    const mk = (name: string, deps: string[], create?: string): RemoteCommandSpec =>
      target({ name, urn: name.toUpperCase(), dependsOn: deps, create });
    const gates = new Map<string, () => void>();
    const waiting = new Map<string, Promise<void>>();
    for (const n of ["a", "b", "c"]) {
      waiting.set(n, new Promise<void>((r) => gates.set(n, r)));
    }
    const asked: string[] = [];
    const run = runRemoteCommandsWhenReady(
      [
        mk("c", ["A", "B"], `echo c >>${log}`),
        // a and b overlap: each waits (bounded) for the other's mark.
        mk(
          "a",
          [],
          `echo a >>${log}; for i in $(seq 100); do grep -q b ${log} && exit 0; sleep 0.1; done; exit 9`,
        ),
        mk(
          "b",
          [],
          `echo b >>${log}; for i in $(seq 100); do grep -q a ${log} && exit 0; sleep 0.1; done; exit 9`,
        ),
      ],
      {},
      (s) => {
        asked.push(s.name);
        return waiting.get(s.name)!;
      },
    );
    await new Promise((r) => setTimeout(r, 300));
    // c is not even asked for its host before a and b are done.
    expect(asked.sort()).to.deep.equal(["a", "b"]);
    expect(fs.existsSync(log)).to.equal(false);
    gates.get("b")!();
    gates.get("a")!();
    gates.get("c")!();
    const runs = await run;
    expect(fs.readFileSync(log, "utf8").split("\n").filter(Boolean).pop()).to.equal("c");
    expect(runs.map((r) => r.urn).pop()).to.equal("C");
    fs.rmSync(log);

    // A failure stops what depends on it, not what does not; the failure is thrown.
    let err: Error | undefined;
    await runRemoteCommandsWhenReady(
      [
        mk("fails", [], "exit 3"),
        mk("after", ["FAILS"], `echo after >>${log}`),
        mk("aside", [], `echo aside >>${log}`),
      ],
      {},
      async () => undefined,
    ).catch((e: Error) => (err = e));
    expect(err?.message).to.match(/^FAILS: create on .* exited 3/);
    expect(fs.readFileSync(log, "utf8")).to.equal("aside\n");
  });
});

describe("stack rehearsal: the provider's dial schedule", function () {
  this.timeout(300_000);

  it("gives every pinned command of the prod synth dials for the 900 s its first boot may take", async () => {
    let unmasked: InspectedResource[] = [];
    const d = await synthesize({
      projectDir: PACKAGE_ROOT,
      stack: "prod",
      inspect: (rs) => (unmasked = rs),
    });
    const pinned = remoteCommandsOf(d, unmasked).filter((c) => c.hostKey !== undefined);
    expect(pinned.length).to.be.greaterThan(3);
    for (const c of pinned) {
      let waits = 0;
      for (let a = 1; a < c.dialErrorLimit; a++) {
        waits += dialDelaySeconds(a);
      }
      expect(waits, `${c.name}: seconds of dial retries`).to.be.at.least(900);
    }
  });

  it("waits 0.1 s, 1.5 times more each attempt, at most 5 s (pulumi retry.Until)", () => {
    for (const [attempt, want] of [
      [1, 0.1],
      [2, 0.15],
      [3, 0.225],
    ]) {
      expect(dialDelaySeconds(attempt)).to.be.closeTo(want, 1e-9);
    }
    expect(dialDelaySeconds(11)).to.equal(5);
    expect(dialDelaySeconds(40)).to.equal(5);
    // dialErrorLimit 40 (the stack's): ~156 s of waits between refused dials.
    let total = 0;
    for (let a = 1; a < 40; a++) {
      total += dialDelaySeconds(a);
    }
    expect(total).to.be.within(150, 160);
  });
});
