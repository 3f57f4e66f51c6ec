// Test support: the real `cloud-init schema` checker on rendered user-data, for every service.
import { expect } from "chai";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/** Runs `cloud-init schema` on `userData`; throws naming the Debian package when it is missing. */
export function cloudInitSchema(userData: string): { ok: boolean; output: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-ud-"));
  try {
    const file = path.join(dir, "user-data");
    fs.writeFileSync(file, userData);
    const r = spawnSync("cloud-init", ["schema", "--config-file", file], {
      encoding: "utf8",
      timeout: 60_000,
    });
    if (r.error) {
      throw new Error(
        `cloud-init not runnable (${r.error.message}): install the Debian package cloud-init`,
      );
    }
    const output = `${r.stdout}${r.stderr}`;
    return { ok: r.status === 0 && r.stdout.includes("Valid cloud-config"), output };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Asserts that the real checker accepts `userData`. */
export function expectValidCloudConfig(userData: string): void {
  const r = cloudInitSchema(userData);
  expect(r.ok, r.output).to.equal(true);
}
