// The mail refresh script finds its region through server/lib/hastack.sh (issue 10: one IMDSv2
// lookup): with no region in the environment it asks the instance metadata service — a stand-in
// on loopback that, like EC2 with http_tokens=required, answers only with a session token — and
// calls the AWS CLI (a stand-in recording its environment) in that region.
import { expect } from "chai";
import { spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { PRODUCTION_LAYOUT, renderRefreshScript } from "../../../components/mail";
import { PROJECT_DIR } from "../../support/stack-files";

const LIB = path.join(PROJECT_DIR, "server", "lib", "hastack.sh");
const TOKEN = "tok-123";

describe("mail refresh: the region comes from IMDSv2 through hastack_region", function () {
  this.timeout(180_000);
  let dir: string;
  let imds: http.Server;
  let imdsUrl: string;
  const seen: string[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-mail-region-"));
    fs.mkdirSync(path.join(dir, "bin"));
    // The AWS CLI stand-in: records the region it was called in, then fails (no SSM here).
    fs.writeFileSync(
      path.join(dir, "bin", "aws"),
      `#!/bin/bash\necho "region=\${AWS_DEFAULT_REGION:-}" >> "${path.join(dir, "aws.log")}"\nexit 254\n`,
      { mode: 0o755 },
    );
    imds = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      if (req.method === "PUT" && req.url === "/latest/api/token") {
        res.end(TOKEN);
      } else if (
        req.url === "/latest/meta-data/placement/region" &&
        req.headers["x-aws-ec2-metadata-token"] === TOKEN
      ) {
        res.end("ap-southeast-3");
      } else {
        res.statusCode = 401;
        res.end();
      }
    });
    await new Promise<void>((resolve) => imds.listen(0, "127.0.0.1", resolve));
    imdsUrl = `http://127.0.0.1:${(imds.address() as net.AddressInfo).port}/latest`;
  });

  after(() => {
    imds.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function refresh(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
    const script = path.join(dir, "hastack-mail-refresh");
    fs.writeFileSync(
      script,
      renderRefreshScript(
        {
          hostname: "mail.example.test",
          domain: "example.test",
          pop3: false,
          ssmPrefix: "/hastack/test/mail",
          role: "primary",
        },
        { ...PRODUCTION_LAYOUT, stateDir: path.join(dir, "state") },
      ),
      { mode: 0o755 },
    );
    const base = { ...process.env };
    delete base.AWS_DEFAULT_REGION;
    delete base.HASTACK_AWS_REGION;
    return new Promise((resolve) => {
      const p = spawn("bash", [script], {
        env: { ...base, PATH: `${path.join(dir, "bin")}:${process.env.PATH}`, ...env },
      });
      let stderr = "";
      p.stderr.on("data", (d) => (stderr += d));
      p.on("close", (code) => resolve({ code, stderr }));
    });
  }

  it("asks IMDS with a session token and calls SSM in that region", async () => {
    const r = await refresh({ HASTACK_LIB: LIB, HASTACK_IMDS_URL: imdsUrl });
    expect(r.code, r.stderr).to.not.equal(0); // the SSM stand-in has no users
    expect(seen).to.deep.equal(["PUT /latest/api/token", "GET /latest/meta-data/placement/region"]);
    expect(fs.readFileSync(path.join(dir, "aws.log"), "utf8")).to.equal("region=ap-southeast-3\n");
  });

  it("fails before any AWS call when the metadata service does not answer", async () => {
    fs.rmSync(path.join(dir, "aws.log"), { force: true });
    const r = await refresh({ HASTACK_LIB: LIB, HASTACK_IMDS_URL: "http://127.0.0.1:9/latest" });
    expect(r.code).to.not.equal(0);
    expect(fs.existsSync(path.join(dir, "aws.log"))).to.equal(false);
  });
});
