// The `mysql` drill behind `npm run rehearse -- mysql`: a disaster rehearsal on this machine
// with the exact server config and role-change scripts MysqlPair renders
// (components/mysql-scripts.ts). Two MariaDB servers on 127.0.0.1 with their own datadirs and
// ports, replication bootstrapped by the bootstrap script, a write load whose acknowledged
// inserts are counted, the primary SIGKILLed mid-load, the failover script, the old primary
// restarted the way a rebooted server starts (boot-role first) and the fallback + rejoin
// scripts. Verified: every acknowledged write is on the surviving primary, and after fallback
// both servers hold identical data (CHECKSUM TABLE). Everything is bounded and always cleaned up.
import { ChildProcess, execFile, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import {
  DIALECTS,
  MysqlSettings,
  REPLICATION_USER,
  ScriptName,
  accountPasswordEnv,
  mysqlSettings,
  renderRoleConfig,
  renderScript,
  renderServerConfig,
} from "../../components/mysql-scripts";
import { SERVER_DIR } from "../../components/server-files";
import { Role, ROLES, otherRole } from "../../components/server-pair";
import { ConfigError, parseStackConfig, stackConfigSchema } from "../config/stack-config";
import { SynthInputError, readProject, readStackConfig } from "../synth/offline-synth";
import { Drill, DrillUsageError, findBinary, freePort, runDrill } from "./drill";

/** The binaries the drill runs, with the Debian package that ships each. */
export const REQUIRED_BINARIES: Record<string, string> = {
  mariadbd: "mariadb-server",
  "mariadb-install-db": "mariadb-server",
  mariadb: "mariadb-client (pulled in by mariadb-server)",
  "mariadb-dump": "mariadb-client (pulled in by mariadb-server)",
  bash: "bash",
  openssl: "openssl",
};

/**
 * The clients' network the loopback accounts accept (127.0.0.0-127.0.0.7, as ADDRESS/NETMASK):
 * the drill's writers connect from 127.0.0.1; 127.0.0.9 stands for a host outside the VPC.
 */
export const LOOPBACK_CLIENT_HOST = "127.0.0.0/255.255.255.248";

/** A bad flag or stack name: the CLI prints it with the usage and exits 2. */

export class MissingBinaryError extends Error {
  constructor(public readonly missing: { binary: string; pkg: string }[]) {
    super(
      `missing ${missing.map((m) => `${m.binary} (Debian package ${m.pkg})`).join(", ")}: ` +
        "install with `apt-get install mariadb-server` (or run test/install-deps.sh); the drill installs nothing itself",
    );
    this.name = "MissingBinaryError";
  }
}

/** Throws MissingBinaryError naming the package of every missing binary. */
export function requireBinaries(): Record<string, string> {
  const found: Record<string, string> = {};
  const missing: { binary: string; pkg: string }[] = [];
  for (const [binary, pkg] of Object.entries(REQUIRED_BINARIES)) {
    const p = findBinary(binary);
    if (p) {
      found[binary] = p;
    } else {
      missing.push({ binary, pkg });
    }
  }
  if (missing.length > 0) {
    throw new MissingBinaryError(missing);
  }
  return found;
}

/** hastack:mysql settings with the schema's defaults (what a stack gets unless it says more). */
export function defaultMysqlSettings(overrides: Partial<MysqlSettings> = {}): MysqlSettings {
  return {
    ...mysqlSettings(stackConfigSchema.shape.mysql.parse({ active: "primary" })),
    ...overrides,
  };
}

/**
 * The hastack:mysql settings of a stack (Pulumi.<stack>.yaml in projectDir), validated like the
 * program does: the drill then runs that stack's exact config and scripts.
 */
export function stackMysqlSettings(projectDir: string, stack: string): MysqlSettings {
  if (!/^[A-Za-z0-9_.-]+$/.test(stack)) {
    throw new DrillUsageError(
      `--stack expects a stack name (letters, digits, _ . -), got ${JSON.stringify(stack)}`,
    );
  }
  const file = path.join(projectDir, `Pulumi.${stack}.yaml`);
  if (!fs.existsSync(file)) {
    throw new DrillUsageError(`--stack ${stack}: no stack file ${file}`);
  }
  let config: Record<string, string>;
  try {
    config = readStackConfig(file, readProject(projectDir)).config;
  } catch (e) {
    if (e instanceof SynthInputError) {
      throw new DrillUsageError(`--stack ${stack}: ${e.message}`);
    }
    throw e;
  }
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    const [ns, name] = key.split(":", 2);
    const parsed = ((): unknown => {
      try {
        return JSON.parse(value);
      } catch {
        return value;
      }
    })();
    if (ns === "aws" && name === "region") {
      raw.region = parsed;
    } else if (ns === "hastack") {
      raw[name] = parsed;
    }
  }
  try {
    return mysqlSettings(parseStackConfig(raw).mysql);
  } catch (e) {
    if (e instanceof ConfigError) {
      throw new DrillUsageError(`--stack ${stack}: ${file}: ${e.message}`);
    }
    throw e;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function seconds(fromMs: number, toMs = Date.now()): number {
  return Math.round((toMs - fromMs) / 10) / 100;
}

/** Output of one script run. */
export interface ScriptRun {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** One loopback server of the pair. */
interface LoopbackServer {
  side: Role;
  dir: string;
  port: number;
  socket: string;
  defaultsFile: string;
  roleCnf: string;
  errorLog: string;
  proc?: ChildProcess;
}

const livePairs = new Set<LoopbackPair>();

/** Kills every server the drill started and removes its directories (signal handlers, exit). */
export function cleanupAllPairsSync(): void {
  for (const pair of livePairs) {
    pair.destroySync();
  }
}

/**
 * Two MariaDB servers on 127.0.0.1 configured exactly as MysqlPair renders them (only the
 * paths and ports differ), plus helpers to run the rendered scripts against them.
 */
export class LoopbackPair {
  readonly servers: Record<Role, LoopbackServer>;
  readonly password = randomAlnum(24);
  /** Passwords of settings.accounts, by index (HASTACK_ACCOUNT_PASSWORD_<i>). */
  readonly accountPasswords: string[];
  private readonly localUser: string;
  private destroyed = false;

  private constructor(
    readonly dir: string,
    readonly settings: MysqlSettings,
    private readonly bin: Record<string, string>,
    ports: Record<Role, number>,
    private readonly log: (line: string) => void,
    private readonly keep: boolean,
  ) {
    this.localUser = os.userInfo().username;
    this.accountPasswords = (settings.accounts ?? []).map(() => randomAlnum(24));
    const server = (side: Role): LoopbackServer => {
      const d = path.join(dir, side);
      return {
        side,
        dir: d,
        port: ports[side],
        socket: path.join(d, "mysqld.sock"),
        defaultsFile: path.join(d, "my.cnf"),
        roleCnf: path.join(d, "90-hastack-role.cnf"),
        errorLog: path.join(d, "error.log"),
      };
    };
    this.servers = { primary: server("primary"), standby: server("standby") };
  }

  /** Creates both datadirs and config files; servers are started with start(). */
  static async create(o: {
    settings: MysqlSettings;
    log?: (line: string) => void;
    keep?: boolean;
  }): Promise<LoopbackPair> {
    if (o.settings.engine !== "mariadb") {
      throw new Error(
        `the rehearsal runs MariaDB (Debian mariadb-server); hastack:mysql.engine is ${o.settings.engine}`,
      );
    }
    const bin = requireBinaries();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-rehearse-mysql-"));
    const ports = { primary: await freePort(), standby: await freePort() };
    const pair = new LoopbackPair(
      dir,
      o.settings,
      bin,
      ports,
      o.log ?? (() => undefined),
      !!o.keep,
    );
    livePairs.add(pair);
    const asRoot = process.getuid?.() === 0;
    await pair.makeTls();
    for (const side of ROLES) {
      const s = pair.servers[side];
      fs.mkdirSync(path.join(s.dir, "data"), { recursive: true });
      // The rendered server config, with only the loopback port, address and datadir
      // substituted; the loopback-only paths (socket, pid, log, user) follow in their own file,
      // as a conf.d file after 60-hastack.cnf would.
      fs.writeFileSync(
        path.join(s.dir, "60-hastack.cnf"),
        renderServerConfig({
          ...o.settings,
          side,
          port: s.port,
          bindAddress: "127.0.0.1",
          datadir: path.join(s.dir, "data"),
        }),
      );
      const section = o.settings.engine === "mariadb" ? "mariadbd" : "mysqld";
      fs.writeFileSync(
        path.join(s.dir, "70-loopback.cnf"),
        [
          `[${section}]`,
          ...(asRoot ? ["user = root"] : []),
          `socket = ${s.socket}`,
          `pid_file = ${path.join(s.dir, "mysqld.pid")}`,
          `log_error = ${s.errorLog}`,
          // The pair's TLS files, as provisioning installs them from SSM on a server.
          `ssl_ca = ${path.join(pair.tlsDir, "ca.pem")}`,
          `ssl_cert = ${path.join(pair.tlsDir, "server.pem")}`,
          `ssl_key = ${path.join(pair.tlsDir, "server-key.pem")}`,
          "",
        ].join("\n"),
      );
      // Stands in for /etc/mysql/my.cnf's !includedir of conf.d.
      fs.writeFileSync(
        s.defaultsFile,
        `!include ${path.join(s.dir, "60-hastack.cnf")}\n` +
          `!include ${path.join(s.dir, "70-loopback.cnf")}\n!include ${s.roleCnf}\n`,
      );
      // The role file must exist for !include; boot-role rewrites it before every start.
      fs.writeFileSync(
        s.roleCnf,
        renderRoleConfig(o.settings.engine, "passive", o.settings.semiSync),
      );
      await pair.exec(
        bin["mariadb-install-db"],
        [
          `--defaults-file=${s.defaultsFile}`,
          `--user=${pair.localUser}`,
          "--skip-test-db",
          "--auth-root-authentication-method=socket",
        ],
        60_000,
      );
    }
    pair.log(`datadirs initialised under ${dir} (ports ${ports.primary}, ${ports.standby})`);
    return pair;
  }

  /** The HASTACK_* environment a script on `side` gets (its peer is the other server). */
  scriptEnv(side: Role, extra: Record<string, string> = {}): Record<string, string> {
    const me = this.servers[side];
    const peer = this.servers[otherRole(side)];
    return {
      HASTACK_SOCKET: me.socket,
      HASTACK_LOCAL_USER: process.getuid?.() === 0 ? "root" : this.localUser,
      HASTACK_PEER_HOST: "127.0.0.1",
      HASTACK_PEER_PORT: String(peer.port),
      HASTACK_REPL_PASSWORD: this.password,
      HASTACK_ROLE_CNF: me.roleCnf,
      HASTACK_UNFENCE: "",
      HASTACK_SIDE: side,
      HASTACK_TLS_DIR: this.tlsDir,
      HASTACK_CLIENT_HOST: LOOPBACK_CLIENT_HOST,
      // boot-role sources the shared helpers from the package instead of HASTACK_LIB_PATH.
      HASTACK_LIB: path.join(SERVER_DIR, "lib", "hastack.sh"),
      HASTACK_CLIENT: this.bin.mariadb,
      HASTACK_DUMP: this.bin["mariadb-dump"],
      HASTACK_CONNECT_SECONDS: "20",
      HASTACK_WAIT_SECONDS: "60",
      ...Object.fromEntries(this.accountPasswords.map((pw, i) => [accountPasswordEnv(i), pw])),
      ...extra,
    };
  }

  /** The pair's TLS files: ca.pem, server.pem, server-key.pem (as the stack's @pulumi/tls makes). */
  get tlsDir(): string {
    return path.join(this.dir, "tls");
  }

  /** A CA and one server certificate for the pair, with openssl (the stack uses @pulumi/tls). */
  async makeTls(): Promise<void> {
    const d = this.tlsDir;
    fs.mkdirSync(d, { recursive: true, mode: 0o700 });
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    const f = (n: string): string => path.join(d, n);
    const openssl = this.bin.openssl;
    await this.exec(
      openssl,
      [
        "req",
        "-x509",
        ...ec,
        "-keyout",
        f("ca-key.pem"),
        "-out",
        f("ca.pem"),
        "-days",
        "2",
        "-subj",
        "/CN=hastack rehearsal replication CA",
      ],
      30_000,
    );
    await this.exec(
      openssl,
      [
        "req",
        ...ec,
        "-keyout",
        f("server-key.pem"),
        "-out",
        f("server.csr"),
        "-subj",
        "/CN=db.rehearsal.invalid",
      ],
      30_000,
    );
    await this.exec(
      openssl,
      [
        "x509",
        "-req",
        "-in",
        f("server.csr"),
        "-CA",
        f("ca.pem"),
        "-CAkey",
        f("ca-key.pem"),
        "-CAcreateserial",
        "-out",
        f("server.pem"),
        "-days",
        "2",
      ],
      30_000,
    );
  }

  /**
   * Connects to `side` over TCP as `user`, with TLS verified against the pair's CA or with TLS
   * switched off; from `fromAddress` (a 127.0.0.x source address, through a socat forwarder
   * bound to it: the client cannot choose its source) when given. Resolves to the client's
   * error text, or "" when the login worked.
   */
  async tryLogin(
    side: Role,
    o: { user: string; password: string; fromAddress?: string; tls: boolean },
  ): Promise<string> {
    let port = this.servers[side].port;
    let forwarder: ChildProcess | undefined;
    if (o.fromAddress) {
      const socat = findBinary("socat");
      if (!socat) {
        throw new MissingBinaryError([{ binary: "socat", pkg: "socat" }]);
      }
      port = await freePort();
      forwarder = spawn(
        socat,
        [
          `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`,
          `TCP:127.0.0.1:${this.servers[side].port},bind=${o.fromAddress}`,
        ],
        { stdio: "ignore" },
      );
      // Bounded wait until the forwarder listens.
      for (let i = 0; i < 100 && !(await listening(port)); i++) {
        await sleep(50);
      }
    }
    const file = path.join(this.dir, `login-${o.user}-${side}.cnf`);
    fs.writeFileSync(
      file,
      `[client]\nuser=${o.user}\npassword=${o.password}\nhost=127.0.0.1\nport=${port}\n`,
      { mode: 0o600 },
    );
    const tlsArgs = o.tls ? [`--ssl-ca=${path.join(this.tlsDir, "ca.pem")}`] : ["--skip-ssl"];
    try {
      await this.exec(
        this.bin.mariadb,
        [
          `--defaults-extra-file=${file}`,
          "--protocol=tcp",
          ...tlsArgs,
          "--batch",
          "-e",
          "SELECT 1",
        ],
        20_000,
      );
      return "";
    } catch (e) {
      return (e as Error).message || "refused";
    } finally {
      forwarder?.kill("SIGKILL");
    }
  }

  /**
   * Client options for application account `index` on `side` over TCP (as the PBX connects):
   * no SUPER or READ_ONLY ADMIN, so read_only fencing applies to it.
   */
  appClientArgs(side: Role, index: number): string[] {
    const account = (this.settings.accounts ?? [])[index];
    if (!account) {
      throw new Error(`no application account ${index}`);
    }
    const file = path.join(this.dir, `${side}-${account.user}.cnf`);
    fs.writeFileSync(
      file,
      `[client]\nuser=${account.user}\npassword=${this.accountPasswords[index]}\n` +
        `host=127.0.0.1\nport=${this.servers[side].port}\n`,
      { mode: 0o600 },
    );
    return [`--defaults-extra-file=${file}`, "--protocol=tcp"];
  }

  /** Runs a rendered script on `side` as the remote commands do: `bash -s`, text on stdin. */
  async runScript(
    name: ScriptName,
    side: Role,
    extra: Record<string, string> = {},
    timeoutMs = 120_000,
  ): Promise<ScriptRun> {
    const started = Date.now();
    const script = renderScript(name, this.settings);
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", ...this.scriptEnv(side, extra) };
    return new Promise((resolve) => {
      const child = spawn(this.bin.bash, ["-s"], { env, stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      let partial = "";
      child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
      child.stderr.on("data", (b: Buffer) => {
        stderr += b.toString();
        partial += b.toString();
        const lines = partial.split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) {
          this.log(`  [${side}] ${line}`);
        }
      });
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      child.on("close", (code) => {
        clearTimeout(timer);
        if (partial) {
          this.log(`  [${side}] ${partial}`);
        }
        resolve({ code, stdout, stderr, seconds: seconds(started) });
      });
      child.stdin.end(script);
    });
  }

  /** Runs a script and throws unless it exits 0. */
  async runScriptChecked(
    name: ScriptName,
    side: Role,
    extra: Record<string, string> = {},
  ): Promise<ScriptRun> {
    const r = await this.runScript(name, side, extra);
    if (r.code !== 0) {
      throw new Error(`${name} on ${side} exited ${r.code}: ${lastLine(r.stderr)}`);
    }
    return r;
  }

  /**
   * Starts `side` the way the servers do: boot-role writes the role file from the stack's
   * intent (`activeSide`), then mariadbd starts; resolves once it answers.
   */
  async start(side: Role, activeSide: Role, timeoutMs = 60_000): Promise<void> {
    const s = this.servers[side];
    await this.runScriptChecked("boot-role", side, { HASTACK_ACTIVE_SIDE: activeSide });
    const proc = spawn(this.bin.mariadbd, [`--defaults-file=${s.defaultsFile}`], {
      stdio: "ignore",
    });
    s.proc = proc;
    let exited: number | null | undefined;
    proc.on("exit", (code) => (exited = code));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exited !== undefined) {
        throw new Error(`mariadbd (${side}) exited ${exited} at start: ${tail(s.errorLog, 5)}`);
      }
      try {
        await this.sql(side, "SELECT 1", 5_000);
        return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) {
        throw new Error(
          `mariadbd (${side}) did not answer within ${timeoutMs / 1000}s: ${tail(s.errorLog, 5)}`,
        );
      }
      await sleep(100);
    }
  }

  /** SIGKILL: the disaster. Resolves once the process is gone. */
  async kill(side: Role): Promise<void> {
    const proc = this.servers[side].proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
      return;
    }
    const gone = new Promise<void>((r) => proc.once("exit", () => r()));
    proc.kill("SIGKILL");
    await Promise.race([gone, sleep(10_000)]);
    this.servers[side].proc = undefined;
  }

  /** Runs SQL as the local admin over the socket; resolves to tab-separated rows. */
  sql(side: Role, statements: string, timeoutMs = 30_000): Promise<string> {
    return this.exec(
      this.bin.mariadb,
      [
        `--socket=${this.servers[side].socket}`,
        `--user=${process.getuid?.() === 0 ? "root" : this.localUser}`,
        "--batch",
        "--skip-column-names",
        "-e",
        statements,
      ],
      timeoutMs,
    );
  }

  /** SHOW SLAVE STATUS as a field map (empty when not a replica). */
  async replicaStatus(side: Role): Promise<Record<string, string>> {
    const out = await this.exec(
      this.bin.mariadb,
      [
        `--socket=${this.servers[side].socket}`,
        `--user=${process.getuid?.() === 0 ? "root" : this.localUser}`,
        "--batch",
        "--vertical",
        "-e",
        DIALECTS[this.settings.engine].showReplicaStatus,
      ],
      10_000,
    );
    const fields: Record<string, string> = {};
    for (const line of out.split("\n")) {
      const i = line.indexOf(": ");
      if (i > 0) {
        fields[line.slice(0, i).trim()] = line.slice(i + 2);
      }
    }
    return fields;
  }

  /** A status variable (SHOW GLOBAL STATUS). */
  async statusVar(side: Role, name: string): Promise<string> {
    const out = await this.sql(side, `SHOW GLOBAL STATUS LIKE '${name}'`, 10_000);
    return out.split("\t")[1]?.trim() ?? "";
  }

  /** CHECKSUM TABLE of every base table in the configured databases, by table name. */
  async checksums(side: Role): Promise<Record<string, string>> {
    const dbs = this.settings.databases.map((d) => `'${d}'`).join(", ");
    const tables = (
      await this.sql(
        side,
        `SELECT CONCAT('\`', table_schema, '\`.\`', table_name, '\`') FROM information_schema.tables ` +
          `WHERE table_schema IN (${dbs}) AND table_type = 'BASE TABLE' ORDER BY 1`,
      )
    )
      .split("\n")
      .filter(Boolean);
    if (tables.length === 0) {
      return {};
    }
    const out = await this.sql(side, `CHECKSUM TABLE ${tables.join(", ")} EXTENDED`, 120_000);
    const sums: Record<string, string> = {};
    for (const line of out.split("\n").filter(Boolean)) {
      const [table, sum] = line.split("\t");
      sums[table] = sum;
    }
    return sums;
  }

  /** Kills both servers and removes the directory (unless keep). Idempotent. */
  destroySync(): void {
    if (this.destroyed) {
      return;
    }
    this.destroyed = true;
    for (const side of ROLES) {
      const proc = this.servers[side].proc;
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        try {
          proc.kill("SIGKILL");
        } catch {
          // already gone
        }
      }
    }
    livePairs.delete(this);
    if (this.keep) {
      this.log(`kept ${this.dir}`);
      return;
    }
    // mariadbd may hold files for a moment after SIGKILL; retry briefly.
    fs.rmSync(this.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }

  /** destroySync, then wait until the processes are really gone. */
  async destroy(): Promise<void> {
    const procs = ROLES.map((s) => this.servers[s].proc).filter(
      (p): p is ChildProcess => !!p && p.exitCode === null && p.signalCode === null,
    );
    const gone = Promise.all(procs.map((p) => new Promise<void>((r) => p.once("exit", () => r()))));
    this.destroySync();
    await Promise.race([gone, sleep(10_000)]);
  }

  private exec(file: string, args: string[], timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        file,
        args,
        { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 * 1024 * 1024 },
        (err, stdout, stderr) => {
          if (err) {
            reject(new Error(`${path.basename(file)}: ${(stderr || err.message).trim()}`));
          } else {
            resolve(stdout);
          }
        },
      );
    });
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

function randomAlnum(n: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  return Array.from(crypto.randomBytes(n), (b) => alphabet[b % alphabet.length]).join("");
}

function lastLine(s: string): string {
  const lines = s.trim().split("\n");
  return lines[lines.length - 1] ?? "";
}

function tail(file: string, n: number): string {
  try {
    return fs.readFileSync(file, "utf8").trim().split("\n").slice(-n).join(" | ");
  } catch {
    return `(no ${file})`;
  }
}

/** Table the drill writes: explicit ids so every acknowledged row can be looked up. */
export const DRILL_TABLE = "app.hastack_drill";

/**
 * One client session inserting rows one at a time and counting the acknowledged ones: a row
 * counts once the server answered its INSERT (autocommit: after the commit, and with semi-sync
 * after the replica's ack). Stops at the first error (server killed, read-only) or on stop().
 */
export class Writer {
  readonly acked: number[] = [];
  error = "";
  private next: number;
  private stopping = false;
  private readonly proc: ChildProcess;
  readonly done: Promise<void>;

  constructor(
    client: string,
    args: string[],
    readonly id: number,
    firstId: number,
  ) {
    this.next = firstId;
    this.proc = spawn(client, [...args, "--batch", "--skip-column-names", "--unbuffered"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let buf = "";
    this.proc.stdout!.on("data", (b: Buffer) => {
      buf += b.toString();
      const lines = buf.split("\n");
      buf = lines.pop() ?? "";
      for (const line of lines) {
        const n = Number(line.trim());
        if (Number.isInteger(n) && n > 0) {
          this.acked.push(n);
          this.send();
        }
      }
    });
    this.proc.stderr!.on("data", (b: Buffer) => (this.error += b.toString()));
    this.proc.stdin!.on("error", () => undefined); // the server died under us: expected
    this.done = new Promise((r) => this.proc.once("close", () => r()));
    this.send();
  }

  private send(): void {
    if (this.stopping || !this.proc.stdin!.writable) {
      this.proc.stdin!.end();
      return;
    }
    const n = this.next++;
    this.proc.stdin!.write(
      `INSERT INTO ${DRILL_TABLE} (id, writer, payload) VALUES (${n}, ${this.id}, SHA2('${n}', 256)); SELECT ${n};\n`,
    );
  }

  /** Ends the session after the statement in flight; bounded. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.stopping = true;
    if (this.proc.stdin!.writable) {
      this.proc.stdin!.end();
    }
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), timeoutMs);
    await this.done;
    clearTimeout(timer);
  }
}

export interface MysqlDrillOptions {
  /** Defaults to the hastack:mysql schema defaults (mariadb, semi-sync on). */
  settings?: MysqlSettings;
  /** Concurrent writer sessions. Defaults to 4. */
  writers?: number;
  /** Seconds of load before the primary is killed. Defaults to 3. */
  loadSeconds?: number;
  /** Bound on the whole drill. Defaults to 240. */
  timeoutSeconds?: number;
  /** Keep the temp directory for inspection. Defaults to false. */
  keep?: boolean;
  /** Progress lines (stderr in the CLI). Defaults to none. */
  log?: (line: string) => void;
}

/** The drill's result; the CLI prints the first five fields as its last stdout line. */
export interface MysqlDrillResult {
  acknowledged: number;
  lost: number;
  failoverSeconds: number;
  fallbackSeconds: number;
  maxLagSeconds: number;
  /** Both servers' CHECKSUM TABLE results match after fallback. */
  checksumsEqual: boolean;
  checksums: Record<Role, Record<string, string>>;
  /** Rows on the survivor that were never acknowledged (in flight at the kill). */
  unacknowledgedPresent: number;
  /** Semi-sync was ON with the replica attached for the whole load (false = it degraded). */
  semiSyncHeld: boolean;
  /** The restarted old primary truncated its unacknowledged binlog tail. */
  truncatedTail: boolean;
  /** Replication ran over TLS (Master_SSL_Allowed=Yes) and its account is refused without. */
  replicationTls: boolean;
  problems: string[];
}

/** Runs the drill; always kills what it started and removes its temp directory. */
export async function runMysqlDrill(o: MysqlDrillOptions = {}): Promise<MysqlDrillResult> {
  const base = o.settings ?? defaultMysqlSettings();
  // The load runs as an application account, like the PBX: fencing (read_only) applies to it.
  const settings: MysqlSettings = {
    ...base,
    accounts: [
      ...(base.accounts ?? []),
      { user: "hastack_drill", database: "app", privileges: "SELECT, INSERT, UPDATE" },
    ],
  };
  const log = o.log ?? ((): void => undefined);
  const timeoutSeconds = o.timeoutSeconds ?? 240;
  const pair = await LoopbackPair.create({ settings, log, keep: o.keep });
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the drill did not finish within ${timeoutSeconds}s`)),
        timeoutSeconds * 1000,
      );
    });
    return await Promise.race([drill(pair, settings, o, log), timeout]);
  } finally {
    clearTimeout(timer);
    await pair.destroy();
  }
}

async function drill(
  pair: LoopbackPair,
  settings: MysqlSettings,
  o: MysqlDrillOptions,
  log: (line: string) => void,
): Promise<MysqlDrillResult> {
  const P = Role.Primary;
  const S = Role.Standby;
  const problems: string[] = [];
  const writersCount = o.writers ?? 4;
  const loadMs = (o.loadSeconds ?? 3) * 1000;
  const acked = new Set<number>();
  const drillAccount = (settings.accounts ?? []).length - 1;
  let nextBase = 1;
  const startWriters = (side: Role): Writer[] =>
    Array.from({ length: writersCount }, (_, i) => {
      return new Writer(
        pair.scriptEnv(side).HASTACK_CLIENT,
        pair.appClientArgs(side, drillAccount),
        i + 1,
        nextBase * 100_000_000 + (i + 1) * 1_000_000,
      );
    });
  const collect = (ws: Writer[]): number => {
    nextBase++;
    let n = 0;
    for (const w of ws) {
      for (const id of w.acked) {
        acked.add(id);
        n++;
      }
    }
    return n;
  };

  log(
    `1/8 starting both servers (${settings.engine}, ${settings.semiSync ? "semi-sync" : "async"})`,
  );
  await Promise.all([pair.start(P, P), pair.start(S, P)]);
  log("2/8 setup (replication accounts, databases) and seed data on the primary");
  await pair.runScriptChecked("setup", P);
  await pair.runScriptChecked("setup", S);
  await pair.sql(
    P,
    `CREATE TABLE ${DRILL_TABLE} (id BIGINT PRIMARY KEY, writer INT NOT NULL, ` +
      "at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), payload CHAR(64) NOT NULL) ENGINE=InnoDB; " +
      `INSERT INTO ${DRILL_TABLE} (id, writer, payload) SELECT seq, 0, SHA2(seq, 256) FROM app.seq_1_to_1000;`,
  );
  log("3/8 bootstrap: clone the primary into the standby, start replication");
  await pair.runScriptChecked("bootstrap", S);
  // Replication runs over TLS (issue 13): the replica's channel uses it, and the replication
  // account is refused without it.
  const sslAllowed = (await pair.replicaStatus(S)).Master_SSL_Allowed;
  const withoutTls = await pair.tryLogin(P, {
    user: REPLICATION_USER,
    password: pair.password,
    tls: false,
  });
  const replicationTls = sslAllowed === "Yes" && withoutTls !== "";
  if (!replicationTls) {
    problems.push(
      `replication is not TLS-only (Master_SSL_Allowed=${sslAllowed}; without TLS the replication account ${withoutTls ? "is refused" : "logs in"})`,
    );
  }
  log(
    `   replication over TLS: Master_SSL_Allowed=${sslAllowed}; without TLS: refused=${withoutTls !== ""}`,
  );

  const semi = DIALECTS[settings.engine].semi;
  if (settings.semiSync) {
    // The first commits after the replica attached switch semi-sync on; prove it before load.
    for (let i = 0; i < 50 && (await pair.statusVar(P, semi.status)) !== "ON"; i++) {
      await pair.sql(
        P,
        `INSERT INTO ${DRILL_TABLE} (id, writer, payload) VALUES (${2000 + i}, 0, 'warm-up')`,
      );
      await sleep(50);
    }
    const status = await pair.statusVar(P, semi.status);
    const clients = await pair.statusVar(P, semi.clients);
    if (status !== "ON" || clients !== "1") {
      throw new Error(
        `semi-sync is not active on the primary (${semi.status}=${status}, ${semi.clients}=${clients})`,
      );
    }
    log(
      `   semi-sync active: ${semi.status}=ON, ${semi.clients}=1, timeout ${settings.semiSyncTimeoutMs} ms`,
    );
  }

  log(`4/8 write load: ${writersCount} sessions for ${loadMs / 1000}s, then SIGKILL the primary`);
  let maxLag = 0;
  let semiSyncHeld = true;
  const yesBefore = settings.semiSync ? Number(await pair.statusVar(P, semi.yesTx)) : 0;
  const noBefore = settings.semiSync ? Number(await pair.statusVar(P, semi.noTx)) : 0;
  const load = startWriters(P);
  const loadEnd = Date.now() + loadMs;
  while (Date.now() < loadEnd) {
    const st = await pair.replicaStatus(S);
    const lag = Number(st[DIALECTS[settings.engine].fields.lag]);
    if (Number.isFinite(lag)) {
      maxLag = Math.max(maxLag, lag);
    }
    if (settings.semiSync && (await pair.statusVar(P, semi.status)) !== "ON") {
      semiSyncHeld = false;
    }
    await sleep(200);
  }
  if (settings.semiSync) {
    const yes = Number(await pair.statusVar(P, semi.yesTx)) - yesBefore;
    const no = Number(await pair.statusVar(P, semi.noTx)) - noBefore;
    log(`   just before the kill: ${yes} commits acknowledged by the replica, ${no} without`);
    if (no > 0) {
      semiSyncHeld = false;
    }
  }
  const killedAt = Date.now();
  await pair.kill(P);
  await Promise.all(load.map((w) => w.stop()));
  const loadAcked = collect(load);
  log(`   primary killed; ${loadAcked} inserts acknowledged before it died`);

  log("5/8 failover: promote the standby");
  const failover = await pair.runScript("failover", S);
  if (failover.code !== 0) {
    throw new Error(`failover exited ${failover.code}: ${lastLine(failover.stderr)}`);
  }
  await pair.sql(
    S,
    `INSERT INTO ${DRILL_TABLE} (id, writer, payload) VALUES (1, 0, 'x') ON DUPLICATE KEY UPDATE writer = writer`,
  );
  const failoverSeconds = seconds(killedAt);
  const lagMatch = /lagSeconds=(\d+(?:\.\d+)?)/.exec(failover.stdout);
  if (lagMatch) {
    maxLag = Math.max(maxLag, Number(lagMatch[1]));
  }
  const survivorIds = await ids(pair, S);
  const lostAfterFailover = [...acked].filter((id) => !survivorIds.has(id));
  const inFlight = [...survivorIds].filter((id) => id >= 100_000_000 && !acked.has(id)).length;
  log(
    `   standby writable ${failoverSeconds}s after the kill; lost ${lostAfterFailover.length} of ${acked.size} acknowledged`,
  );
  if (lostAfterFailover.length > 0) {
    problems.push(
      `${lostAfterFailover.length} acknowledged writes missing on the promoted standby (e.g. ${lostAfterFailover.slice(0, 5).join(", ")})`,
    );
  }

  log(
    "6/8 load on the new primary, then restart the old primary (boot-role: active side is standby)",
  );
  const load2 = startWriters(S);
  await sleep(1000);
  await pair.start(P, S);
  const truncatedTail = /truncated binlog/i.test(tail(pair.servers[P].errorLog, 400));
  log(
    `   old primary up read-only${truncatedTail ? "; it truncated its unacknowledged binlog tail" : ""}`,
  );

  log(
    "7/8 fallback: old primary replicates, catches up, fences the standby, takes over; standby rejoins",
  );
  const fallbackStart = Date.now();
  const fallback = await pair.runScript("fallback", P);
  await Promise.all(load2.map((w) => w.stop()));
  const load2Acked = collect(load2);
  if (fallback.code !== 0) {
    throw new Error(`fallback exited ${fallback.code}: ${lastLine(fallback.stderr)}`);
  }
  await pair.runScriptChecked("rejoin", S);
  const fallbackSeconds = seconds(fallbackStart);
  const paused = /pausedSeconds=([\d.]+)/.exec(fallback.stdout)?.[1] ?? "?";
  log(
    `   ${load2Acked} inserts acknowledged by the standby while it served; fallback took ${fallbackSeconds}s, writes paused ${paused}s`,
  );

  log("8/8 verify: roles, replication, no acknowledged write lost, identical data");
  const load3 = startWriters(P);
  await sleep(500);
  await Promise.all(load3.map((w) => w.stop()));
  collect(load3);
  const pos = (await pair.sql(P, `SELECT ${DIALECTS[settings.engine].executedSql}`)).trim();
  const waited = (await pair.sql(S, `SELECT MASTER_GTID_WAIT('${pos}', 30)`)).trim();
  if (waited !== "0") {
    problems.push(`standby did not reach the primary's position ${pos} within 30s`);
  }
  const [pRo, sRo] = [
    await pair.sql(P, "SELECT @@read_only"),
    await pair.sql(S, "SELECT @@read_only"),
  ];
  if (pRo.trim() !== "0" || sRo.trim() !== "1") {
    problems.push(
      `roles not restored: primary read_only=${pRo.trim()}, standby read_only=${sRo.trim()}`,
    );
  }
  const st = await pair.replicaStatus(S);
  const f = DIALECTS[settings.engine].fields;
  if (
    st[f.io] !== "Yes" ||
    st[f.sql] !== "Yes" ||
    st[f.sourcePort] !== String(pair.servers[P].port)
  ) {
    problems.push(
      `standby is not replicating from the primary (IO ${st[f.io]}, SQL ${st[f.sql]}, port ${st[f.sourcePort]})`,
    );
  }
  if (settings.semiSync && (await pair.statusVar(P, semi.status)) !== "ON") {
    problems.push("semi-sync is not active again on the primary after fallback");
  }
  const finalIds = await ids(pair, P);
  const lostFinal = [...acked].filter((id) => !finalIds.has(id));
  if (lostFinal.length > 0) {
    problems.push(
      `${lostFinal.length} acknowledged writes missing on the primary after fallback (e.g. ${lostFinal.slice(0, 5).join(", ")})`,
    );
  }
  const checksums = { primary: await pair.checksums(P), standby: await pair.checksums(S) };
  const checksumsEqual =
    Object.keys(checksums.primary).length > 0 &&
    JSON.stringify(checksums.primary) === JSON.stringify(checksums.standby);
  if (!checksumsEqual) {
    problems.push(
      `checksums differ: primary ${JSON.stringify(checksums.primary)} standby ${JSON.stringify(checksums.standby)}`,
    );
  }
  if (settings.semiSync && !semiSyncHeld) {
    problems.push(
      "semi-sync degraded to async during the load (acknowledged writes were not all on the replica)",
    );
  }
  log(
    `   ${acked.size} acknowledged, ${Math.max(lostAfterFailover.length, lostFinal.length)} lost, checksums ${checksumsEqual ? "equal" : "DIFFER"}`,
  );
  return {
    acknowledged: acked.size,
    lost: Math.max(lostAfterFailover.length, lostFinal.length),
    failoverSeconds,
    fallbackSeconds,
    maxLagSeconds: maxLag,
    checksumsEqual,
    checksums,
    unacknowledgedPresent: inFlight,
    semiSyncHeld,
    truncatedTail,
    replicationTls,
    problems,
  };
}

async function ids(pair: LoopbackPair, side: Role): Promise<Set<number>> {
  const out = await pair.sql(side, `SELECT id FROM ${DRILL_TABLE}`, 60_000);
  return new Set(out.split("\n").filter(Boolean).map(Number));
}

/** The summary line: `{"acknowledged": N, "lost": 0, "failoverSeconds": x, ...}`. */
export function summaryLine(r: MysqlDrillResult): string {
  return JSON.stringify({
    acknowledged: r.acknowledged,
    lost: r.lost,
    failoverSeconds: r.failoverSeconds,
    fallbackSeconds: r.fallbackSeconds,
    maxLagSeconds: r.maxLagSeconds,
  });
}

/** Whether the drill passed: nothing lost, identical data, no other problem. */
export function drillPassed(r: MysqlDrillResult): boolean {
  return r.lost === 0 && r.checksumsEqual && r.problems.length === 0;
}

const USAGE = `usage: npm run rehearse -- mysql [--stack NAME] [--writers N] [--load-seconds S] [--timeout S] [--keep]
  Disaster drill on loopback MariaDB with the scripts MysqlPair renders: kill the primary
  under load, fail over, restart it, fall back. Last stdout line: JSON summary.
  --stack NAME       use hastack:mysql from Pulumi.NAME.yaml (default: the schema's defaults)
  --writers N        concurrent writer sessions (1-32, default 4)
  --load-seconds S   load before the kill (1-60, default 3)
  --timeout S        bound on the whole drill (30-1800, default 240)
  --keep             keep the temp directory (datadirs, error logs) for inspection`;

/** Parses the drill's flags; throws DrillUsageError naming the flag and what was expected. */
export function parseMysqlDrillArgs(args: string[]): MysqlDrillOptions & { help?: boolean } {
  const out: MysqlDrillOptions & { help?: boolean } = {};
  const intFlag = (flag: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min || n > max) {
      throw new DrillUsageError(
        `${flag} expects a whole number from ${min} to ${max}, got ${v === undefined ? "nothing" : JSON.stringify(v)}`,
      );
    }
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    switch (a) {
      case "--writers":
        out.writers = intFlag(a, args[++i], 1, 32);
        break;
      case "--load-seconds":
        out.loadSeconds = intFlag(a, args[++i], 1, 60);
        break;
      case "--timeout":
        out.timeoutSeconds = intFlag(a, args[++i], 30, 1800);
        break;
      case "--keep":
        out.keep = true;
        break;
      case "--stack": {
        const stack = args[++i];
        if (stack === undefined) {
          throw new DrillUsageError("--stack expects a stack name, got nothing");
        }
        out.settings = stackMysqlSettings(process.cwd(), stack);
        break;
      }
      case "--help":
      case "-h":
        out.help = true;
        break;
      default:
        throw new DrillUsageError(`unknown flag ${JSON.stringify(a)} for the mysql drill`);
    }
  }
  return out;
}

/** The mysql drill for scripts/rehearse.ts: passes when no acknowledged write was lost. */
export const MYSQL_DRILL: Drill<MysqlDrillOptions> = {
  usage: USAGE,
  parseArgs: parseMysqlDrillArgs,
  run: async (options, log) => {
    const result = await runMysqlDrill({ ...options, log });
    return { passed: drillPassed(result), problems: result.problems, summary: summaryLine(result) };
  },
  cleanupSync: cleanupAllPairsSync,
};

/** CLI entry used by scripts/rehearse.ts: returns the exit code. */
export function main(args: string[]): Promise<number> {
  return runDrill("mysql", MYSQL_DRILL, args);
}
