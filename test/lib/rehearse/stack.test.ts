// `npm run rehearse -- stack` end to end (issue 11): every server of the prod synth boots from its
// exact user-data in a container on an isolated copy of the VPC; the test reads the command's
// JSON line and holds it to the done-when figures. Needs root (namespaces, mounts,
// containers): skipped otherwise, with the reason. The first run on a machine builds the base
// image (minutes); later runs use the cache.
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { spawn } from "child_process";
import { PACKAGE_ROOT } from "../../../lib/package-root";

const REHEARSE = path.join(PACKAGE_ROOT, "dist", "scripts", "rehearse.js");

interface StackSummary {
  servers: number;
  booted: number;
  cloudInitErrors: Record<string, string[]>;
  failedUnits: Record<string, string[]>;
  services: Record<string, string>;
  flows: { declared: number; ok: number; blockedAsExpected: number; violations: string[] };
  notRehearsed: string[];
  seconds: number;
}

function runCli(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [REHEARSE, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // Bounded: SIGINT runs the drill's cleanup; the test fails on the timeout, it never hangs.
    const timer = setTimeout(() => child.kill("SIGINT"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("rehearse stack (every server booted from its user-data, wired as on AWS)", function () {
  this.timeout(4 * 3600_000);

  before(function () {
    if (process.getuid?.() !== 0) {
      // Network namespaces, overlay mounts and systemd-nspawn need root.
      this.skip();
    }
    // Opt-in until it passes (issue 11 stays open): today all 8 servers boot and every declared
    // flow works, but networkd-wait-online fails in the rehearsal's containers and replication
    // needs the stack's remote commands, which the rehearsal does not run yet. A cold run also
    // costs ~40 min of CI's 90. HASTACK_REHEARSE_STACK=1 runs it.
    if (process.env.HASTACK_REHEARSE_STACK !== "1") {
      process.stderr.write(
        "rehearse stack: skipped (set HASTACK_REHEARSE_STACK=1; issue 11 is not done yet)\n",
      );
      this.skip();
    }
  });

  it("boots all servers clean and every declared flow works, every sample of an undeclared one is dropped", async () => {
    const r = await runCli(
      ["stack", "--stack", "prod", "--drills", "none", "--boot-timeout", "2400"],
      3.5 * 3600_000,
    );
    const last = r.stdout.trim().split("\n").pop() ?? "";
    let s: StackSummary;
    try {
      s = JSON.parse(last) as StackSummary;
    } catch {
      throw new Error(
        `no JSON summary (exit ${r.code}):\n${r.stderr.split("\n").slice(-40).join("\n")}`,
      );
    }
    const why = `\n${r.stderr
      .split("\n")
      .filter((l) => /PROBLEM|FAILED|OPEN!/.test(l))
      .join("\n")}`;
    expect(s.servers, "servers in the prod synth").to.equal(8);
    expect(s.booted, `booted${why}`).to.equal(s.servers);
    expect(s.cloudInitErrors, `cloud-init errors${why}`).to.deep.equal({});
    expect(s.failedUnits, `failed units${why}`).to.deep.equal({});
    expect(s.flows.declared, "declared flows tried").to.be.greaterThan(20);
    expect(s.flows.blockedAsExpected, "undeclared samples dropped").to.be.greaterThan(5);
    expect(s.flows.violations, `flow violations${why}`).to.deep.equal([]);
    expect(s.flows.ok).to.equal(s.flows.declared);
    expect(
      s.notRehearsed.some((n) => /Asterisk/.test(n)),
      "Asterisk named as not rehearsed",
    ).to.equal(true);
    expect(r.code, `exit code${why}`).to.equal(0);
    // Nothing left behind: no namespace, no mount, no state file.
    expect(
      fs.existsSync("/var/lib/hastack-rehearsal/prod/made.json"),
      "state file removed",
    ).to.equal(false);
    const mounts = fs.readFileSync("/proc/self/mountinfo", "utf8");
    expect(mounts.includes("/var/lib/hastack-rehearsal/prod/"), "overlay mounts removed").to.equal(
      false,
    );
  });
});
