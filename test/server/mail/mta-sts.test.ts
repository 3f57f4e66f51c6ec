// Issue 17: the MTA-STS policy as a sender fetches it (RFC 8461 3.3): HTTPS to
// mta-sts.<domain>, the certificate verified for that name, HTTP 200, text/plain, then parsed.
// Real nginx from the rendered nginx.conf serves it on loopback with a certificate for the
// names certificateNames gives the mail servers (signed by the test CA, as ACME's would be by
// Let's Encrypt); the rendered refresh script installs the policy from the SSM stub exactly as
// MailPair stores it (mtaStsPolicy over mtaStsMxNames); removing the parameter (mode none)
// takes it down, and a changed policy is served after the next refresh.
import { expect } from "chai";
import * as fs from "fs";
import * as https from "https";
import { certificateNames } from "../../../components/mail";
import {
  mtaStsHost,
  mtaStsId,
  mtaStsMxNames,
  mtaStsPolicy,
  MTA_STS_POLICY_PATH,
} from "../../../components/mail-mta-sts";
import { migrationPlan } from "../../../components/mail-migration";
import {
  DOMAIN,
  MailServer,
  MailWorld,
  requireBinaries,
  SETTINGS,
} from "../../support/mail-harness";
import { mxNotCovered, parseStsPolicy } from "../../support/mta-sts";

const SERVER_NAMES = { primary: `mx1.${DOMAIN}`, standby: `mx2.${DOMAIN}` };
const OLD_MX = `mx-old.${DOMAIN}`;

interface Fetched {
  status: number;
  contentType: string;
  body: string;
}

/** GET over HTTPS as an MTA-STS sender does: SNI and certificate check for `name`, no redirects. */
function fetchPolicy(ip: string, port: number, name: string, ca: string): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      {
        host: ip,
        port,
        path: MTA_STS_POLICY_PATH,
        servername: name,
        headers: { Host: name },
        ca,
        timeout: 15000,
        // Node checks the certificate against servername (checkServerIdentity).
        rejectUnauthorized: true,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers["content-type"] ?? ""),
            body,
          }),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET https://${name}: timed out`)));
    req.on("error", reject);
  });
}

describe("MTA-STS: the policy served over HTTPS by the mail server's nginx", function () {
  this.timeout(300000);
  let world: MailWorld;
  let server: MailServer;
  let ca: string;
  const host = mtaStsHost(DOMAIN);

  before(async function () {
    requireBinaries(["nginx", "nginx"]);
    world = await MailWorld.create();
    await world.setUsers({ [`alice@${DOMAIN}`]: "secret-alice" });
    // Migration phase 6: the old server is still among the MX, so it is in the policy.
    world.setParameter(
      "mta-sts-policy",
      mtaStsPolicy("testing", mtaStsMxNames(SERVER_NAMES, OLD_MX), 604800),
    );
    server = await world.server("mx1", "primary", world.ips[0], {
      postfix: false,
      web: true,
      certificateName: certificateNames(SETTINGS, SERVER_NAMES),
    });
    ca = fs.readFileSync(world.caCert, "utf8");
  });

  after(async () => {
    await world?.dispose();
  });

  const get = (name = host): Promise<Fetched> =>
    fetchPolicy(server.ip, server.layout.ports.https, name, ca);

  it("answers 200 text/plain with a policy that parses per RFC 8461 and covers phase 6's MX", async () => {
    const r = await get();
    expect(r.status).to.equal(200);
    expect(r.contentType.split(";")[0].trim()).to.equal("text/plain");
    const policy = parseStsPolicy(r.body);
    expect(policy).to.deep.equal({
      version: "STSv1",
      mode: "testing",
      mx: [`mx-old.${DOMAIN}`, `mx1.${DOMAIN}`, `mx2.${DOMAIN}`],
      maxAge: 604800,
    });
    const phase6 = migrationPlan({
      phase: 6,
      oldServer: {
        hostname: SETTINGS.hostname,
        ip: "203.0.113.25",
        mxPreference: 0,
        raisedPreference: 10,
      },
      domain: DOMAIN,
      activeServer: SERVER_NAMES.primary,
      standbyServer: SERVER_NAMES.standby,
    });
    expect(phase6.mx.length).to.equal(3);
    expect(mxNotCovered(policy, phase6.mx)).to.deep.equal([]);
  });

  it("its certificate is checked for mta-sts.<domain>: a name it does not carry is refused", async () => {
    let error: Error | undefined;
    await get(`mta-sts.other.test`).catch((e: Error) => (error = e));
    expect(error?.message ?? "").to.match(/altnames|Hostname\/IP does not match/);
    // And an unknown CA is refused too: the check is real.
    let untrusted: Error | undefined;
    await fetchPolicy(server.ip, server.layout.ports.https, host, "").catch(
      (e: Error) => (untrusted = e),
    );
    expect(untrusted, "a certificate from an unknown CA").to.not.equal(undefined);
  });

  it("serves nothing but the policy", async () => {
    const other = await new Promise<number>((resolve, reject) => {
      https
        .get(
          { host: server.ip, port: server.layout.ports.https, path: "/", servername: host, ca },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        )
        .on("error", reject);
    });
    expect(other).to.equal(404);
  });

  it("a changed policy (phase 9: the old server gone, enforce) is served after the refresh, with a new id", async () => {
    const before = (await get()).body;
    const next = mtaStsPolicy("enforce", mtaStsMxNames(SERVER_NAMES), 604800);
    world.setParameter("mta-sts-policy", next);
    await server.script("hastack-mail-refresh");
    const r = await get();
    expect(r.body).to.equal(next);
    const policy = parseStsPolicy(r.body);
    expect(policy.mode).to.equal("enforce");
    expect(policy.mx).to.deep.equal([`mx1.${DOMAIN}`, `mx2.${DOMAIN}`]);
    expect(mtaStsId(r.body)).to.not.equal(mtaStsId(before));
  });

  it("a parameter that is not a policy keeps the served one; no parameter (mode none) serves 404", async () => {
    const served = (await get()).body;
    world.setParameter("mta-sts-policy", "<html>not a policy</html>\n");
    await server.script("hastack-mail-refresh");
    expect((await get()).body).to.equal(served);
    fs.rmSync(`${world.ssmDir}${SETTINGS.ssmPrefix}/mta-sts-policy`);
    await server.script("hastack-mail-refresh");
    expect((await get()).status).to.equal(404);
  });
});
