// MTA-STS and TLS-RPT (issue 17): the pure functions as tables, and MailPair under the mocks in
// every migration phase — `_mta-sts`, `_smtp._tls` and the policy parameter parsed as a sender
// parses them (test/support/mta-sts.ts, not a regex), the policy's mx lines covering every MX of
// the phase, the id following the policy, mta-sts.<domain> following the failover, nothing
// declared while hastack:mail.mtaSts is none, and the config refused with a clear error.
import { expect } from "chai";
import {
  checkMtaStsInput,
  mtaStsId,
  mtaStsMxNames,
  mtaStsPolicy,
  mtaStsRecord,
  tlsRptRecord,
} from "../../components/mail-mta-sts";
import { parseStackConfig } from "../../lib/config/stack-config";
import { SynthResource } from "../../lib/synth/offline-synth";
import { MAIL_DOMAIN, MailSynth, synthMailPair } from "../support/mail-synth";
import {
  mxMatches,
  mxNotCovered,
  parseStsPolicy,
  parseStsRecord,
  parseTlsRptRecord,
} from "../support/mta-sts";

const D = MAIL_DOMAIN;
const RECORD = "aws:route53/record:Record";
const NAMES = { primary: `mx1.${D}`, standby: `mx2.${D}` };
const OLD = { hostname: `mail.${D}`, ip: "203.0.113.25", mxPreference: 0, raisedPreference: 10 };

const records = (s: MailSynth): SynthResource[] =>
  s.d.deployment.resources.filter((r) => r.type === RECORD);
const txt = (s: MailSynth, name: string): string | undefined => {
  const r = records(s).find((x) => x.inputs.name === name && x.inputs.type === "TXT");
  return r ? (r.inputs.records as string[])[0] : undefined;
};
const mxValues = (s: MailSynth): string[] =>
  records(s).find((r) => r.inputs.type === "MX")!.inputs.records as string[];
const policyParameter = (s: MailSynth): SynthResource | undefined =>
  s.d.deployment.resources.find((r) => r.name === "mail-mta-sts-policy");

function migrating(phase: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    migration: phase === 0 ? { phase } : { phase, oldServer: OLD },
    mtaSts: "testing",
    ...extra,
  };
}

describe("MTA-STS and TLS-RPT (issue 17)", function () {
  this.timeout(120000);

  describe("pure functions", () => {
    it("the policy parses per RFC 8461 and lists exactly the names given", () => {
      const policy = parseStsPolicy(mtaStsPolicy("enforce", mtaStsMxNames(NAMES), 86400));
      expect(policy).to.deep.equal({
        version: "STSv1",
        mode: "enforce",
        mx: [`mx1.${D}`, `mx2.${D}`],
        maxAge: 86400,
      });
    });

    it("mx names: both servers always, the old server's while its record is published; lower-case, no final dot", () => {
      expect(mtaStsMxNames(NAMES)).to.deep.equal([`mx1.${D}`, `mx2.${D}`]);
      expect(
        mtaStsMxNames({ primary: `MX2.${D}.`, standby: `mx1.${D}` }, `MX-OLD.${D}`),
      ).to.deep.equal([`mx-old.${D}`, `mx1.${D}`, `mx2.${D}`]);
    });

    it("the id changes exactly when the policy does, and is what RFC 8461 allows", () => {
      const a = mtaStsPolicy("testing", mtaStsMxNames(NAMES), 604800);
      const table: [string, string, boolean][] = [
        ["same policy", mtaStsPolicy("testing", mtaStsMxNames(NAMES), 604800), false],
        ["mode", mtaStsPolicy("enforce", mtaStsMxNames(NAMES), 604800), true],
        ["max_age", mtaStsPolicy("testing", mtaStsMxNames(NAMES), 86400), true],
        ["an mx", mtaStsPolicy("testing", mtaStsMxNames(NAMES, `mx-old.${D}`), 604800), true],
      ];
      for (const [what, b, changes] of table) {
        expect(mtaStsId(a) !== mtaStsId(b), what).to.equal(changes);
        expect(parseStsRecord(mtaStsRecord(b)).id).to.equal(mtaStsId(b));
      }
    });

    it("TLS-RPT: v=TLSRPTv1 with a mailto rua", () => {
      expect(parseTlsRptRecord(tlsRptRecord(`tls@${D}`))).to.deep.equal({
        rua: [`mailto:tls@${D}`],
      });
    });

    describe("invariant: enforce only while the old server is not an MX", () => {
      const oldMx = `mx-old.${D}`;
      it("compliant: testing with the old server among the MX; enforce once it left", () => {
        expect(checkMtaStsInput("testing", 6, [`0 mx1.${D}`, `10 ${oldMx}`], oldMx)).to.deep.equal(
          [],
        );
        expect(checkMtaStsInput("enforce", 8, [`10 mx1.${D}`, `20 mx2.${D}`], oldMx)).to.deep.equal(
          [],
        );
      });
      it("non-compliant: enforce while the old server is an MX, naming the key", () => {
        const [problem] = checkMtaStsInput("enforce", 5, [`10 ${oldMx}`], oldMx);
        expect(problem).to.match(/^hastack:mail\.mtaSts must be "testing" or "none"/);
        expect(problem).to.contain(oldMx);
      });
    });

    it("the parsers refuse what a sender would (so the checks here can fail)", () => {
      expect(() => parseStsRecord("id=abc; v=STSv1")).to.throw("must start with v=STSv1");
      expect(() => parseStsRecord("v=STSv1; id=abc-def")).to.throw("letters or digits");
      expect(() => parseStsRecord(`v=STSv1; id=${"a".repeat(33)}`)).to.throw();
      expect(() => parseTlsRptRecord("v=TLSRPTv1; rua=tls@example.net")).to.throw("neither");
      expect(() => parseStsPolicy("mode: enforce\nmx: a.b\nmax_age: 1\n")).to.throw("version");
      expect(() => parseStsPolicy("version: STSv1\nmode: enforce\nmax_age: 1\n")).to.throw(
        "at least one mx",
      );
      expect(() => parseStsPolicy("version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n")).to.throw(
        "mode",
      );
      expect(() =>
        parseStsPolicy("version: STSv1\nmode: testing\nmx: a.b\nmax_age: 31557601\n"),
      ).to.throw("max_age");
      expect(() =>
        parseStsPolicy("version: STSv1\n\nmode: testing\nmx: a.b\nmax_age: 1\n"),
      ).to.throw("malformed");
      expect(mxMatches(`*.${D}`, `mx1.${D}`)).to.equal(true);
      expect(mxMatches(`*.${D}`, `a.mx1.${D}`)).to.equal(false);
      expect(mxMatches(`mx1.${D}`, `MX1.${D}.`)).to.equal(true);
      const policy = parseStsPolicy(mtaStsPolicy("enforce", [`mx1.${D}`], 86400));
      // The coverage check fails when an MX is missing from the policy.
      expect(mxNotCovered(policy, [`10 mx1.${D}`, `20 mx2.${D}`])).to.deep.equal([`mx2.${D}`]);
    });
  });

  describe("MailPair in every migration phase (mtaSts testing)", () => {
    const phases = new Map<number, MailSynth>();
    before(async () => {
      for (let phase = 0; phase <= 9; phase++) {
        phases.set(phase, await synthMailPair(migrating(phase)));
      }
    });

    for (let phase = 0; phase <= 9; phase++) {
      it(`phase ${phase}: the records parse, the policy covers every MX, the id is the policy's`, () => {
        const s = phases.get(phase)!;
        const param = policyParameter(s)!;
        expect(param.inputs).to.include({ name: "/hastack/mail/mta-sts-policy", type: "String" });
        const text = param.inputs.insecureValue as string;
        const policy = parseStsPolicy(text);
        expect(policy.mode).to.equal("testing");
        expect(policy.maxAge).to.equal(604800);
        expect(mxNotCovered(policy, mxValues(s)), `MX ${mxValues(s).join(", ")}`).to.deep.equal([]);
        // The old server's MX name stays allowed while its A record is published (1–8).
        const oldA = records(s).find((r) => r.inputs.name === `mx-old.${D}`);
        expect(policy.mx.includes(`mx-old.${D}`), "mx-old in the policy").to.equal(
          oldA !== undefined,
        );
        expect(parseStsRecord(txt(s, `_mta-sts.${D}`)!).id).to.equal(mtaStsId(text));
        expect(parseTlsRptRecord(txt(s, `_smtp._tls.${D}`)!).rua).to.deep.equal([
          `mailto:postmaster@${D}`,
        ]);
      });
    }

    it("the policy (and so the id) changes only where the old server's name comes and goes (1, 9)", () => {
      const id = (p: number): string => parseStsRecord(txt(phases.get(p)!, `_mta-sts.${D}`)!).id;
      const changed = [];
      for (let p = 1; p <= 9; p++) {
        if (id(p) !== id(p - 1)) {
          changed.push(p);
        }
      }
      expect(changed).to.deep.equal([1, 9]);
    });

    it("mta-sts.<domain> is served by the new pair in every phase, never by the old server", () => {
      for (const [phase, s] of phases) {
        const a = records(s).filter((r) => r.inputs.name === `mta-sts.${D}`);
        expect(a.length, `phase ${phase}`).to.equal(2);
        expect(JSON.stringify(a.map((r) => r.inputs.records))).not.to.contain(OLD.ip);
      }
    });
  });

  describe("MailPair: mta-sts.<domain> follows the mail failover", () => {
    it("PRIMARY answers with the active server, health-checked like the service name; a flip swaps them", async () => {
      const base = await synthMailPair({ mtaSts: "enforce" });
      const flipped = await synthMailPair({ mtaSts: "enforce", active: "standby" });
      const answer = (s: MailSynth, name: string, routing: string) =>
        records(s).find(
          (r) =>
            r.inputs.name === name &&
            (r.inputs.failoverRoutingPolicies as { type: string }[] | undefined)?.[0].type ===
              routing,
        )!.inputs;
      for (const s of [base, flipped]) {
        for (const routing of ["PRIMARY", "SECONDARY"]) {
          const service = answer(s, `mail.${D}`, routing);
          const sts = answer(s, `mta-sts.${D}`, routing);
          expect(sts.records, routing).to.deep.equal(service.records);
          expect(sts.healthCheckId, routing).to.equal(service.healthCheckId);
        }
      }
      expect(answer(flipped, `mta-sts.${D}`, "PRIMARY").records).to.deep.equal(
        answer(base, `mta-sts.${D}`, "SECONDARY").records,
      );
      // A flip changes no policy: the mx names do not depend on which server is active.
      expect(policyParameter(flipped)!.inputs.insecureValue).to.equal(
        policyParameter(base)!.inputs.insecureValue,
      );
    });

    it("HTTPS (443) is open to senders only while MTA-STS is on", async () => {
      const ingress443 = (s: MailSynth) =>
        s.d.deployment.resources.filter(
          (r) =>
            r.type === "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule" &&
            r.inputs.fromPort === 443,
        );
      const on = await synthMailPair({ mtaSts: "testing" });
      expect(ingress443(on).map((r) => r.inputs.cidrIpv4)).to.deep.equal(["0.0.0.0/0"]);
      expect(ingress443(await synthMailPair())).to.deep.equal([]);
    });
  });

  describe("MailPair: none (the default) publishes nothing", () => {
    it("no policy parameter, no _mta-sts, _smtp._tls or mta-sts records; outputs say none", async () => {
      const s = await synthMailPair();
      expect(policyParameter(s)).to.equal(undefined);
      for (const name of [`_mta-sts.${D}`, `_smtp._tls.${D}`, `mta-sts.${D}`]) {
        expect(
          records(s).filter((r) => r.inputs.name === name),
          name,
        ).to.deep.equal([]);
      }
      const summary = s.outputs.summary as { mtaSts: unknown };
      expect(summary.mtaSts).to.deep.equal({ mode: "none", id: null, policyUrl: null, mx: [] });
    });

    it("the outputs name the mode, id, URL and mx names when on; the owner's report address and max_age are used", async () => {
      const s = await synthMailPair({
        mtaSts: "enforce",
        mtaStsMaxAgeSeconds: 1209600,
        tlsRpt: { reportEmail: `tls-reports@${D}` },
      });
      const text = policyParameter(s)!.inputs.insecureValue as string;
      expect(parseStsPolicy(text).maxAge).to.equal(1209600);
      expect(parseTlsRptRecord(txt(s, `_smtp._tls.${D}`)!).rua).to.deep.equal([
        `mailto:tls-reports@${D}`,
      ]);
      expect((s.outputs.summary as { mtaSts: unknown }).mtaSts).to.deep.equal({
        mode: "enforce",
        id: mtaStsId(text),
        policyUrl: `https://mta-sts.${D}/.well-known/mta-sts.txt`,
        mx: [`mx1.${D}`, `mx2.${D}`],
      });
    });
  });

  describe("bad config: a clear error naming the key, before anything is declared", () => {
    it("enforce while the old server is an MX (phase 6)", async () => {
      let err: Error | undefined;
      await synthMailPair(migrating(6, { mtaSts: "enforce" })).catch((e: Error) => (err = e));
      expect(err?.message).to.contain('hastack:mail.mtaSts must be "testing" or "none"');
      // Before anything is declared: the constructor throws, no resource is registered.
      expect(err?.message).to.match(/^MailPair mail: /);
    });

    it("an unknown mode, a max_age out of range and a bad report address, all at once", () => {
      let err: Error | undefined;
      try {
        parseStackConfig({
          domain: D,
          mail: {
            active: "primary",
            mtaSts: "strict",
            mtaStsMaxAgeSeconds: 60,
            tlsRpt: { reportEmail: "nobody" },
          },
        });
      } catch (e) {
        err = e as Error;
      }
      const message = err?.message ?? "";
      expect(message).to.contain(
        'hastack:mail.mtaSts must be one of "none", "testing", "enforce", got "strict"',
      );
      expect(message).to.contain(
        "hastack:mail.mtaStsMaxAgeSeconds needs at least 86400 (one day), got 60",
      );
      expect(message).to.contain("hastack:mail.tlsRpt.reportEmail must be an e-mail address");
    });
  });
});
