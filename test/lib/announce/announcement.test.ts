// The staff announcement and the operator runbook, rendered for every class of change (no
// impact, brief, outage, open-ended outage, data risk on a service, data risk on a resource no
// service owns) and every active-side flip, in both languages. The announcement is checked for
// what must never reach staff (commands, paths, ids, URNs) and for sentences that contradict
// each other; the runbook for the full rollback README's Fallback section requires.
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import { renderAnnouncement } from "../../../lib/announce/announcement";
import { renderRunbook } from "../../../lib/announce/runbook";
import {
  buildImpactPlan,
  ImpactClass,
  ImpactPlan,
  parseInputs,
  parseWindow,
} from "../../../lib/impact/impact-plan";
import { PACKAGE_ROOT } from "../../../lib/package-root";

const FIXTURES = path.join(PACKAGE_ROOT, "test", "fixtures", "impact");
const WINDOW = parseWindow("2025-07-05T22:00+07:00/2025-07-06T01:00+07:00");
const LANGS = ["en", "id"] as const;

function planOf(...names: string[]): ImpactPlan {
  return buildImpactPlan(
    parseInputs(
      names.map((n) => ({
        path: path.join(FIXTURES, n),
        text: fs.readFileSync(path.join(FIXTURES, n), "utf8"),
      })),
    ),
  );
}

const URN = (type: string, name: string): string => `urn:pulumi:prod::hastack::${type}::${name}`;

/**
 * A plan with one step per entry. Built by hand so that every class is covered, including a
 * data risk on a resource no service owns (the case that read "no service affected … replaces
 * resources that hold data").
 */
function syntheticPlan(
  entries: { service: string; cls: ImpactClass; down: number | null; type?: string }[],
  flips: Record<string, ["primary" | "standby", "primary" | "standby"]> = {},
): ImpactPlan {
  const steps = entries.map((e, i) => ({
    op: e.cls === "data-risk" ? "replace" : "update",
    urn: URN(e.type ?? "aws:ec2/instance:Instance", `${e.service}-thing-${i}`),
    type: e.type ?? "aws:ec2/instance:Instance",
    name: `${e.service}-thing-${i}`,
    ancestorTypes: [],
    service: e.service,
    class: e.cls,
    reason: "test",
    downtimeSeconds: e.down,
  }));
  const services = entries.map((e) => ({
    service: e.service,
    class: e.cls,
    downtimeSeconds: e.down,
    steps: 1,
    params: {},
    reasons: [],
  }));
  const svc = (name: string, side: "primary" | "standby") => ({
    activeSide: side,
    dnsName: `${name}.kantor-contoh.co.id`,
  });
  const outputs = (which: 0 | 1) => ({
    services: Object.fromEntries(
      ["mail", "pbx", "mysql", "nas"].map((s) => [s, svc(s, flips[s]?.[which] ?? "primary")]),
    ),
    nas: {
      backupPlanId: "nas-plan-id",
      hosts: { primary: "nas1.kantor-contoh.co.id", standby: "nas2.kantor-contoh.co.id" },
      jobs: [
        { service: "mail", name: "mail-maildirs", intervalHours: 24 },
        { service: "mysql", name: "mysql-dump", intervalHours: 6 },
      ],
    },
    contacts: [{ name: "Budi Santoso", role: "IT lead", phone: "+62 21 5550 1001" }],
  });
  return {
    kind: "synth-pair",
    estimate: true,
    steps,
    services,
    worst: "none",
    notes: [],
    outputsBefore: outputs(0),
    outputsAfter: outputs(1),
    config: {},
  } as unknown as ImpactPlan;
}

/** Every class of change, by name. */
const CHANGES: Record<string, () => ImpactPlan> = {
  "no change (preview)": () => planOf("preview-no-changes.json"),
  "mail failover (preview)": () => planOf("preview-mail-failover.json"),
  "pbx failover (preview)": () => planOf("preview-pbx-failover.json"),
  "mail moved to another AZ: outage + data risk (preview)": () =>
    planOf("preview-mail-move-az.json"),
  "mysql volume key change (event log)": () => planOf("events-mysql-volume-kms.jsonl"),
  "brief interruption": () => syntheticPlan([{ service: "mysql", cls: "brief", down: 20 }]),
  "outage of two services": () =>
    syntheticPlan([
      { service: "mail", cls: "outage", down: 300 },
      { service: "pbx", cls: "outage", down: 240 },
    ]),
  "open-ended outage": () => syntheticPlan([{ service: "nas", cls: "outage", down: null }]),
  "data risk on a service": () =>
    syntheticPlan([
      { service: "mysql", cls: "data-risk", down: null, type: "aws:ebs/volume:Volume" },
    ]),
  "data risk on a resource no service owns": () =>
    syntheticPlan([
      { service: "stack", cls: "data-risk", down: null, type: "aws:backup/vault:Vault" },
    ]),
  "nothing users notice": () => syntheticPlan([{ service: "dns", cls: "none", down: 0 }]),
};

/** What must never reach staff. */
const FORBIDDEN: [string, RegExp][] = [
  ["a pulumi command", /\bpulumi\s/i],
  ["an npm command", /\bnpm\s/],
  ["sudo", /\bsudo\b/],
  ["a URN", /urn:/],
  ["an absolute path", /(^|[\s(`'"])\/[A-Za-z0-9._-]+/m],
  ["a home path", /~\//],
  ["an AWS resource id", /\b(i|vol|sg|eni|eipalloc|subnet|vpc|ami|Z)-?[0-9a-f]{8,17}\b/],
  ["a backup plan id or job name", /nas-plan-id|mail-maildirs|mysql-dump|backupPlan/],
  ["a config key", /hastack:/],
  ["code markup", /`/],
  ["a resource's logical name", /-thing-\d|-pair-(primary|standby)/],
];

/** Pairs of statements that cannot both be true of one change. */
const CONTRADICTIONS: [RegExp, RegExp][] = [
  [
    /should not notice anything|tidak akan merasakan gangguan/,
    /What you will notice|Yang akan Bapak\/Ibu alami/,
  ],
  [/should not notice anything|tidak akan merasakan gangguan/, /How long|Lama gangguan/],
  [/No service .* affected|Tidak ada layanan .* terdampak/i, /replaces resources that hold data/],
  [/Not affected|Tidak terpengaruh/, /should not notice anything|tidak akan merasakan gangguan/],
];

describe("announcement for staff: every class of change, both languages", () => {
  for (const [change, make] of Object.entries(CHANGES)) {
    for (const lang of LANGS) {
      describe(`${change} (${lang})`, () => {
        const md = renderAnnouncement(make(), { lang, window: WINDOW });
        for (const [what, re] of FORBIDDEN) {
          it(`holds no ${what}`, () => {
            expect(md.match(re)?.[0], md).to.equal(undefined);
          });
        }
        it("has no sentences that contradict each other", () => {
          for (const [a, b] of CONTRADICTIONS) {
            expect(a.test(md) && b.test(md), `${a} and ${b} in:\n${md}`).to.equal(false);
          }
        });
        it("says when, and whom to call", () => {
          expect(md).to.include(lang === "en" ? "Saturday 5 July 2025" : "Sabtu, 5 Juli 2025");
          expect(md).to.include("Budi Santoso");
        });
      });
    }
  }

  it("an outage: what staff notice, what to do meanwhile, how long", () => {
    const md = renderAnnouncement(CHANGES["outage of two services"](), {
      lang: "en",
      window: WINDOW,
    });
    expect(md).to.match(/^# Scheduled maintenance: Email, Office telephones$/m);
    expect(md).to.include("You cannot send or read email during the interruption");
    expect(md).to.include("Use your mobile phone for urgent calls.");
    expect(md).to.include("**How long:** Up to 5 min for each service");
    expect(md).to.match(
      /## Not affected\n\nOffice applications \(database\), Data backups keep working/,
    );
  });

  it("a data risk nobody's service owns: nothing to notice, a fresh backup — and no contradiction", () => {
    const md = renderAnnouncement(CHANGES["data risk on a resource no service owns"](), {
      lang: "en",
      window: WINDOW,
    });
    expect(md).to.include("You should not notice anything");
    expect(md).to.include("we take a fresh backup of the data involved");
    expect(md).not.to.include("Not affected");
  });

  it("Bahasa Indonesia reads as a notice to office staff, with no English left", () => {
    const md = renderAnnouncement(planOf("preview-mail-failover.json"), {
      lang: "id",
      window: WINDOW,
    });
    expect(md).to.match(/^# Pemberitahuan Pemeliharaan Terjadwal: Email$/m);
    expect(md).to.include("Yth. Bapak/Ibu rekan kerja,");
    expect(md).to.include(
      "Sabtu, 5 Juli 2025 pukul 22.00 WIB – Minggu, 6 Juli 2025 pukul 01.00 WIB",
    );
    expect(md).to.include(
      "Email masuk mungkin terlambat beberapa menit, tetapi tidak akan hilang.",
    );
    expect(md).to.include("Mohon maaf atas ketidaknyamanannya.");
    expect(md).not.to.match(/\b(the|will|within|you|please|service|window)\b/i);
    // The stiff phrasings of the first version are gone.
    expect(md).not.to.match(/jendela waktu|pesan galat|waktu menyala|Kami kembali/);
  });

  it("no window yet: says it will be announced; explicit contacts override the outputs", () => {
    const md = renderAnnouncement(planOf("preview-pbx-failover.json"), {
      lang: "en",
      contacts: [{ name: "Rina", role: "Front desk" }],
    });
    expect(md).to.include("to be scheduled");
    expect(md).to.include("| Rina | Front desk | — | — |");
    expect(md).not.to.include("Budi Santoso");
    expect(md).to.include("A call in progress may drop");
  });
});

describe("operator runbook: steps, checks, full rollback per service", () => {
  for (const [change, make] of Object.entries(CHANGES)) {
    for (const lang of LANGS) {
      it(`${change} (${lang}): numbered steps from 1, a preview, the apply, a rollback`, () => {
        const md = renderRunbook(make(), { lang, window: WINDOW });
        expect(md).to.include("pulumi up --stack prod");
        expect(md).to.include("rollback-preview.json");
        // Every numbered list starts at 1 and never with "Or …" (it used to read "1. Or restore…").
        expect(md).not.to.match(/^\d+\. (Or|Atau)\b/m);
        const sections = md.split(/^## /m).slice(1);
        for (const s of sections) {
          const numbers = [...s.matchAll(/^(\d+)\. /gm)].map((m) => Number(m[1]));
          expect(numbers, s).to.deep.equal(numbers.map((_, i) => i + 1));
        }
      });
    }
  }

  const flipCases: [string, string[]][] = [
    ["mail", ["sudo hastack-mail-fallback", "doveadm sync", "hastack-unfence"]],
    ["mysql", ["hastack-mysql-fallback", "SHOW REPLICA STATUS"]],
    ["pbx", ["sudo hastack-pbx-sync final", "/var/spool/asterisk"]],
    ["nas", ["sudo hastack-unfence", "replicated to the primary"]],
  ];
  for (const [svc, needles] of flipCases) {
    it(`${svc} failover: the rollback syncs back and unfences before active: primary`, () => {
      const plan = syntheticPlan([{ service: svc, cls: "brief", down: 90 }], {
        [svc]: ["primary", "standby"],
      });
      const md = renderRunbook(plan, { lang: "en", window: WINDOW });
      const rollback = md.slice(md.indexOf("## Rollback"));
      for (const n of needles) {
        expect(rollback, n).to.include(n);
      }
      const setBack = `pulumi config set --path 'hastack:${svc}.active' primary`;
      expect(rollback).to.include(setBack);
      expect(rollback.indexOf(needles[0])).to.be.below(rollback.indexOf(setBack));
      const id = renderRunbook(plan, { lang: "id", window: WINDOW });
      expect(id).to.include("## Pengembalian (rollback)");
      expect(id).to.include(needles[0]);
    });
  }

  describe("queued mail (issue 17): flushed before a mail server goes away", () => {
    const section = (md: string, heading: string): string => {
      const start = md.indexOf(`## ${heading}`);
      return md.slice(start, md.indexOf("\n## ", start + 3));
    };

    it("a mail server replaced: its queue is flushed right before the apply", () => {
      const plan = syntheticPlan([{ service: "mail", cls: "data-risk", down: null }]);
      (plan.steps[0] as { side?: string }).side = "standby";
      const md = renderRunbook(plan, { lang: "en", window: WINDOW });
      const apply = section(md, "Apply");
      expect(apply).to.include("1. Right before applying, on the mail standby server");
      expect(apply.indexOf("sudo hastack-mail-queue flush")).to.be.below(
        apply.indexOf("pulumi up --stack prod"),
      );
      const id = section(renderRunbook(plan, { lang: "id", window: WINDOW }), "Penerapan");
      expect(id).to.include("sudo hastack-mail-queue flush");
    });

    it("no mail server replaced (a database server is): no flush step", () => {
      const plan = syntheticPlan([{ service: "mysql", cls: "data-risk", down: null }]);
      expect(renderRunbook(plan, { lang: "en", window: WINDOW })).not.to.include(
        "hastack-mail-queue",
      );
      const update = syntheticPlan([{ service: "mail", cls: "brief", down: 90 }]);
      expect(
        section(renderRunbook(update, { lang: "en", window: WINDOW }), "Apply"),
      ).not.to.include("hastack-mail-queue");
    });

    it("mail failover: the side that stopped serving is flushed before it is shut down; the rollback flushes the standby", () => {
      const plan = syntheticPlan([{ service: "mail", cls: "brief", down: 90 }], {
        mail: ["primary", "standby"],
      });
      const md = renderRunbook(plan, { lang: "en", window: WINDOW });
      expect(section(md, "Checks after the change")).to.include(
        "mail: the primary server no longer takes mail; before it is shut down or fenced for good, run `sudo hastack-mail-queue flush`",
      );
      expect(section(md, "Rollback")).to.include(
        "run `sudo hastack-mail-queue flush` on the standby",
      );
    });
  });

  it("data risk: names each resource with its URN, backups first, restore in the rollback", () => {
    const md = renderRunbook(CHANGES["data risk on a service"](), { lang: "en", window: WINDOW });
    expect(md).to.include(
      "`mysql-thing-0` (replace): `urn:pulumi:prod::hastack::aws:ebs/volume:Volume::mysql-thing-0`",
    );
    expect(md).to.include("sudo systemctl start hastack-backup-mysql-dump");
    expect(md).to.include("backup plan `nas-plan-id`");
    expect(md).to.include("Offline estimate from two synth files: ids are mocks");
    expect(md).to.include("restore it from the backups taken before the window");
  });
});
