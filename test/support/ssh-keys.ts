// SSH keys for tests that run a real sshd or ssh client.
import { execFileSync } from "child_process";
import * as fs from "fs";

/** A new ed25519 key pair at `file` (no passphrase, no comment); returns the public line. */
export function keygen(file: string): string {
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", file]);
  return fs.readFileSync(`${file}.pub`, "utf8").trim();
}
