// A network namespace holding what the rehearsal runs beside the servers, for tests that apply
// updates to it: the real stand-ins process (IMDS, SSM, health checker: lib/rehearse/stack/
// standins.ts) and bind9 serving a model's zones from the rehearsal's own renderers. Started and
// removed by the test (namespace, daemons, directory).
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import { StackModel } from "../../lib/rehearse/stack/model";
import { servedSerial } from "../../lib/rehearse/stack/apply-run";
import { renderNamedConf, renderZoneFile, rndcConf } from "../../lib/rehearse/stack/dns";
import { StandInConfig, StandInServer } from "../../lib/rehearse/stack/standins";
import { selfSignedCertificate } from "../../lib/rehearse/stack/pki";
import { PACKAGE_ROOT } from "../../lib/package-root";

export const IMDS_ADDRESS = "169.254.169.254";
export const SSM_ADDRESS = "198.18.0.10";
/** The serial the zones start at. */
export const FIRST_SERIAL = 1000;

export interface StandInWorld {
  ns: string;
  dir: string;
  cfg: StandInConfig;
  cfgFile: string;
  /** The stand-ins process (apply-run reloads it with SIGHUP). */
  standInsPid: number;
  /** Kills the daemons, deletes the namespace and the directory. */
  stop(): void;
}

/**
 * Starts the world in a new namespace `ns` and waits (bounded, 60 s) until bind9 serves `domain`
 * at FIRST_SERIAL and the stand-ins log `ready` (e.g. "ssm on", "imds on"). `servers` are the
 * instances IMDS answers for (their addresses are added to the namespace's loopback).
 */
export async function startStandInWorld(o: {
  ns: string;
  region: string;
  model: StackModel;
  domain: string;
  ready: string;
  servers?: StandInServer[];
  eips?: StandInConfig["eips"];
  /** Health checks the stand-ins' checker probes from 127.0.0.1 in the namespace. */
  healthChecks?: StandInConfig["healthChecks"];
}): Promise<StandInWorld> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `hastack-${o.ns}-`));
  const daemons: ChildProcess[] = [];
  const stop = (): void => {
    for (const d of daemons) {
      d.kill("SIGKILL");
    }
    spawnSync("ip", ["netns", "delete", o.ns]);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    execFileSync("ip", ["netns", "add", o.ns]);
    execFileSync("ip", ["-n", o.ns, "link", "set", "lo", "up"]);
    const servers = o.servers ?? [];
    const addrs = [
      IMDS_ADDRESS,
      SSM_ADDRESS,
      ...servers.flatMap((s) => [s.privateIp, ...s.secondaryIps]),
    ];
    for (const a of addrs) {
      execFileSync("ip", ["-n", o.ns, "addr", "add", `${a}/32`, "dev", "lo"]);
    }
    selfSignedCertificate({
      subject: "/CN=ssm.test",
      days: 1,
      keyFile: path.join(dir, "ssm.key"),
      certFile: path.join(dir, "ssm.crt"),
    });
    const secret = crypto.randomBytes(32).toString("base64");
    for (const z of o.model.zones) {
      fs.writeFileSync(path.join(dir, `${z.name}.zone`), renderZoneFile(z, {}, FIRST_SERIAL));
    }
    fs.writeFileSync(
      path.join(dir, "named.conf"),
      renderNamedConf(
        dir,
        o.model.zones.map((z) => z.name),
        secret,
      ),
    );
    fs.writeFileSync(path.join(dir, "rndc.conf"), rndcConf(secret));
    daemons.push(
      spawn("ip", ["netns", "exec", o.ns, "named", "-g", "-c", path.join(dir, "named.conf")], {
        stdio: "ignore",
      }),
    );
    const cfg: StandInConfig = {
      account: "123456789012",
      region: o.region,
      imdsAddress: IMDS_ADDRESS,
      ssm: {
        address: SSM_ADDRESS,
        certFile: path.join(dir, "ssm.crt"),
        keyFile: path.join(dir, "ssm.key"),
      },
      servers,
      parameters: {},
      checker: { source: "127.0.0.1", statusFile: path.join(dir, "health.json") },
      ...(o.eips ? { eips: o.eips } : {}),
      healthChecks: o.healthChecks ?? [],
      dns: {
        dir,
        zones: o.model.zones,
        extraZones: [],
        rndcConf: path.join(dir, "rndc.conf"),
      },
      logFile: path.join(dir, "standins.log"),
    };
    const cfgFile = path.join(dir, "standins.json");
    fs.writeFileSync(cfgFile, JSON.stringify(cfg));
    daemons.push(
      spawn(
        "ip",
        [
          "netns",
          "exec",
          o.ns,
          process.execPath,
          path.join(PACKAGE_ROOT, "dist", "lib", "rehearse", "stack", "standins.js"),
          cfgFile,
        ],
        { stdio: "ignore" },
      ),
    );
    const up = (): boolean =>
      servedSerial(o.ns, o.domain) === FIRST_SERIAL &&
      fs.existsSync(cfg.logFile) &&
      fs.readFileSync(cfg.logFile, "utf8").includes(o.ready);
    const until = Date.now() + 60_000;
    while (Date.now() < until && !up()) {
      await new Promise((r) => setTimeout(r, 250));
    }
    if (!up()) {
      throw new Error(
        `stand-in world ${o.ns}: bind9 did not serve ${o.domain} at serial ${FIRST_SERIAL} or the stand-ins did not log "${o.ready}" within 60 s`,
      );
    }
    return { ns: o.ns, dir, cfg, cfgFile, standInsPid: daemons[1].pid!, stop };
  } catch (e) {
    stop();
    throw e;
  }
}
