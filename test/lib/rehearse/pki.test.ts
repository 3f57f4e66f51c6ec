// The rehearsal's certificates (lib/rehearse/stack/pki.ts), checked by openssl itself: a server's
// certificate verifies against the CA and names its host in subjectAltName, which is what the
// servers' TLS clients (awscli to the SSM stand-in, doveadm to the old mail server) check.
import { expect } from "chai";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { caSignedCertificate, selfSignedCertificate } from "../../../lib/rehearse/stack/pki";

describe("rehearse pki: the CA and the certificates it signs (real openssl)", function () {
  this.timeout(180_000);
  let dir = "";
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-pki-"));
    fs.mkdirSync(path.join(dir, "ca"));
    fs.mkdirSync(path.join(dir, "server"));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("signs a certificate that verifies against the CA and names the host; nothing lands beside the CA", () => {
    const ca = { cert: path.join(dir, "ca", "ca.crt"), key: path.join(dir, "ca", "ca.key") };
    selfSignedCertificate({ subject: "/CN=test CA", days: 1, keyFile: ca.key, certFile: ca.cert });
    const cert = path.join(dir, "server", "ssm.crt");
    caSignedCertificate({
      dnsName: "ssm.ap-southeast-3.amazonaws.com",
      days: 1,
      caCert: ca.cert,
      caKey: ca.key,
      keyFile: path.join(dir, "server", "ssm.key"),
      certFile: cert,
    });
    expect(
      execFileSync("openssl", ["verify", "-CAfile", ca.cert, cert], { encoding: "utf8" }),
    ).to.equal(`${cert}: OK\n`);
    const text = execFileSync("openssl", ["x509", "-in", cert, "-noout", "-text"], {
      encoding: "utf8",
    });
    expect(text).to.contain("DNS:ssm.ap-southeast-3.amazonaws.com");
    expect(fs.readdirSync(path.join(dir, "ca")).sort()).to.deep.equal(["ca.crt", "ca.key"]);
    // The request and the extension file are gone; key, certificate and serial stay.
    expect(fs.readdirSync(path.join(dir, "server")).sort()).to.deep.equal([
      "ssm.crt",
      "ssm.crt.srl",
      "ssm.key",
    ]);
  });

  it("a certificate from another CA does not verify (the check above can fail)", () => {
    const other = { cert: path.join(dir, "other.crt"), key: path.join(dir, "other.key") };
    selfSignedCertificate({
      subject: "/CN=other CA",
      days: 1,
      keyFile: other.key,
      certFile: other.cert,
    });
    const r = (() => {
      try {
        execFileSync(
          "openssl",
          ["verify", "-CAfile", other.cert, path.join(dir, "server", "ssm.crt")],
          {
            stdio: "pipe",
          },
        );
        return 0;
      } catch {
        return 1;
      }
    })();
    expect(r).to.equal(1);
  });
});
