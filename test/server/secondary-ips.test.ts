// server/common/hastack-secondary-ips.sh against a real interface whose `ip -o link` name carries
// a peer suffix (`ens5@if7`, as a veth, VLAN or macvlan shows), found by the stack rehearsal
// (issue 11): the script must add the secondary address to `ens5`, not fail on "ens5@if7".
import { expect } from "chai";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFileSync, spawnSync } from "child_process";
import { PACKAGE_ROOT } from "../../lib/package-root";

const SCRIPT = path.join(PACKAGE_ROOT, "server/common/hastack-secondary-ips.sh");
const MAC = "0a:11:22:33:44:55";

describe("hastack-secondary-ips (real ip(8) in a namespace the test creates)", function () {
  this.timeout(180_000);
  const ns = `hstest-sip-${process.pid}`;
  let stub: string;

  before(function () {
    if (process.getuid?.() !== 0) {
      this.skip(); // network namespaces need root
    }
    stub = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-sip-"));
    // IMDS answers, by path, as curl would print them.
    fs.writeFileSync(
      path.join(stub, "curl"),
      [
        "#!/bin/sh",
        'for a; do url="$a"; done',
        'case "$url" in',
        "  */api/token) echo token ;;",
        `  */meta-data/mac) echo ${MAC} ;;`,
        "  */meta-data/local-ipv4) echo 10.20.5.10 ;;",
        "  */subnet-ipv4-cidr-block) echo 10.20.5.0/24 ;;",
        "  */local-ipv4s) printf '10.20.5.10\\n10.20.5.138\\n' ;;",
        "  *) exit 22 ;;",
        "esac",
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    execFileSync("ip", ["netns", "add", ns]);
    execFileSync("ip", ["-n", ns, "link", "add", "ens5", "type", "veth", "peer", "name", "peer0"]);
    execFileSync("ip", ["-n", ns, "link", "set", "ens5", "address", MAC]);
    execFileSync("ip", ["-n", ns, "link", "set", "ens5", "up"]);
    execFileSync("ip", ["-n", ns, "addr", "add", "10.20.5.10/24", "dev", "ens5"]);
  });

  after(() => {
    spawnSync("ip", ["netns", "delete", ns]);
    if (stub) {
      fs.rmSync(stub, { recursive: true, force: true });
    }
  });

  it("adds the secondary address to the interface whose name `ip -o link` shows as ens5@ifN", () => {
    const shown = execFileSync("ip", ["-n", ns, "-o", "link"], { encoding: "utf8" });
    expect(shown).to.match(/ens5@/); // the case under test really occurs
    const r = spawnSync(
      "ip",
      ["netns", "exec", ns, "env", `PATH=${stub}:${process.env.PATH}`, "sh", SCRIPT],
      {
        encoding: "utf8",
      },
    );
    expect(r.stderr).to.equal("");
    expect(r.status).to.equal(0);
    const addrs = execFileSync("ip", ["-n", ns, "-o", "-4", "addr", "show", "dev", "ens5"], {
      encoding: "utf8",
    });
    expect(addrs).to.include("10.20.5.138/24");
    expect(addrs).to.include("10.20.5.10/24");
  });
});
