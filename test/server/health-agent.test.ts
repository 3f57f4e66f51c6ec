// server/common/hastack-health-agent.py, for real (Debian's python3): it fences a server whose
// service stopped answering, but never one still being provisioned. Found by the stack rehearsal
// (issue 11): on a first boot the agent starts before MySQL and mail are provisioned (and mail
// setup restarts Postfix), fenced them, and every health check then stayed 503 for good.
import { expect } from "chai";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { ChildProcess, spawn } from "child_process";
import { PACKAGE_ROOT } from "../../lib/package-root";
import { freePort } from "../../lib/rehearse/drill";

const AGENT = path.join(PACKAGE_ROOT, "server/common/hastack-health-agent.py");

function get(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/health", timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", () => resolve(0));
    req.on("timeout", () => {
      req.destroy();
      resolve(0);
    });
  });
}

async function until(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) {
      return true;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

describe("hastack-health-agent (real python3, loopback)", function () {
  this.timeout(180_000);
  let dir: string;
  let agent: ChildProcess | undefined;
  let service: net.Server | undefined;

  afterEach(() => {
    agent?.kill("SIGKILL");
    service?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("does not fence before provisioning has finished, fences when the service stops after", async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-agent-"));
    const fence = path.join(dir, "fenced");
    const provisioned = path.join(dir, "provisioned");
    const servicePort = await freePort();
    const agentPort = await freePort();
    agent = spawn("/usr/bin/python3", [AGENT], {
      env: {
        HASTACK_SERVICE_PORT: String(servicePort),
        HASTACK_AGENT_PORT: String(agentPort),
        HASTACK_AGENT_HOST: "127.0.0.1",
        HASTACK_CHECK_INTERVAL: "0.1",
        HASTACK_FAIL_LIMIT: "3",
        HASTACK_FENCE_FILE: fence,
        HASTACK_PROVISIONED_FILE: provisioned,
      },
      stdio: "ignore",
    });
    // Provisioning: the service is not up yet, for far longer than 3 checks.
    expect(
      await until(async () => (await get(agentPort)) === 503, 15_000),
      "agent answers 503",
    ).to.equal(true);
    await new Promise((r) => setTimeout(r, 1500));
    expect(fs.existsSync(fence), "fenced before the service ever answered").to.equal(false);
    // The service comes up during provisioning, and provisioning restarts it: still no fence.
    const listen = async (): Promise<void> => {
      service = net.createServer((s) => s.end());
      await new Promise<void>((r) => service!.listen(servicePort, "127.0.0.1", r));
    };
    await listen();
    expect(await until(async () => (await get(agentPort)) === 200, 15_000), "200 once up").to.equal(
      true,
    );
    await new Promise<void>((r) => service!.close(() => r()));
    await new Promise((r) => setTimeout(r, 1500));
    expect(fs.existsSync(fence), "fenced by a restart during provisioning").to.equal(false);
    // Provisioned (runcmd's last step), up again: armed.
    fs.writeFileSync(provisioned, "");
    await listen();
    expect(await until(async () => (await get(agentPort)) === 200, 15_000), "200 again").to.equal(
      true,
    );
    await new Promise((r) => setTimeout(r, 500));
    // It stops: fenced after 3 failed checks, and 503 stays.
    await new Promise<void>((r) => service!.close(() => r()));
    service = undefined;
    expect(
      await until(() => fs.existsSync(fence), 15_000),
      "fenced after the service stopped",
    ).to.equal(true);
    expect(await get(agentPort)).to.equal(503);
  });
});
