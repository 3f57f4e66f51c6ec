// The rehearsal's certificates, made with openssl: its CA (image.ts), the certificates it signs
// for the SSM stand-in (index.ts) and the migration's old mail server (drills/migration-old.ts),
// and the throwaway ones tests make. One recipe, so every caller gets the same key type and the
// subjectAltName TLS clients check (a CN alone is not enough for them).
import { execFileSync } from "child_process";
import * as fs from "fs";

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** A self-signed certificate (a CA, or a server's own) and its unencrypted RSA 2048 key. */
export function selfSignedCertificate(o: {
  subject: string;
  days: number;
  keyFile: string;
  certFile: string;
}): void {
  openssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    String(o.days),
    "-subj",
    o.subject,
    "-keyout",
    o.keyFile,
    "-out",
    o.certFile,
  ]);
}

/**
 * A key and a certificate for `dnsName` (CN and subjectAltName) signed by the CA. The CA's serial
 * file goes beside the new certificate, never beside the CA (the cached image's directory).
 */
export function caSignedCertificate(o: {
  dnsName: string;
  days: number;
  caCert: string;
  caKey: string;
  keyFile: string;
  certFile: string;
}): void {
  const csr = `${o.certFile}.csr`;
  const ext = `${o.certFile}.ext`;
  fs.writeFileSync(ext, `subjectAltName=DNS:${o.dnsName}\n`);
  try {
    openssl([
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      `/CN=${o.dnsName}`,
      "-keyout",
      o.keyFile,
      "-out",
      csr,
    ]);
    openssl([
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      o.caCert,
      "-CAkey",
      o.caKey,
      "-CAserial",
      `${o.certFile}.srl`,
      "-CAcreateserial",
      "-days",
      String(o.days),
      "-extfile",
      ext,
      "-out",
      o.certFile,
    ]);
  } finally {
    fs.rmSync(csr, { force: true });
    fs.rmSync(ext, { force: true });
  }
}
