// The pbx drill's pure parts (issue 12 item 3): the data it writes reaches every point of each
// flavour's replicated set, FreePBX's own settings are read from the file hastack renders, the
// activation's calls are held to the designed order, and the RTO comes from the answers.
import { expect } from "chai";
import {
  PBX_FLAVOURS,
  comparisonPoints,
  replicatedSet,
} from "../../../components/pbx-replicated-set";
import { renderFreepbxConf } from "../../../components/pbx";
import { DRILLS } from "../../../lib/rehearse/stack/drills";
import { pbxSettingsOf } from "../../../lib/rehearse/stack/drills/pbx";
import {
  activationProblems,
  excludedSeed,
  parseFreepbxConf,
  sqliteFile,
  sqliteSeed,
  switchFigures,
  treeSeed,
} from "../../../lib/rehearse/stack/drills/pbx-parts";

describe("pbx drill: what it writes and compares", () => {
  it("is in the registry", () => {
    expect(DRILLS.pbx).to.be.a("function");
  });

  it("reads the prod stack's flavour, database placement and SSH user (defaults applied)", () => {
    expect(pbxSettingsOf("prod")).to.deep.equal({
      flavour: "freepbx",
      configDatabase: "mysql-pair",
      sshUser: "admin",
    });
  });

  for (const flavour of PBX_FLAVOURS) {
    it(`${flavour}: every point of the set gets drill data, distinct per round`, () => {
      const points = comparisonPoints(replicatedSet(flavour));
      expect(points.map((p) => p.key)).to.deep.equal(replicatedSet(flavour).map((i) => i.key));
      for (const p of points) {
        if (p.kind === "tree") {
          const one = treeSeed(p, "run1", 1).map((f) => f.rel);
          const two = treeSeed(p, "run1", 2).map((f) => f.rel);
          expect(one).to.have.length.greaterThan(0);
          expect(one.filter((f) => two.includes(f))).to.deep.equal([]);
          // Never inside an excluded path: the sync must carry it.
          for (const f of one) {
            expect(p.excludes.some((e) => `/${f}`.startsWith(e))).to.equal(false);
          }
        } else if (p.kind === "sqlite") {
          expect(sqliteFile(p)).to.not.contain("*");
        }
      }
    });
  }

  it("puts one file where the spool's exclude must keep it off the other server", () => {
    const spool = comparisonPoints(replicatedSet("freepbx")).find((p) => p.key === "spool");
    expect(spool?.kind).to.equal("tree");
    if (spool?.kind === "tree") {
      expect(excludedSeed(spool, "ab12")).to.equal("tmp/hastack-drill-ab12-must-not-sync.txt");
    }
    const config = comparisonPoints(replicatedSet("freepbx")).find((p) => p.key === "config");
    if (config?.kind === "tree") {
      expect(excludedSeed(config, "ab12")).to.equal(undefined);
    }
  });

  it("Elastix's SQLite glob becomes one file of the drill's", () => {
    const db = comparisonPoints(replicatedSet("elastix")).find((p) => p.key === "elastix-db");
    expect(db?.kind === "sqlite" && sqliteFile(db)).to.equal("/var/www/db/hastack-drill.db");
    expect(sqliteSeed("r", 1).map(([k]) => k)).to.not.include.members(
      sqliteSeed("r", 2).map(([k]) => k),
    );
  });
});

describe("pbx drill: FreePBX's settings from /etc/freepbx.conf", () => {
  it("reads what hastack renders (host, port, user, database, password file)", () => {
    const conf = renderFreepbxConf({
      host: "db.internal.example.test",
      port: 3306,
      cdrDatabase: "asteriskcdrdb",
    });
    expect(parseFreepbxConf(conf)).to.deep.equal({
      user: "freepbxuser",
      host: "db.internal.example.test",
      port: 3306,
      database: "asterisk",
      passwordFile: "/etc/hastack/pbx/freepbx-db-password",
    });
  });
  it("names every key a file lacks", () => {
    expect(() => parseFreepbxConf("<?php\n$amp_conf['AMPDBUSER'] = 'u';\n")).to.throw(
      /no AMPDBHOST, AMPDBPORT, AMPDBNAME, AMPDBPASS \(file\)/,
    );
  });
});

describe("pbx drill: the activation's calls", () => {
  const freepbx = {
    stop: "fwconsole stop",
    start: "fwconsole start",
    reload: "fwconsole reload",
    installed: true,
  };
  it("stop, start, reload in that order is as designed", () => {
    expect(
      activationProblems(["fwconsole stop", "fwconsole start", "fwconsole reload"], freepbx),
    ).to.deep.equal([]);
  });
  it("a reload before the install, or no stop, is a problem", () => {
    expect(
      activationProblems(["fwconsole reload", "fwconsole stop", "fwconsole start"], freepbx),
    ).to.have.length(1);
    expect(activationProblems(["fwconsole start", "fwconsole reload"], freepbx)[0]).to.match(
      /expected "fwconsole stop", "fwconsole start", "fwconsole reload"/,
    );
    expect(activationProblems([], freepbx)[0]).to.match(/asked for nothing/);
  });
  it("nothing to install: only the reload", () => {
    expect(
      activationProblems(["fwconsole reload"], { ...freepbx, installed: false }),
    ).to.deep.equal([]);
  });
});

describe("pbx drill: RTO from the answers at the service address", () => {
  it("counts from the apply to the first answer of the new server", () => {
    const f = switchFigures(
      [
        { at: 0, server: "pbx1" },
        { at: 1000, server: "pbx1" },
        { at: 2000 },
        { at: 5000 },
        { at: 7500, server: "pbx2" },
        { at: 8500, server: "pbx2" },
      ],
      500,
      "pbx2",
    );
    expect(f).to.deep.equal({ rtoSeconds: 7, longestSilenceSeconds: 6.5 });
  });
  it("an answer by the new server before the apply does not count; never is null", () => {
    expect(
      switchFigures(
        [
          { at: 0, server: "pbx2" },
          { at: 2000, server: "pbx1" },
        ],
        1000,
        "pbx2",
      ).rtoSeconds,
    ).to.equal(null);
  });
});
