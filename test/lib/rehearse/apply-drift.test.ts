// Is the rehearsal at a given synth? (issue 12, apply-run.ts driftFrom): the drills start only
// at BEFORE and must leave the stack there. The rehearsal's switch state — record sets in the
// stand-ins' zones, parameter values, where each EIP points — compared with a synth: nothing at
// BEFORE, and each flip's own changes named when it is elsewhere; a plan applied step by step
// brings it to AFTER exactly.
import { expect } from "chai";
import { Deployment } from "../../../lib/synth/offline-synth";
import { StackModel, buildModel } from "../../../lib/rehearse/stack/model";
import { planApply } from "../../../lib/rehearse/stack/apply";
import {
  changeConfig,
  driftFrom,
  snapshotDiff,
  switchSnapshot,
} from "../../../lib/rehearse/stack/apply-run";
import { StandInConfig } from "../../../lib/rehearse/stack/standins";
import { TABLE } from "../../../lib/rehearse/stack/nft";
import { synthProd } from "../../support/stack-files";

const REGION = "ap-southeast-3";

/** The stand-ins' config a boot of `d` writes (zones, every parameter the synth shows). */
function liveConfig(m: StackModel): StandInConfig {
  const parameters: Record<string, { type: string; value: string }> = {};
  for (const p of m.parameters) {
    parameters[p.name] = { type: p.type, value: p.value ?? "generated-secret" };
  }
  return { dns: { zones: structuredClone(m.zones) }, parameters } as unknown as StandInConfig;
}

/** `nft -a list table` of the router's NAT as nft.ts writes it, each EIP pointing at `to`. */
function natListing(m: StackModel, to: (publicIp: string, privateIp: string) => string): string {
  let h = 10;
  const pre = m.nat.map(
    (n) => `    ip daddr ${n.publicIp} dnat ip to ${to(n.publicIp, n.privateIp)} # handle ${h++}`,
  );
  const out = m.nat.map(
    (n) => `    ip daddr ${n.publicIp} dnat ip to ${to(n.publicIp, n.privateIp)} # handle ${h++}`,
  );
  const post = m.nat.map(
    (n) =>
      `    ip saddr ${to(n.publicIp, n.privateIp)} ct original ip daddr != ${m.vpcCidr} snat ip to ${n.publicIp} # handle ${h++}`,
  );
  return [
    `table inet ${TABLE} {`,
    "  chain nat_prerouting {",
    "    type nat hook prerouting priority dstnat; policy accept;",
    ...pre,
    "  }",
    "  chain nat_output {",
    ...out,
    "  }",
    "  chain nat_postrouting {",
    ...post,
    "  }",
    "}",
  ].join("\n");
}

describe("rehearse apply: is the rehearsal at a synth (driftFrom)", function () {
  this.timeout(300_000);
  let base: Deployment;
  let mysqlStandby: Deployment;
  let pbxStandby: Deployment;
  let m: StackModel;
  before(async () => {
    base = await synthProd();
    mysqlStandby = await synthProd((c) => {
      c["hastack:mysql"].active = "standby";
    });
    pbxStandby = await synthProd((c) => {
      c["hastack:pbx"].active = "standby";
    });
    m = buildModel(base, [], REGION);
  });

  it("finds nothing when the rehearsal is at the synth it booted from", () => {
    const live = { config: liveConfig(m), natListing: natListing(m, (_p, ip) => ip) };
    expect(driftFrom(base, live, REGION)).to.deep.equal([]);
  });

  it("names the mysql flip's records and active-side parameter when it is at `active: standby`", () => {
    const cfg = liveConfig(m);
    for (const s of planApply(base, mysqlStandby, { region: REGION }).steps) {
      if (s.kind === "record" || s.kind === "parameter") {
        changeConfig(cfg, s);
      }
    }
    const live = { config: cfg, natListing: natListing(m, (_p, ip) => ip) };
    // At AFTER now, and BEFORE is the drift.
    expect(driftFrom(mysqlStandby, live, REGION)).to.deep.equal([]);
    const drift = driftFrom(base, live, REGION);
    expect(
      drift.some((d) => /^record db\.internal\.[^|]+\|A\|mysql-primary in internal\./.test(d)),
    ).to.equal(true, drift.join("\n"));
    expect(drift).to.include(`parameter /hastack/mysql/active-side: "standby", expected "primary"`);
    expect(drift.every((d) => /mysql|db\./.test(d))).to.equal(true, drift.join("\n"));
  });

  it("names an EIP that points elsewhere, and a record set nobody declared", () => {
    const pm = buildModel(pbxStandby, [], REGION);
    const moved = pm.nat.filter((n) => !m.nat.some((b) => b.privateIp === n.privateIp));
    expect(moved).to.have.length(1);
    const live = {
      config: liveConfig(m),
      natListing: natListing(m, (pub, ip) => (pub === moved[0].publicIp ? moved[0].privateIp : ip)),
    };
    const was = m.nat.find((n) => n.publicIp === moved[0].publicIp)!;
    expect(driftFrom(base, live, REGION)).to.deep.equal([
      `EIP ${was.publicIp}: points to ${moved[0].privateIp}, expected ${was.privateIp} (${was.server})`,
    ]);
    live.config.dns.zones[0].records.push({
      name: `stray.${live.config.dns.zones[0].name}`,
      type: "A",
      ttl: 60,
      values: ["192.0.2.1"],
    });
    expect(driftFrom(base, live, REGION)).to.include(
      `record stray.${live.config.dns.zones[0].name}|A| in ${live.config.dns.zones[0].name}: not declared`,
    );
  });

  it("leaves out the known_hosts parameters the rehearsal pins at boot", () => {
    const cfg = liveConfig(m);
    const kh = Object.keys(cfg.parameters).filter((n) => /ssh-known-hosts/.test(n));
    expect(kh.length).to.be.greaterThan(0);
    for (const n of kh) {
      cfg.parameters[n].value = "pinned by the rehearsal";
    }
    expect(
      driftFrom(base, { config: cfg, natListing: natListing(m, (_p, ip) => ip) }, REGION),
    ).to.deep.equal([]);
  });

  it("with a plan, looks only at what the plan flips (a boot's own values elsewhere stay out)", () => {
    const cfg = liveConfig(m);
    // What a boot serving its generated DKIM key does to one TXT record set.
    const zone = cfg.dns.zones.find((z) => z.records.some((r) => r.type === "TXT"))!;
    const txt = zone.records.find((r) => r.type === "TXT")!;
    txt.values = ['"v=DKIM1; k=rsa; p=generated-at-boot"'];
    const live = { config: cfg, natListing: natListing(m, (_p, ip) => ip) };
    const plan = planApply(base, mysqlStandby, { region: REGION });
    expect(driftFrom(base, live, REGION).some((d) => d.includes("|TXT|"))).to.equal(true);
    expect(driftFrom(base, live, REGION, plan)).to.deep.equal([]);
    // The flip's own parameter is still looked at.
    cfg.parameters["/hastack/mysql/active-side"].value = "standby";
    expect(driftFrom(base, live, REGION, plan)).to.deep.equal([
      `parameter /hastack/mysql/active-side: "standby", expected "primary"`,
    ]);
  });
});

describe("rehearse apply: the whole switch state, before and after a drill (switchSnapshot)", function () {
  this.timeout(300_000);
  let m: StackModel;
  before(async () => {
    m = buildModel(await synthProd(), [], REGION);
  });

  it("is equal for the same state and names each record, parameter and EIP that changed", () => {
    const live = () => ({ config: liveConfig(m), natListing: natListing(m, (_p, ip) => ip) });
    const a = switchSnapshot(live());
    expect(snapshotDiff(a, switchSnapshot(live()))).to.deep.equal([]);
    const changed = live();
    changed.config.parameters["/hastack/mysql/active-side"].value = "standby";
    const rec = changed.config.dns.zones[0].records[0];
    rec.values = ["192.0.2.99"];
    const eip = m.nat[0];
    changed.natListing = natListing(m, (pub, ip) => (pub === eip.publicIp ? "10.20.0.99" : ip));
    const diff = snapshotDiff(a, switchSnapshot(changed));
    expect(diff).to.have.length(3);
    expect(diff.some((d) => d.startsWith("parameter /hastack/mysql/active-side: "))).to.equal(true);
    expect(diff.some((d) => d.startsWith(`record ${rec.name}|`))).to.equal(true);
    expect(diff).to.include(`EIP ${eip.publicIp}: 10.20.0.99, was ${eip.privateIp}`);
    // Secrets never appear in the snapshot, only a digest.
    expect(JSON.stringify([...a])).not.to.contain("generated-secret");
  });
});
