// The IMDS stand-in's public addresses (issue 12; lib/rehearse/stack/standins.ts): as AWS,
// `public-ipv4` is the primary private address's public address only, while the interface's
// `public-ipv4s` lists every EIP associated to any of its private addresses — the PBX service
// EIP on the active PBX's secondary address included (server/common/hastack-is-active.sh reads
// it) — and follows an EIP move of `--apply`. Pure on the prod synth's model, then for real:
// the stand-ins process and bind9 in a network namespace this test creates, asked with IMDSv2
// (token, then GETs) from the servers' own addresses, before and after the move's reload.
import { expect } from "chai";
import * as crypto from "crypto";
import * as fs from "fs";
import { spawnSync } from "child_process";
import { Deployment } from "../../../lib/synth/offline-synth";
import { StackModel, buildModel } from "../../../lib/rehearse/stack/model";
import { EipStep, planApply } from "../../../lib/rehearse/stack/apply";
import {
  changeConfig,
  changeStandIns,
  snapshotDiff,
  switchSnapshot,
} from "../../../lib/rehearse/stack/apply-run";
import {
  StandInConfig,
  StandInServer,
  metadata,
  publicAddressesOf,
} from "../../../lib/rehearse/stack/standins";
import { synthProd } from "../../support/stack-files";
import { StandInWorld, startStandInWorld } from "../../support/standins-world";

const REGION = "ap-southeast-3";

/** The stand-in's view of a model's server (what index.ts writes for each). */
function standInServer(m: StackModel, name: string): StandInServer {
  const s = m.servers.find((x) => x.name === name)!;
  return {
    name: s.name,
    instanceId: s.instanceId,
    privateIp: s.privateIp,
    secondaryIps: s.secondaryIps,
    publicIp: s.publicIp,
    mac: s.mac,
    region: REGION,
    az: `${REGION}a`,
    hostname: `ip-${s.privateIp.replace(/\./g, "-")}.${REGION}.compute.internal`,
    vpcCidr: m.vpcCidr,
    policy: [],
    securityGroups: [],
    sshPublicKey: "ssh-ed25519 AAAA test",
    userData: "",
  };
}

const eipsOf = (m: StackModel): StandInConfig["eips"] =>
  m.nat.map(({ publicIp, privateIp }) => ({ publicIp, privateIp }));

describe("rehearse IMDS: public addresses as AWS lists them", function () {
  this.timeout(300_000);
  let base: Deployment;
  let flipped: Deployment;
  let model: StackModel;
  let move: EipStep;
  before(async () => {
    base = await synthProd();
    flipped = await synthProd((c) => {
      c["hastack:pbx"].active = "standby";
    });
    model = buildModel(base, [], REGION);
    const steps = planApply(base, flipped, { region: REGION }).steps.filter(
      (s): s is EipStep => s.kind === "eip",
    );
    expect(steps, "the pbx flip moves exactly one EIP").to.have.length(1);
    move = steps[0];
  });

  it("the active PBX lists its own EIP and the service EIP on its secondary address", () => {
    const cfg = { eips: eipsOf(model) };
    const primary = standInServer(model, "pbx-primary");
    const standby = standInServer(model, "pbx-standby");
    // The service EIP sits on the primary's secondary address, not its primary one.
    expect(primary.secondaryIps).to.include(move.from.privateIp);
    const p = publicAddressesOf(cfg, primary);
    expect(p.publicIpv4, "public-ipv4: the primary private address's only").to.equal(
      primary.publicIp,
    );
    expect(p.publicIpv4s).to.deep.equal([primary.publicIp, move.publicIp]);
    expect(p.associations[move.publicIp]).to.equal(move.from.privateIp);
    expect(publicAddressesOf(cfg, standby).publicIpv4s).to.deep.equal([standby.publicIp]);

    const md = metadata({ eips: cfg.eips } as StandInConfig, primary);
    const mac = `network/interfaces/macs/${primary.mac}`;
    expect(md[`${mac}/public-ipv4s`]).to.equal(`${primary.publicIp}\n${move.publicIp}`);
    expect(md["public-ipv4"]).to.equal(primary.publicIp);
    expect(md[`${mac}/ipv4-associations/${move.publicIp}`]).to.equal(move.from.privateIp);
  });

  it("after the move the standby lists the service EIP and the primary no longer does", () => {
    const cfg = { eips: eipsOf(model) } as StandInConfig;
    changeConfig(cfg, move);
    const primary = standInServer(model, "pbx-primary");
    const standby = standInServer(model, "pbx-standby");
    expect(publicAddressesOf(cfg, primary).publicIpv4s).to.deep.equal([primary.publicIp]);
    const s = publicAddressesOf(cfg, standby);
    expect(s.publicIpv4s).to.deep.equal([standby.publicIp, move.publicIp]);
    expect(s.publicIpv4, "a secondary address's EIP is never public-ipv4").to.equal(
      standby.publicIp,
    );
    expect(
      metadata(cfg, primary)[
        `network/interfaces/macs/${primary.mac}/ipv4-associations/${move.publicIp}`
      ],
    ).to.equal(undefined);
    // Every EIP of the model still sits on exactly one address; only the moved one changed.
    expect(cfg.eips!.filter((e) => e.publicIp !== move.publicIp)).to.deep.equal(
      eipsOf(model)!.filter((e) => e.publicIp !== move.publicIp),
    );
  });

  it("a drill's before/after snapshot names where IMDS has each EIP, so a move left behind shows", () => {
    const cfg = {
      eips: eipsOf(model),
      dns: { zones: [] },
      parameters: {},
    } as unknown as StandInConfig;
    const before = switchSnapshot({ config: cfg, natListing: "" });
    changeConfig(cfg, move);
    expect(snapshotDiff(before, switchSnapshot({ config: cfg, natListing: "" }))).to.deep.equal([
      `IMDS EIP ${move.publicIp}: ${move.to.privateIp}, was ${move.from.privateIp}`,
    ]);
  });

  it("refuses a move when IMDS has the EIP somewhere else (the rehearsal is not at BEFORE)", () => {
    const cfg = { eips: eipsOf(model) } as StandInConfig;
    cfg.eips!.find((e) => e.publicIp === move.publicIp)!.privateIp = "10.20.9.9";
    expect(() => changeConfig(cfg, move)).to.throw(
      /IMDS has EIP .* on 10\.20\.9\.9, not on .*the rehearsal is not at BEFORE/,
    );
  });

  it("a config written before `eips` existed serves each server's own address, as before", () => {
    const primary = standInServer(model, "pbx-primary");
    expect(publicAddressesOf({}, primary).publicIpv4s).to.deep.equal([primary.publicIp]);
  });
});

const root = process.getuid?.() === 0;
const haveTools = ["named", "rndc", "dig", "openssl", "curl"].every(
  (b) => spawnSync("sh", ["-c", `command -v ${b} || test -x /usr/sbin/${b}`]).status === 0,
);

(root && haveTools ? describe : describe.skip)(
  "rehearse IMDS: the real stand-in follows an EIP move (IMDSv2 over HTTP)",
  function () {
    this.timeout(300_000);
    const ns = `hsi-${crypto.randomBytes(3).toString("hex")}`;
    const domain = "kantor-contoh.co.id";
    let world: StandInWorld;
    let model: StackModel;
    let move: EipStep;
    let primary: StandInServer;
    let standby: StandInServer;

    const inNs = (argv: string[]): { status: number | null; stdout: string } => {
      const r = spawnSync("ip", ["netns", "exec", ns, ...argv], {
        encoding: "utf8",
        timeout: 30_000,
      });
      return { status: r.status, stdout: r.stdout };
    };

    /** GET meta-data/`key` with IMDSv2 as the instance at `from` (its own source address). */
    function imds(from: string, key: string): { status: number | null; body: string } {
      const curl = ["curl", "-s", "--max-time", "10", "--interface", from];
      const token = inNs([
        ...curl,
        "-f",
        "-X",
        "PUT",
        "-H",
        "X-aws-ec2-metadata-token-ttl-seconds: 60",
        "http://169.254.169.254/latest/api/token",
      ]);
      expect(token.status, `IMDSv2 token for ${from}`).to.equal(0);
      const r = inNs([
        ...curl,
        "-w",
        "\n%{http_code}",
        "-H",
        `X-aws-ec2-metadata-token: ${token.stdout}`,
        `http://169.254.169.254/latest/meta-data/${key}`,
      ]);
      const lines = r.stdout.split("\n");
      return { status: Number(lines.pop()), body: lines.join("\n") };
    }

    const publicIpv4s = (s: StandInServer): string[] => {
      const r = imds(s.privateIp, `network/interfaces/macs/${s.mac}/public-ipv4s`);
      return r.status === 200 ? r.body.split("\n") : [];
    };

    before(async () => {
      const base = await synthProd();
      const flipped = await synthProd((c) => {
        c["hastack:pbx"].active = "standby";
      });
      model = buildModel(base, [], REGION);
      move = planApply(base, flipped, { region: REGION }).steps.find(
        (s): s is EipStep => s.kind === "eip",
      )!;
      primary = standInServer(model, "pbx-primary");
      standby = standInServer(model, "pbx-standby");
      world = await startStandInWorld({
        ns,
        region: REGION,
        model,
        domain,
        ready: "imds on",
        servers: [primary, standby],
        eips: eipsOf(model),
      });
    });

    after(() => {
      world?.stop();
    });

    it("lists the service EIP on the primary before the move and on the standby after", async () => {
      expect(publicIpv4s(primary)).to.deep.equal([primary.publicIp, move.publicIp]);
      expect(publicIpv4s(standby)).to.deep.equal([standby.publicIp]);
      // Without a token: 401, as with httpTokens=required.
      const plain = inNs([
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--interface",
        primary.privateIp,
        "http://169.254.169.254/latest/meta-data/public-ipv4",
      ]);
      expect(plain.stdout).to.equal("401");

      await changeStandIns(
        { router: ns, standInsConfig: world.cfgFile, standInsPid: world.standInsPid },
        move,
      );

      expect(publicIpv4s(primary)).to.deep.equal([primary.publicIp]);
      expect(publicIpv4s(standby)).to.deep.equal([standby.publicIp, move.publicIp]);
      expect(imds(standby.privateIp, "public-ipv4").body).to.equal(standby.publicIp);
      const assoc = `network/interfaces/macs/${standby.mac}/ipv4-associations/${move.publicIp}`;
      expect(imds(standby.privateIp, assoc).body).to.equal(move.to.privateIp);
      expect(
        imds(primary.privateIp, `network/interfaces/macs/${primary.mac}/ipv4-associations/`).body,
      ).to.equal(primary.publicIp);
      // The file the next boot or reload reads says the same.
      const written = JSON.parse(fs.readFileSync(world.cfgFile, "utf8")) as StandInConfig;
      expect(written.eips!.find((e) => e.publicIp === move.publicIp)!.privateIp).to.equal(
        move.to.privateIp,
      );
    });
  },
);
