// An EIP moving in the rehearsal (issue 12, lib/rehearse/stack/eip.ts): on the real rehearsal
// network of the prod synth (router and server namespaces, security groups and NAT in nftables,
// built by network.ts), the PBX service EIP moves from pbx-primary to pbx-standby; a client at
// the admin address reaches the primary's listener through the EIP before, the standby's after,
// a connection made before the move does not survive it (as on AWS), and nothing else in the
// table changed. Needs root (namespaces) and conntrack.
import { expect } from "chai";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import { PACKAGE_ROOT } from "../../../lib/package-root";
import { synthesize } from "../../../lib/synth/offline-synth";
import { StackModel, buildModel } from "../../../lib/rehearse/stack/model";
import { RehearsalNet, createNetwork } from "../../../lib/rehearse/stack/network";
import { Teardown } from "../../../lib/rehearse/stack/teardown";
import { TABLE } from "../../../lib/rehearse/stack/nft";
import { moveEip, natRulesOf, renderEipMove } from "../../../lib/rehearse/stack/eip";
import { snapshotDiff, switchSnapshot } from "../../../lib/rehearse/stack/apply-run";
import { StandInConfig } from "../../../lib/rehearse/stack/standins";

const ADMIN = ["203.0.113.10/32", "198.51.100.64/29"];

const LISTING = `table inet ${TABLE} {
  chain nat_prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 198.51.100.7 dnat ip to 10.20.1.10 # handle 11
    ip daddr 198.51.100.125 dnat ip to 10.20.1.138 # handle 12
  }
  chain nat_output {
    ip daddr 198.51.100.125 dnat ip to 10.20.1.138 # handle 14
  }
  chain nat_postrouting {
    ip saddr 10.20.1.138 ct original ip daddr != 10.20.0.0/16 snat ip to 198.51.100.125 # handle 17
    ip saddr 10.20.1.10 ct original ip daddr != 10.20.0.0/16 snat ip to 198.51.100.7 # handle 18
  }
}`;

describe("rehearse apply: an EIP move as nft rule replacements", () => {
  it("replaces exactly the address's three NAT rules, by handle", () => {
    const rules = natRulesOf(LISTING, "198.51.100.125");
    expect(rules.map((r) => r.handle)).to.deep.equal([12, 14, 17]);
    expect(
      renderEipMove(rules, "198.51.100.125", "10.20.1.138", "10.20.2.140", "10.20.0.0/16"),
    ).to.equal(
      [
        `replace rule inet ${TABLE} nat_prerouting handle 12 ip daddr 198.51.100.125 dnat ip to 10.20.2.140`,
        `replace rule inet ${TABLE} nat_output handle 14 ip daddr 198.51.100.125 dnat ip to 10.20.2.140`,
        `replace rule inet ${TABLE} nat_postrouting handle 17 ip saddr 10.20.2.140 ct original ip daddr != 10.20.0.0/16 snat ip to 198.51.100.125`,
        "",
      ].join("\n"),
    );
  });

  it("refuses to move an EIP that is not where the plan says", () => {
    const rules = natRulesOf(LISTING, "198.51.100.125");
    expect(() =>
      renderEipMove(rules, "198.51.100.125", "10.20.9.9", "10.20.2.140", "10.20.0.0/16"),
    ).to.throw(
      /EIP 198\.51\.100\.125: expected one rule `ip daddr 198\.51\.100\.125 dnat ip to 10\.20\.9\.9`/,
    );
    expect(() =>
      renderEipMove([], "198.51.100.99", "10.20.1.138", "10.20.2.140", "10.20.0.0/16"),
    ).to.throw(/found none/);
  });
});

const root = process.getuid?.() === 0;
const haveTools = ["socat", "conntrack", "nft"].every(
  (b) => spawnSync("sh", ["-c", `command -v ${b} || test -x /usr/sbin/${b}`]).status === 0,
);

(root && haveTools ? describe : describe.skip)(
  "rehearse apply: the PBX service EIP moves on the rehearsal network",
  function () {
    this.timeout(300_000);
    let model: StackModel;
    let net: RehearsalNet;
    let td: Teardown;
    let dir: string;
    const listeners: ChildProcess[] = [];
    const nsOf = (name: string): string =>
      net.serverNs[model.servers.findIndex((s) => s.name === name)];

    before(async () => {
      const deployment = await synthesize({ projectDir: PACKAGE_ROOT, stack: "prod" });
      model = buildModel(deployment, ADMIN, "ap-southeast-3");
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-eip-"));
      td = new Teardown(path.join(dir, "made.json"));
      net = createNetwork(model, crypto.randomBytes(3).toString("hex"), dir, td);
      // Each PBX answers SSH's port (open to the admin CIDRs) with its name, on its service
      // address: the ENI's secondary IP.
      for (const name of ["pbx-primary", "pbx-standby"]) {
        const s = model.servers.find((x) => x.name === name)!;
        const ns = nsOf(name);
        // What the instance's OS configures (the network leaves ens5 down and unaddressed).
        for (const args of [
          ["link", "set", "ens5", "up"],
          ["addr", "add", `${s.privateIp}/16`, "dev", "ens5"],
          ["addr", "add", `${s.secondaryIps[0]}/16`, "dev", "ens5"],
          ["route", "add", "default", "via", net.addresses.gateway],
        ]) {
          execFileSync("ip", ["-n", ns, ...args]);
        }
        const child = spawn(
          "ip",
          [
            "netns",
            "exec",
            ns,
            "socat",
            `TCP-LISTEN:22,bind=${s.secondaryIps[0]},fork,reuseaddr`,
            `SYSTEM:echo ${name}; sleep 30`,
          ],
          { stdio: "ignore" },
        );
        listeners.push(child);
      }
    });

    after(() => {
      for (const l of listeners) {
        l.kill("SIGKILL");
      }
      td?.runSync();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    function askEip(publicIp: string): string {
      // Bounded retries: the listeners may take a moment to bind on a loaded machine.
      for (let i = 0; i < 30; i++) {
        const r = spawnSync(
          "ip",
          [
            "netns",
            "exec",
            net.router,
            "socat",
            "-T",
            "3",
            "-",
            `TCP:${publicIp}:22,bind=${net.addresses.admin},connect-timeout=3`,
          ],
          { encoding: "utf8", input: "", timeout: 10_000 },
        );
        const line = (r.stdout ?? "").trim().split("\n")[0];
        if (line) {
          return line;
        }
        spawnSync("sleep", ["1"]);
      }
      return "";
    }

    it("reaches the primary before the move and the standby after; the table changes only there", async () => {
      const eip = model.nat.find(
        (n) =>
          n.server === "pbx-primary" &&
          n.privateIp !== model.servers.find((s) => s.name === "pbx-primary")!.privateIp,
      )!;
      expect(eip, "the PBX service EIP on the primary's secondary address").to.not.equal(undefined);
      const standby = model.servers.find((s) => s.name === "pbx-standby")!;
      expect(askEip(eip.publicIp)).to.equal("pbx-primary");

      // A connection open across the move (socat keeps it 30 s on the server side).
      const open = spawn(
        "ip",
        [
          "netns",
          "exec",
          net.router,
          "socat",
          "-T",
          "20",
          "-",
          `TCP:${eip.publicIp}:22,bind=${net.addresses.admin}`,
        ],
        { stdio: ["pipe", "pipe", "pipe"] },
      );
      let openOut = "";
      open.stdout!.on("data", (d: Buffer) => (openOut += d.toString()));
      const openDone = new Promise<number | null>((r) => open.on("close", (c) => r(c)));
      for (let i = 0; i < 100 && !openOut.includes("pbx-primary"); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(openOut.trim()).to.equal("pbx-primary");

      const listing = (): string =>
        execFileSync(
          "ip",
          ["netns", "exec", net.router, "nft", "-s", "list", "table", "inet", TABLE],
          {
            encoding: "utf8",
          },
        );
      const before = listing();
      const from = { ...eip };
      moveEip(net.router, model, eip.publicIp, from, {
        publicIp: eip.publicIp,
        privateIp: standby.secondaryIps[0],
        server: "pbx-standby",
      });
      expect(askEip(eip.publicIp)).to.equal("pbx-standby");
      expect(model.nat.find((n) => n.publicIp === eip.publicIp)).to.include({
        server: "pbx-standby",
        privateIp: standby.secondaryIps[0],
      });
      // Only the three NAT lines differ.
      const a = before.split("\n");
      const b = listing().split("\n");
      expect(b.length).to.equal(a.length);
      const changed = a.filter((l, i) => l !== b[i]);
      expect(changed).to.have.length(3);
      expect(changed.every((l) => l.includes(from.privateIp))).to.equal(true);
      // The drills' before/after comparison reads the real table the same way: only this EIP.
      const noConfig = {
        config: { dns: { zones: [] }, parameters: {} } as unknown as StandInConfig,
      };
      expect(
        snapshotDiff(
          switchSnapshot({ ...noConfig, natListing: before }),
          switchSnapshot({ ...noConfig, natListing: listing() }),
        ),
      ).to.deep.equal([`EIP ${eip.publicIp}: ${standby.secondaryIps[0]}, was ${from.privateIp}`]);
      expect(switchSnapshot({ ...noConfig, natListing: before }).size).to.equal(model.nat.length);

      // The old connection's next packets reach the standby, which resets them.
      open.stdin!.write("still there?\n");
      const started = Date.now();
      await openDone;
      // Reset by the standby, not left to socat's 20 s inactivity timeout.
      expect(Date.now() - started).to.be.lessThan(15_000);
      expect(openOut.trim().split("\n")).to.deep.equal(["pbx-primary"]);
    });
  },
);
