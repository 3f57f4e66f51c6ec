// The mail drill's pure parts (issue 12, issue 17): the sending Postfix's log read into
// deliveries and Message-IDs, the stream counted against both servers' mailboxes, the world
// MTA's address and zone, and the rehearsal's DKIM record carrying the generated key. The drill
// itself runs on a booted stack (`rehearse stack --drills mail`).
import { expect } from "chai";
import * as crypto from "crypto";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  countStream,
  deliveriesTo,
  messageIdsOf,
  parsePostfixLog,
  secondsAfter,
} from "../../../lib/rehearse/stack/drills/mail-count";
import {
  WORLD_DOMAIN,
  renderWorldMainCf,
  renderWorldZone,
  WORLD_MASTER_CF,
  worldMtaAddress,
} from "../../../lib/rehearse/stack/drills/mail-world";
import { publishGeneratedDkimKeys } from "../../../lib/rehearse/stack/secrets";
import { StackModel } from "../../../lib/rehearse/stack/model";

// Lines as Postfix 3.7 writes them to maillog_file (captured from the drill's world MTA).
const LOG = [
  "Nov 30 18:40:01 mx postfix/pickup[101]: 4A1B2C: uid=0 from=<correspondent@drill-world.example>",
  "Nov 30 18:40:01 mx postfix/cleanup[102]: 4A1B2C: message-id=<hastack-drill-x-1@drill-world.example>",
  "Nov 30 18:40:01 mx postfix/qmgr[103]: 4A1B2C: from=<correspondent@drill-world.example>, size=420, nrcpt=1 (queue active)",
  "Nov 30 18:40:02 mx postfix/smtp[104]: 4A1B2C: to=<rehearsal@kantor-contoh.co.id>, relay=mx1.kantor-contoh.co.id[198.51.100.145]:25, delay=0.4, delays=0.1/0/0.2/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 77AA)",
  "Nov 30 18:40:03 mx postfix/cleanup[102]: 5D6E7F: message-id=<hastack-drill-x-2@drill-world.example>",
  "Nov 30 18:40:03 mx postfix/smtp[105]: connect to mx1.kantor-contoh.co.id[198.51.100.145]:25: Connection refused",
  "Nov 30 18:40:03 mx postfix/smtp[105]: 5D6E7F: to=<rehearsal@kantor-contoh.co.id>, relay=mx2.kantor-contoh.co.id[198.51.100.150]:25, delay=0.3, delays=0/0/0.2/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 88BB)",
  "Nov 30 18:40:04 mx postfix/cleanup[102]: 9F0A1B: message-id=<other@elsewhere>",
  "Nov 30 18:40:05 mx postfix/smtp[106]: 9F0A1B: to=<rehearsal@kantor-contoh.co.id>, relay=none, delay=30, delays=0/0/30/0, dsn=4.4.1, status=deferred (connect to mx1.kantor-contoh.co.id[198.51.100.145]:25: Connection timed out)",
  "",
].join("\n");

describe("mail drill: the sending MTA's log", () => {
  it("reads every delivery with its relay address, status and Message-ID", () => {
    const { deliveries, messageIds } = parsePostfixLog(LOG);
    expect(deliveries.map((d) => [d.queueId, d.relay, d.relayIp, d.status])).to.deep.equal([
      ["4A1B2C", "mx1.kantor-contoh.co.id", "198.51.100.145", "sent"],
      ["5D6E7F", "mx2.kantor-contoh.co.id", "198.51.100.150", "sent"],
      ["9F0A1B", "none", undefined, "deferred"],
    ]);
    expect(deliveries[2].detail).to.match(/Connection timed out/);
    expect(messageIds.get("5D6E7F")).to.equal("hastack-drill-x-2@drill-world.example");
    // "connect to ... refused" is no delivery of its own: the same attempt went on to mx2.
    expect(deliveries).to.have.length(3);
  });

  it("names the drill's messages delivered to a fenced server's address, and only those", () => {
    const log = parsePostfixLog(LOG);
    const drill = (id: string): boolean => id.startsWith("hastack-drill-x-");
    expect(deliveriesTo(log, ["198.51.100.145"], drill)).to.deep.equal([
      "hastack-drill-x-1@drill-world.example",
    ]);
    expect(deliveriesTo(log, ["198.51.100.99"], drill)).to.deep.equal([]);
  });

  it("reads Message-ID header lines whatever their case, with or without brackets", () => {
    expect(
      messageIdsOf("Message-ID: <a@b>\nmessage-id: c@d\nMESSAGE-ID:   <e@f>\nSubject: x\n"),
    ).to.deep.equal(["a@b", "c@d", "e@f"]);
  });

  it("rounds seconds to one decimal and keeps a missing time missing", () => {
    expect(secondsAfter(1000, 4260)).to.equal(3.3);
    expect(secondsAfter(1000, undefined)).to.equal(null);
  });
});

describe("mail drill: counting the stream on both servers", () => {
  const sent = ["m1", "m2", "m3"];

  it("nothing lost, nothing duplicated, identical sides", () => {
    const c = countStream(sent, {
      primary: ["m1", "m2", "m3", "x"],
      standby: ["x", "m3", "m2", "m1"],
    });
    expect(c).to.include({ sent: 3, delivered: 3, lost: 0, duplicated: 0, identical: true });
  });

  it("a message on neither side is lost; one only on the standby is not lost but differs", () => {
    const c = countStream(sent, { primary: ["m1"], standby: ["m1", "m2"] });
    expect(c).to.include({ delivered: 1, lost: 1, identical: false });
    expect(c.lostIds).to.deep.equal(["m3"]);
    expect(c.onlyStandby).to.deep.equal(["m2"]);
  });

  it("a message stored twice is a duplicate, and a copy count that differs is a difference", () => {
    const c = countStream(sent, { primary: ["m1", "m1", "m2", "m3"], standby: ["m1", "m2", "m3"] });
    expect(c).to.include({ duplicated: 1, lost: 0, identical: false });
    expect(c.duplicatedIds).to.deep.equal(["m1"]);
  });

  it("counts only the drill's own messages when told which they are", () => {
    const c = countStream(["d-1"], { primary: ["d-1", "old", "old"], standby: ["d-1"] }, (id) =>
      id.startsWith("d-"),
    );
    expect(c).to.include({ duplicated: 0, identical: true });
  });
});

describe("mail drill: the world MTA", () => {
  const model = {
    securityGroups: new Map([
      [
        "sg-1",
        {
          rules: [{ cidr: "0.0.0.0/0" }, { cidr: "192.0.2.128/25" }, { cidr: "203.0.113.0/27" }],
        },
      ],
    ]),
  } as unknown as StackModel;

  it("takes an address in no CIDR a security group names, and none the router holds", () => {
    // 192.0.2.177 and .199 are in 192.0.2.128/25: the next candidate.
    expect(worldMtaAddress(model, [])).to.equal("100.64.9.9");
    const open = { securityGroups: new Map() } as unknown as StackModel;
    expect(worldMtaAddress(open, ["192.0.2.177"])).to.equal("192.0.2.199");
  });

  it("its zone and main.cf pass bind9's and Postfix's own checkers", function () {
    for (const bin of ["named-checkzone", "postconf"]) {
      if (spawnSync("sh", ["-c", `command -v ${bin} || test -x /usr/sbin/${bin}`]).status !== 0) {
        throw new Error(`${bin} missing: install bind9-utils and postfix (test/install-deps.sh)`);
      }
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "hastack-drill-mail-"));
    try {
      fs.writeFileSync(path.join(dir, "zone"), renderWorldZone("192.0.2.177", 7));
      const z = spawnSync("named-checkzone", [WORLD_DOMAIN, path.join(dir, "zone")], {
        encoding: "utf8",
      });
      expect(z.status, z.stdout + z.stderr).to.equal(0);
      fs.writeFileSync(
        path.join(dir, "main.cf"),
        renderWorldMainCf({ dir, address: "192.0.2.177" }),
      );
      fs.writeFileSync(path.join(dir, "master.cf"), WORLD_MASTER_CF);
      const p = spawnSync(
        "postconf",
        ["-c", dir, "-h", "virtual_mailbox_domains", "inet_interfaces"],
        {
          encoding: "utf8",
        },
      );
      expect(p.status, p.stderr).to.equal(0);
      expect(p.stdout.trim().split("\n")).to.deep.equal([WORLD_DOMAIN, "192.0.2.177"]);
      expect(p.stderr).to.not.match(/warning/);
      const m = spawnSync("postconf", ["-c", dir, "-M", "smtp/unix", "virtual/unix"], {
        encoding: "utf8",
      });
      expect(m.stderr).to.not.match(/warning|fatal/);
      expect(m.stdout.trim().split("\n")).to.have.length(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("rehearsal: the DKIM record carries the public half of the generated key", () => {
  it("replaces the synth's mock key in the public zone; the private zone is untouched", () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = privateKey.export({ type: "pkcs1", format: "pem" }).toString();
    const model = {
      parameters: [{ name: "/hastack/mail/dkim/hastack1", type: "SecureString" }],
      zones: [
        {
          name: "example.co.id",
          private: false,
          records: [
            {
              name: "hastack1._domainkey.example.co.id",
              type: "TXT",
              ttl: 300,
              values: ["v=DKIM1; k=rsa; p=bW9jaw=="],
            },
            { name: "example.co.id", type: "TXT", ttl: 300, values: ["v=spf1 ~all"] },
          ],
        },
      ],
    } as unknown as StackModel;
    publishGeneratedDkimKeys(model, ["mail"], {
      values: { "/hastack/mail/dkim/hastack1": { type: "SecureString", value: pem } },
    });
    const published = model.zones[0].records[0].values[0].split('""').join("");
    const body = publicKey.export({ type: "spki", format: "der" }).toString("base64");
    expect(published).to.equal(`v=DKIM1; k=rsa; p=${body}`);
    // Cut into 255-byte strings as Route 53 needs (dns.ts renders each as a character-string).
    expect(model.zones[0].records[0].values[0].split('""').every((p) => p.length <= 255)).to.equal(
      true,
    );
    expect(model.zones[0].records[1].values).to.deep.equal(["v=spf1 ~all"]);
  });
});
