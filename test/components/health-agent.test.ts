// The fencing health agent and the user-data it ships in, run for real: python3 serves the
// agent on loopback against a real TCP listener; `cloud-init schema` checks the user-data.
import { expect } from "chai";
import { freePort } from "../../lib/rehearse/drill";
import { cloudInitSchema, expectValidCloudConfig } from "../support/cloud-init";
import { ChildProcess, execFile, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { renderCloudConfig, renderHealthAgent } from "../../components/server-pair";

const run = promisify(execFile);

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/health", timeout: 2000 }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
  });
}

/** Polls `cond` every 100 ms, at most `ms`. */
async function waitFor(
  what: string,
  ms: number,
  cond: () => Promise<boolean> | boolean,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      if (await cond()) {
        return;
      }
    } catch {
      // not ready yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

function listen(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((s) => {
      // The agent's probe connects and closes at once: a reset is expected, not a failure.
      s.on("error", () => undefined);
      s.end("220 ready\r\n");
    });
    // A port taken meanwhile (freePort's pick is only free when picked) fails here, not at timeout.
    srv.once("error", reject);
    srv.listen(port, "127.0.0.1", () => resolve(srv));
  });
}

describe("fencing health agent (real python3 on loopback)", () => {
  const files = Object.fromEntries(
    renderHealthAgent({ servicePort: 1, failureThreshold: 3 }).map((f) => [f.path, f]),
  );
  let dir: string;
  let agent: ChildProcess | undefined;
  let service: net.Server | undefined;
  let agentPort: number;
  let servicePort: number;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-agent-"));
    for (const name of ["hastack-health-agent", "hastack-unfence"]) {
      fs.writeFileSync(path.join(dir, name), files[`/usr/local/sbin/${name}`].content, {
        mode: 0o755,
      });
    }
    agentPort = await freePort();
    servicePort = await freePort();
    env = {
      ...process.env,
      HASTACK_AGENT_HOST: "127.0.0.1",
      HASTACK_AGENT_PORT: String(agentPort),
      HASTACK_SERVICE_PORT: String(servicePort),
      HASTACK_FAIL_LIMIT: "3",
      HASTACK_CHECK_INTERVAL: "0.1",
      HASTACK_FENCE_FILE: path.join(dir, "state", "fenced"),
      // Provisioning has finished: the latch is armed (test/server/health-agent.test.ts covers
      // the agent before it is).
      HASTACK_PROVISIONED_FILE: path.join(dir, "provisioned"),
    };
    fs.writeFileSync(env.HASTACK_PROVISIONED_FILE!, "");
    service = await listen(servicePort);
    agent = spawn("python3", [path.join(dir, "hastack-health-agent")], { env, stdio: "ignore" });
    // Generous: python3 (a pyenv shim here) starting beside three other test files on 2 cores
    // took over 10 s in the parallel suite (01:45, load 24); it is polled, so a fast start is fast.
    await waitFor("the agent to answer", 60000, async () => (await get(agentPort)).status > 0);
  });

  after(async () => {
    agent?.kill("SIGKILL");
    await new Promise<void>((r) => (service ? service.close(() => r()) : r()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("answers 200 while the service port answers", async () => {
    expect((await get(agentPort)).status).to.equal(200);
  });

  it("fences itself after the service fails failureThreshold times, and stays fenced when it recovers", async () => {
    await new Promise<void>((r) => service!.close(() => r()));
    service = undefined;
    await waitFor("the fence file", 10000, () => fs.existsSync(env.HASTACK_FENCE_FILE!));
    expect(fs.readFileSync(env.HASTACK_FENCE_FILE!, "utf8")).to.contain(
      "fenced after 3 failed checks",
    );
    service = await listen(servicePort);
    await new Promise((r) => setTimeout(r, 500)); // several check intervals with the service up
    const r = await get(agentPort);
    expect(r.status).to.equal(503);
    expect(r.body).to.contain("fenced");
  });

  it("only hastack-unfence (after resync) lets the server take traffic again", async () => {
    const { stdout } = await run(path.join(dir, "hastack-unfence"), [], { env });
    expect(stdout).to.contain("unfenced");
    expect((await get(agentPort)).status).to.equal(200);
  });

  it("a down service answers 503 'not answering' at once, before the latch trips", async () => {
    await new Promise<void>((r) => service!.close(() => r()));
    service = undefined;
    const r = await get(agentPort);
    expect(r.status).to.equal(503);
    expect(r.body).to.contain("not answering");
  });
});

describe("user-data (real cloud-init schema)", () => {
  it("rendered cloud-config with the agent passes `cloud-init schema`", () => {
    expectValidCloudConfig(
      renderCloudConfig({
        hostname: "mail",
        fqdn: "mail.example.co.id",
        packages: ["postfix"],
        runcmd: [["systemctl", "restart", "postfix"]],
        healthAgent: { servicePort: 25, failureThreshold: 3 },
      }),
    );
  });

  it("the checker rejects a broken document (so the check above can fail)", () => {
    expect(cloudInitSchema("#cloud-config\nruncmd: 5\n").ok).to.equal(false);
  });

  it("formats the data volume only when it has no filesystem, and mounts it by label", () => {
    const text = renderCloudConfig({ hostname: "db", fqdn: "db.example.co.id" });
    expect(text).to.contain('blkid "$dev" >/dev/null 2>&1 || mkfs.ext4');
    expect(text).to.contain("LABEL=hastack-data /srv/data ext4 defaults,nofail");
    expect(text).not.to.contain("hastack-health-agent");
  });
});
