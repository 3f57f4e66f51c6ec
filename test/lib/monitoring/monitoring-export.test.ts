// Monitoring export: targets and thresholds from the stack outputs, then the real checkers —
// `promtool check config`, `promtool check rules`, `promtool test rules` (unit tests in
// test/fixtures/monitoring), `prometheus-blackbox-exporter --config.check` — and the blackbox
// modules probing real sockets on loopback.
import { expect } from "chai";
import { freePort } from "../../../lib/rehearse/drill";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import {
  MonitoringInputError,
  MonitoringOutputs,
  backupMissedSeconds,
  blackboxTargets,
  nodeTargets,
  readMonitoringOutputs,
  renderMonitoring,
  renderRules,
  replicationStaleSeconds,
} from "../../../lib/monitoring/monitoring-export";
import { synthProd } from "../../support/stack-files";
import { PACKAGE_ROOT } from "../../../lib/package-root";

const ROOT = PACKAGE_ROOT;
const FIXTURES = path.join(ROOT, "test", "fixtures", "monitoring");
const CLI = path.join(ROOT, "dist", "scripts", "monitoring.js");

function fixtureOutputs(): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, "outputs.json"), "utf8"));
}

/** Fails (never skips) when a checker is missing, naming the Debian package. */
function requireTool(bin: string, pkg: string): void {
  const r = spawnSync("sh", ["-c", `command -v ${bin}`], { encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(
      `${bin} not found: install the Debian package ${pkg} (bash test/install-deps.sh)`,
    );
  }
}

function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
}

function run(bin: string, args: string[], cwd: string): { code: number | null; out: string } {
  const r = spawnSync(bin, args, { cwd, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe("monitoring: reading the stack outputs", () => {
  it("takes `pulumi stack output --json` as is", () => {
    const o = readMonitoringOutputs(fixtureOutputs(), "outputs.json");
    expect(Object.keys(o.services)).to.deep.equal(["mail", "pbx", "mysql"]);
    expect(o.nas?.jobs).to.have.length(3);
  });
  it("takes a synth deployment (its root stack's outputs)", () => {
    const d = {
      version: 3,
      deployment: {
        resources: [
          {
            urn: "urn:pulumi:prod::hastack::pulumi:pulumi:Stack::hastack-prod",
            type: "pulumi:pulumi:Stack",
            outputs: fixtureOutputs(),
          },
        ],
      },
    };
    expect(Object.keys(readMonitoringOutputs(d, "synth.json").services)).to.have.length(3);
  });
  // Loosely typed on purpose: each case breaks the outputs in its own way.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const bad: [string, (o: Record<string, any>) => unknown, RegExp][] = [
    ["no services", () => ({ region: "x" }), /expected stack outputs with "services"/],
    [
      "a bad activeSide",
      (o) => ((o.services.mail.activeSide = "sideways"), o),
      /services\.mail\.activeSide must be "primary" or "standby", got "sideways"/,
    ],
    [
      "an unknown probe",
      (o) => ((o.services.pbx.ports[0].probe = "ping"), o),
      /services\.pbx\.ports\[0\]\.probe must be one of/,
    ],
    [
      "a side missing",
      (o) => (delete o.services.mysql.sides.standby, o),
      /services\.mysql\.sides must have primary and standby/,
    ],
    [
      "a backup job without interval",
      (o) => (delete o.nas.jobs[1].intervalHours, o),
      /nas\.jobs\[1\] needs service, name and intervalHours/,
    ],
    [
      "a deployment without stack outputs",
      () => ({ version: 3, deployment: { resources: [] } }),
      /no root stack outputs/,
    ],
  ];
  for (const [what, edit, re] of bad) {
    it(`refuses ${what}, naming the path`, () => {
      expect(() => readMonitoringOutputs(edit(fixtureOutputs()), "out.json")).to.throw(
        MonitoringInputError,
        re,
      );
    });
  }
});

describe("monitoring: targets and thresholds", () => {
  const o = readMonitoringOutputs(fixtureOutputs(), "outputs.json");
  const flat = (svc: string) =>
    blackboxTargets(o.services[svc]).map(
      (g) => `${g.targets[0]} ${g.labels.module} ${g.labels.role}`,
    );

  it("mail: every TCP port by service name (verified TLS) and by each server (own address)", () => {
    expect(flat("mail")).to.deep.equal([
      "mail.kantor-contoh.co.id:25 smtp_banner service",
      "198.51.100.21:25 smtp_banner active",
      "198.51.100.22:25 smtp_banner standby",
      "mail.kantor-contoh.co.id:587 smtp_banner service",
      "198.51.100.21:587 smtp_banner active",
      "198.51.100.22:587 smtp_banner standby",
      "mail.kantor-contoh.co.id:993 imaps service",
      "198.51.100.21:993 imaps_server active",
      "198.51.100.22:993 imaps_server standby",
    ]);
  });
  it("pbx: SIP over TCP and HTTPS probed, SIP over UDP not (no UDP prober)", () => {
    expect(flat("pbx")).to.have.length(6);
    expect(flat("pbx").some((t) => t.includes("sip_tcp"))).to.equal(true);
  });
  it("mysql: private addresses only, the service probe is the active server", () => {
    expect(flat("mysql")).to.deep.equal([
      "10.20.1.13:3306 mysql_tcp service",
      "10.20.1.13:3306 mysql_tcp active",
      "10.20.2.13:3306 mysql_tcp standby",
    ]);
  });
  it("after a failover the roles follow activeSide", () => {
    const flipped = JSON.parse(JSON.stringify(o)) as MonitoringOutputs;
    flipped.services.mail.activeSide = "standby";
    const roles = blackboxTargets(flipped.services.mail)
      .filter((g) => g.labels.port_name === "smtp")
      .map((g) => `${g.labels.side}=${g.labels.role}`);
    expect(roles).to.deep.equal(["service=service", "primary=standby", "standby=active"]);
  });
  it("node exporters on every server's private address", () => {
    expect(nodeTargets(o, 9100).map((g) => g.targets[0])).to.deep.equal([
      "10.20.1.11:9100",
      "10.20.2.11:9100",
      "10.20.1.12:9100",
      "10.20.2.12:9100",
      "10.20.1.13:9100",
      "10.20.2.13:9100",
      "10.20.1.30:9100",
      "10.20.2.30:9100",
    ]);
  });
  const stale: [number, number][] = [
    [300, 420],
    [900, 1020],
    [0, 180],
  ];
  for (const [rpo, want] of stale) {
    it(`replication with RPO ${rpo} s is stale after ${want} s`, () => {
      expect(replicationStaleSeconds(rpo)).to.equal(want);
    });
  }
  it("a 6-hourly backup is missed after 7 h", () => {
    expect(backupMissedSeconds(6)).to.equal(25200);
  });
  it("the mail queue rules exist exactly when the outputs have a mail service", () => {
    const queueAlerts = (text: string): string[] =>
      [...text.matchAll(/alert: (HastackMailQueue\w+)/g)].map((m) => m[1]);
    const o = readMonitoringOutputs(fixtureOutputs(), "outputs.json");
    expect(queueAlerts(renderRules(o))).to.deep.equal([
      "HastackMailQueueStuck",
      "HastackMailQueueLarge",
      "HastackMailQueueMetricMissing",
    ]);
    const withoutMail: MonitoringOutputs = { ...o, services: { ...o.services } };
    delete withoutMail.services.mail;
    expect(queueAlerts(renderRules(withoutMail))).to.deep.equal([]);
  });
});

describe("monitoring: the real checkers (promtool, blackbox exporter)", () => {
  let dir: string;
  before(() => {
    requireTool("promtool", "prometheus");
    requireTool("prometheus-blackbox-exporter", "prometheus-blackbox-exporter");
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-monitoring-"));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function generate(outputs: Record<string, unknown>): void {
    const o = readMonitoringOutputs(outputs, "outputs.json");
    writeFiles(dir, renderMonitoring(o, { alertmanager: "127.0.0.1:9093" }));
  }

  it("promtool check config accepts prometheus.yml, its rule file and every file_sd target file", () => {
    generate(fixtureOutputs());
    const r = run("promtool", ["check", "config", "prometheus.yml"], dir);
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.match(/SUCCESS: 1 rule files found/);
  });
  it("promtool check config rejects a broken target file (the check can fail)", () => {
    generate(fixtureOutputs());
    fs.writeFileSync(path.join(dir, "targets", "node.json"), '[{"targets": "10.0.0.1:9100"}]');
    const r = run("promtool", ["check", "config", "prometheus.yml"], dir);
    expect(r.code).to.equal(1);
    expect(r.out).to.match(/targets\/node\.json/);
  });
  it("promtool check rules accepts the rules", () => {
    generate(fixtureOutputs());
    const r = run("promtool", ["check", "rules", "rules/hastack.rules.yml"], dir);
    expect(r.code, r.out).to.equal(0);
    // 4 availability rules + 2 per service (3) + 3 for the mail queue + 2 per backup job (3).
    expect(r.out).to.match(/SUCCESS: 19 rules found/);
  });
  it("promtool test rules: service down, standby down, replication stale, metric missing, backup missed, mail queue stuck/large/unreported", () => {
    generate(fixtureOutputs());
    fs.copyFileSync(
      path.join(FIXTURES, "hastack.rules.test.yml"),
      path.join(dir, "hastack.rules.test.yml"),
    );
    const r = run("promtool", ["test", "rules", "hastack.rules.test.yml"], dir);
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.match(/SUCCESS/);
  });
  it("promtool test rules fails when the rules drift from the outputs (mail RPO 600 s instead of 300 s)", () => {
    const o = fixtureOutputs() as { services: { mail: { rpoSeconds: number } } };
    o.services.mail.rpoSeconds = 600;
    generate(o);
    fs.copyFileSync(
      path.join(FIXTURES, "hastack.rules.test.yml"),
      path.join(dir, "hastack.rules.test.yml"),
    );
    const r = run("promtool", ["test", "rules", "hastack.rules.test.yml"], dir);
    expect(r.code).to.equal(1);
    expect(r.out).to.match(/HastackReplicationStale/);
  });
  it("the real program's outputs (synth of Pulumi.prod.yaml) pass promtool too", async function () {
    this.timeout(120_000);
    const d = await synthProd();
    const o = readMonitoringOutputs(d, "synth");
    expect(Object.keys(o.services)).to.include("mail");
    writeFiles(dir, renderMonitoring(o));
    for (const args of [
      ["check", "config", "prometheus.yml"],
      ["check", "rules", "rules/hastack.rules.yml"],
    ]) {
      const r = run("promtool", args, dir);
      expect(r.code, r.out).to.equal(0);
    }
  });
  it("prometheus-blackbox-exporter --config.check accepts blackbox.yml, and rejects a typo", () => {
    generate(fixtureOutputs());
    const ok = run(
      "prometheus-blackbox-exporter",
      ["--config.check", "--config.file=blackbox.yml"],
      dir,
    );
    expect(ok.code, ok.out).to.equal(0);
    fs.writeFileSync(
      path.join(dir, "bad.yml"),
      fs
        .readFileSync(path.join(dir, "blackbox.yml"), "utf8")
        .replace("query_response", "query_respons"),
    );
    const bad = run(
      "prometheus-blackbox-exporter",
      ["--config.check", "--config.file=bad.yml"],
      dir,
    );
    expect(bad.code).to.equal(1);
  });
});

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 15_000 }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve(body));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error(`timeout: ${url}`)));
  });
}

describe("monitoring: blackbox modules against real sockets on loopback", () => {
  let dir: string;
  let exporter: ChildProcess | undefined;
  let exporterPort = 0;
  const servers: net.Server[] = [];
  const ports: Record<string, number> = {};

  async function listen(name: string, onConnect: (s: net.Socket) => void): Promise<void> {
    const server = net.createServer(onConnect);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push(server);
    ports[name] = (server.address() as net.AddressInfo).port;
  }

  before(async function () {
    this.timeout(30_000);
    requireTool("prometheus-blackbox-exporter", "prometheus-blackbox-exporter");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-blackbox-"));
    const o = readMonitoringOutputs(fixtureOutputs(), "outputs.json");
    writeFiles(dir, renderMonitoring(o));
    // An MTA greeting and answering QUIT, the way Postfix does.
    await listen("smtpGood", (s) => {
      s.write("220 mx1.kantor-contoh.co.id ESMTP Postfix\r\n");
      s.on("data", (d) => {
        if (/^QUIT/i.test(d.toString())) {
          s.end("221 2.0.0 Bye\r\n");
        }
      });
      s.on("error", () => undefined);
    });
    // A server that refuses service: 554 instead of 220.
    await listen("smtpBad", (s) => {
      s.end("554 5.3.2 mx1 not accepting connections\r\n");
      s.on("error", () => undefined);
    });
    await listen("plain", (s) => {
      s.on("error", () => undefined);
      setTimeout(() => s.destroy(), 2000);
    });
    ports.closed = await freePort();
    exporterPort = await freePort();
    exporter = spawn(
      "prometheus-blackbox-exporter",
      [
        `--config.file=${path.join(dir, "blackbox.yml")}`,
        `--web.listen-address=127.0.0.1:${exporterPort}`,
      ],
      { stdio: "ignore" },
    );
    for (let i = 0; i < 50; i++) {
      try {
        await get(`http://127.0.0.1:${exporterPort}/metrics`);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    throw new Error("blackbox exporter did not start on loopback within 10 s");
  });

  after(() => {
    if (exporter && exporter.exitCode === null) {
      exporter.kill("SIGTERM");
    }
    for (const s of servers) {
      s.close();
    }
    if (dir) {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  async function probe(module: string, port: number): Promise<number> {
    const body = await get(
      `http://127.0.0.1:${exporterPort}/probe?module=${module}&target=127.0.0.1:${port}`,
    );
    const m = /^probe_success (\d)/m.exec(body);
    if (!m) {
      throw new Error(`no probe_success in:\n${body}`);
    }
    return Number(m[1]);
  }

  const cases: [string, string, string, number][] = [
    ["smtp_banner", "an MTA greeting with 220", "smtpGood", 1],
    ["smtp_banner", "a server answering 554", "smtpBad", 0],
    ["smtp_banner", "a closed port", "closed", 0],
    ["sip_tcp", "a listening SIP port", "plain", 1],
    ["sip_tcp", "a closed port", "closed", 0],
    ["mysql_tcp", "a listening database port", "plain", 1],
    ["mysql_tcp", "a closed port", "closed", 0],
  ];
  for (const [module, what, server, want] of cases) {
    it(`${module} against ${what}: probe_success ${want}`, async function () {
      this.timeout(30_000);
      expect(await probe(module, ports[server])).to.equal(want);
    });
  }
});

describe("monitoring: the CLI (npm run monitoring)", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-moncli-"));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });
  it("writes every file and removes targets of services that are gone", () => {
    fs.mkdirSync(path.join(dir, "targets"));
    fs.writeFileSync(path.join(dir, "targets", "blackbox-fax.json"), "[]");
    const r = spawnSync(
      process.execPath,
      [CLI, "--from", path.join(FIXTURES, "outputs.json"), "--out", dir],
      { encoding: "utf8" },
    );
    expect(r.status, r.stderr).to.equal(0);
    for (const f of [
      "prometheus.yml",
      "blackbox.yml",
      "rules/hastack.rules.yml",
      "targets/node.json",
      "targets/blackbox-mail.json",
      "targets/blackbox-pbx.json",
      "targets/blackbox-mysql.json",
    ]) {
      expect(fs.existsSync(path.join(dir, f)), f).to.equal(true);
    }
    expect(fs.existsSync(path.join(dir, "targets", "blackbox-fax.json"))).to.equal(false);
    expect(r.stderr).to.match(/removed stale targets\/blackbox-fax\.json/);
  });
  const bad: [string, string[], RegExp][] = [
    ["a missing --out", ["--from", "x.json"], /--out is required/],
    [
      "a missing file",
      ["--from", "/nonexistent/o.json", "--out", "OUT"],
      /--from \/nonexistent\/o\.json: cannot read \(ENOENT\)/,
    ],
    [
      "a bad --blackbox",
      ["--from", "x.json", "--out", "OUT", "--blackbox", "localhost"],
      /--blackbox must be HOST:PORT/,
    ],
    ["an unknown flag", ["--frob"], /unknown option --frob/],
    [
      "an --out under /proc (it used to hang)",
      ["--from", FIXTURES + "/outputs.json", "--out", "/proc/hastack"],
      /^monitoring: --out \/proc\/hastack: \/proc is on the kernel's proc file system/,
    ],
  ];
  for (const [what, args, re] of bad) {
    it(`exit 2 and a clear message for ${what}`, () => {
      const r = spawnSync(process.execPath, [CLI, ...args.map((a) => (a === "OUT" ? dir : a))], {
        encoding: "utf8",
      });
      expect(r.status).to.equal(2);
      expect(r.stderr).to.match(re);
      expect(r.stderr).not.to.match(/^\s+at /m);
    });
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const edited = (edit: (o: Record<string, any>) => void): string => {
    const o = fixtureOutputs();
    edit(o);
    const f = path.join(dir, "edited.json");
    fs.writeFileSync(f, JSON.stringify(o));
    return f;
  };
  it("outputs without nas: exit 2 naming the file (backup alerts are never dropped silently)", () => {
    const f = edited((o) => delete o.nas);
    const out = path.join(dir, "mon");
    const r = spawnSync(process.execPath, [CLI, "--from", f, "--out", out], { encoding: "utf8" });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain(`--from ${f}: has no "nas" output (the backup jobs)`);
    expect(fs.existsSync(out)).to.equal(false);
  });
  it('rpoSeconds: "soon" is refused naming the field (it used to write `for: NaNs`)', () => {
    const f = edited((o) => (o.services.mail.rpoSeconds = "soon"));
    const r = spawnSync(process.execPath, [CLI, "--from", f, "--out", path.join(dir, "m")], {
      encoding: "utf8",
    });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain(
      'services.mail.rpoSeconds must be a number of seconds (0 or more), got "soon"',
    );
  });
  it("a failure leaves an existing output directory untouched; a directory with foreign files is refused", () => {
    const out = path.join(dir, "mon");
    const ok = spawnSync(
      process.execPath,
      [CLI, "--from", path.join(FIXTURES, "outputs.json"), "--out", out],
      { encoding: "utf8" },
    );
    expect(ok.status, ok.stderr).to.equal(0);
    const before = fs.readFileSync(path.join(out, "rules", "hastack.rules.yml"), "utf8");
    const bad = edited((o) => (o.services.mail.rpoSeconds = "soon"));
    spawnSync(process.execPath, [CLI, "--from", bad, "--out", out], { encoding: "utf8" });
    expect(fs.readFileSync(path.join(out, "rules", "hastack.rules.yml"), "utf8")).to.equal(before);
    fs.writeFileSync(path.join(out, "notes.txt"), "mine");
    const r = spawnSync(
      process.execPath,
      [CLI, "--from", path.join(FIXTURES, "outputs.json"), "--out", out],
      { encoding: "utf8" },
    );
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain("holds files this tool did not write (notes.txt)");
    expect(fs.readFileSync(path.join(out, "notes.txt"), "utf8")).to.equal("mine");
  });
  it("never replaces the directory that holds its --from file", () => {
    const out = path.join(dir, "mon");
    fs.mkdirSync(path.join(out, "targets"), { recursive: true });
    const from = path.join(out, "targets", "outputs.json");
    fs.copyFileSync(path.join(FIXTURES, "outputs.json"), from);
    const r = spawnSync(process.execPath, [CLI, "--from", from, "--out", out], {
      encoding: "utf8",
    });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain("holds one of this tool's inputs");
    expect(fs.existsSync(from)).to.equal(true);
  });
  it("from an offline synth file: warns that the addresses are mocks", async () => {
    const synth = path.join(dir, "prod.json");
    fs.writeFileSync(synth, JSON.stringify(await synthProd()));
    const r = spawnSync(process.execPath, [CLI, "--from", synth, "--out", path.join(dir, "m")], {
      encoding: "utf8",
    });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.contain(
      "WARNING: " + synth + " is an offline synth: its server addresses are mocks",
    );
    const real = spawnSync(
      process.execPath,
      [CLI, "--from", path.join(FIXTURES, "outputs.json"), "--out", path.join(dir, "m2")],
      { encoding: "utf8" },
    );
    expect(real.stderr).not.to.contain("WARNING");
  });
  it("exit 2 for a file that is not stack outputs", () => {
    const f = path.join(dir, "x.json");
    fs.writeFileSync(f, JSON.stringify({ steps: [] }));
    const r = spawnSync(process.execPath, [CLI, "--from", f, "--out", path.join(dir, "m")], {
      encoding: "utf8",
    });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.match(/expected stack outputs with "services"/);
  });
});
