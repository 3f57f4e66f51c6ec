// The Route 53 stand-in's health checker (lib/rehearse/stack/standins.ts), for real: the
// stand-ins process and bind9 in a network namespace this test creates, probing an HTTP agent in
// the same namespace that the test turns healthy and unhealthy. The checker flips a check only
// after `failureThreshold` answers in a row, bind9 then answers the failover record set's other
// side, and the status file counts every probe and every pass — what the mysql drill reads to
// prove a fenced primary's agent never answered healthy (a sample of the status alone misses a
// pass between two samples, and before the threshold "healthy" is only the old status).
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { ChildProcess, execFileSync, spawn } from "child_process";
import { StackModel } from "../../../lib/rehearse/stack/model";
import { CheckerStatus, readCheckerStatus } from "../../../lib/rehearse/stack/standins";
import { until as pollUntil } from "../../../lib/rehearse/stack/drills/container";
import { StandInWorld, startStandInWorld } from "../../support/standins-world";

const NS = `hastack-checker-${process.pid}`;
const ZONE = "checker.test";
const HC = {
  id: "hc-agent",
  type: "HTTP" as const,
  ipAddress: "127.0.0.1",
  port: 18080,
  path: "/health",
  intervalSeconds: 1,
  failureThreshold: 2,
};
// The agent answers 503 while its directory holds `fail`, else 200.
const AGENT = `
const http = require("http"), fs = require("fs"), dir = process.argv[1];
http.createServer((req, res) => {
  res.writeHead(fs.existsSync(dir + "/fail") ? 503 : 200);
  res.end();
}).listen(${HC.port}, "127.0.0.1");
`;

describe("rehearse Route 53 stand-in: the health checker, its counts and the answers it drives", function () {
  this.timeout(180_000);
  let world: StandInWorld | undefined;
  let agent: ChildProcess | undefined;

  const status = (): CheckerStatus => readCheckerStatus(world!.cfg.checker.statusFile);
  const answer = (): string =>
    execFileSync(
      "ip",
      [
        "netns",
        "exec",
        NS,
        "dig",
        "+short",
        "+time=2",
        "+tries=1",
        "@127.0.0.1",
        `db.${ZONE}`,
        "A",
      ],
      { encoding: "utf8" },
    ).trim();
  /** The drills' poll, its failure naming the checker's status then. */
  const until = <T>(what: string, seconds: number, f: () => T | undefined): Promise<T> =>
    pollUntil(what, seconds, f).catch((e: Error) => {
      throw new Error(`${e.message} (status ${JSON.stringify(status())})`);
    });

  before(async () => {
    const model = {
      zones: [
        {
          name: ZONE,
          private: false,
          records: [
            {
              name: `db.${ZONE}`,
              type: "A",
              ttl: 5,
              values: ["192.0.2.1"],
              failover: "PRIMARY",
              healthCheckId: HC.id,
              setIdentifier: "primary",
            },
            {
              name: `db.${ZONE}`,
              type: "A",
              ttl: 5,
              values: ["192.0.2.2"],
              failover: "SECONDARY",
              setIdentifier: "standby",
            },
          ],
        },
      ],
    } as unknown as StackModel;
    world = await startStandInWorld({
      ns: NS,
      region: "ap-southeast-3",
      model,
      domain: ZONE,
      ready: "imds on",
      healthChecks: [HC],
    });
    agent = spawn("ip", ["netns", "exec", NS, process.execPath, "-e", AGENT, world.dir], {
      stdio: "ignore",
    });
  });
  after(() => {
    agent?.kill("SIGKILL");
    world?.stop();
  });

  it("counts passes, flips after the threshold in a row, and bind9 answers the side it holds healthy", async () => {
    // The agent started after the checker: it settles healthy, answering the primary.
    await until("the agent healthy, three passes in a row", 60, () => {
      const s = status().streak[HC.id];
      return s.last === true && s.passes >= 3 && status().health[HC.id] !== false ? s : undefined;
    });
    await until("bind9 answering the primary", 30, () =>
      answer() === "192.0.2.1" ? true : undefined,
    );

    fs.writeFileSync(path.join(world!.dir, "fail"), "");
    const failing = await until("a failed probe", 30, () =>
      status().streak[HC.id].last === false ? status() : undefined,
    );
    // One failure is below the threshold: the checker still holds the old status.
    expect(failing.health[HC.id]).to.not.equal(false);
    const flipped = await until("the check held unhealthy", 30, () =>
      status().health[HC.id] === false ? status() : undefined,
    );
    await until("bind9 answering the standby", 30, () =>
      answer() === "192.0.2.2" ? true : undefined,
    );
    const later = await until("three more probes", 30, () =>
      status().streak[HC.id].probes >= flipped.streak[HC.id].probes + 3 ? status() : undefined,
    );
    expect(later.streak[HC.id].passes, "no probe passed while the agent answered 503").to.equal(
      failing.streak[HC.id].passes,
    );
    expect(later.health[HC.id]).to.equal(false);

    fs.rmSync(path.join(world!.dir, "fail"));
    await until("the check held healthy again", 30, () =>
      status().health[HC.id] === true ? true : undefined,
    );
    expect(status().streak[HC.id].passes).to.be.at.least(
      later.streak[HC.id].passes + HC.failureThreshold,
    );
    await until("bind9 answering the primary again", 30, () =>
      answer() === "192.0.2.1" ? true : undefined,
    );
  });
});
