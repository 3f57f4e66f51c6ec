// The operator runbook for one change, twin of the staff announcement (announcement.ts): the
// plan with resource names and URNs, the backups to take first, the steps and checks, and a full
// rollback per service — including the sync-back and unfence that README's "Fallback" section
// requires before a side takes traffic again. English or Bahasa Indonesia.
import {
  Contact,
  ImpactPlan,
  MaintenanceWindow,
  SERVICES,
  fmtDuration,
  parseUrn,
} from "../impact/impact-plan";
import { contactsOf, describeWindow, Lang, userServices } from "./announcement";

export interface RunbookOptions {
  lang: Lang;
  window?: MaintenanceWindow;
  contacts?: Contact[];
  /** Stack name for the commands. Defaults to the stack in the plan's URNs, else "prod". */
  stack?: string;
}

interface RunbookTexts {
  title: (stack: string) => string;
  window: string;
  estimate: string;
  planHeading: string;
  planHead: [string, string, string];
  noUserImpact: string;
  dataRisk: string;
  beforeHeading: string;
  backupJob: (job: string, host: string) => string;
  backupPlan: (id: string) => string;
  noBackups: string;
  announce: string;
  previewStep: string;
  applyHeading: string;
  apply: string;
  /** Before a mail server is replaced or deleted: deliver its queue first (issue 17). */
  flushBeforeApply: (side: string) => string;
  checksHeading: string;
  /** After mail moved away from a side: its queue, before it is shut down or fenced for good. */
  flushAfterMove: (side: string) => string;
  checkService: (svc: string, name: string) => string;
  checkMonitoring: string;
  rollbackHeading: string;
  rollbackIntro: string;
  revertSettings: string;
  revertFile: (stack: string) => string;
  restoreFile: (stack: string) => string;
  revertPreview: string;
  restoreData: string;
  syncBack: Record<string, string[]>;
  contactsHeading: string;
  noContacts: string;
}

const EN: RunbookTexts = {
  title: (s) => `Runbook: change to stack ${s}`,
  window: "Window",
  estimate: "Offline estimate from two synth files: ids are mocks; confirm with `pulumi preview`.",
  planHeading: "What the change does",
  planHead: ["Service", "Class", "Interruption"],
  noUserImpact: "No service users reach is interrupted.",
  dataRisk:
    "Resources that hold data are replaced or deleted (restore from the backups below if anything is missing):",
  beforeHeading: "Before the window",
  backupJob: (job, host) =>
    `Run the NAS backup job once more and check it succeeded: \`ssh ${host} sudo systemctl start hastack-backup-${job}\``,
  backupPlan: (id) =>
    `Take an on-demand AWS Backup recovery point of each affected data volume (backup plan \`${id}\`).`,
  noBackups:
    "The outputs list no NAS backup job for the affected services: snapshot each affected data volume by hand.",
  announce: "Send the staff announcement (written beside this runbook) at least a day ahead.",
  previewStep: "Preview and check that only the expected resources change:",
  applyHeading: "Apply",
  apply: "Apply the reviewed change:",
  flushBeforeApply: (side) =>
    `Right before applying, on the mail ${side} server (it is replaced or removed): \`sudo hastack-mail-queue flush\`. Apply only once it succeeds; it refuses, listing them, while mail is still queued (\`postqueue -p\` says why). A server that cannot be reached keeps its queue on its data volume (\`/srv/data/postfix\`), which a rebuild keeps: Postfix delivers it when the server runs again with that volume.`,
  checksHeading: "Checks after the change",
  checkService: (svc, name) =>
    `${svc}: \`${name}\` answers on its ports from outside (monitoring's blackbox probes are green).`,
  checkMonitoring: "No hastack alert fires in Prometheus (replication and backup metrics fresh).",
  flushAfterMove: (side) =>
    `mail: the ${side} server no longer takes mail; before it is shut down or fenced for good, run \`sudo hastack-mail-queue flush\` on it (it refuses while mail is queued). If it is down, its queue waits on its data volume (\`/srv/data/postfix\`): never delete that volume; when the server boots again with it, Postfix delivers the queue (\`HastackMailQueueStuck\` clears).`,
  rollbackHeading: "Rollback",
  rollbackIntro: "If a check fails, go back — reviewed the same way as the change:",
  revertSettings: "Set the previous values again:",
  revertFile: (s) =>
    `Or restore the stack file as it was: \`git checkout <commit before the change> -- Pulumi.${s}.yaml\`.`,
  restoreFile: (s) =>
    `Restore the stack file as it was before the change: \`git checkout <commit before the change> -- Pulumi.${s}.yaml\`.`,
  revertPreview:
    "Preview the rollback (only the reverted resources may change), check it with impact, apply:",
  restoreData:
    "Anything missing from a replaced data volume: restore it from the backups taken before the window.",
  syncBack: {
    mail: [
      "mail: before `active: primary` is applied again, on the primary run `sudo hastack-mail-fallback` (two-way `doveadm sync` with the standby, verification, then `hastack-unfence`). Never unfence before the sync is verified.",
      "mail: once the primary takes mail again, and before the standby is shut down or rebuilt, run `sudo hastack-mail-queue flush` on the standby: mail it accepted but has not delivered yet would otherwise wait there.",
    ],
    mysql: [
      "mysql: applying `active: primary` runs `hastack-mysql-fallback` on the old primary first (it replicates from the standby until caught up), then swaps the roles; check `SHOW REPLICA STATUS` on the new standby afterwards.",
    ],
    pbx: [
      "pbx: on the side that served, `sudo hastack-pbx-sync final` pushes /etc/asterisk and /var/spool/asterisk back and checks both hold the same; only then apply `active: primary`.",
    ],
    nas: [
      "nas: check the standby NAS replicated to the primary after its last job; then on the primary `sudo hastack-unfence`, then apply `active: primary`.",
    ],
  },
  contactsHeading: "Contacts",
  noContacts: "No contacts configured (hastack:contacts).",
};

const ID: RunbookTexts = {
  title: (s) => `Runbook: perubahan stack ${s}`,
  window: "Jadwal",
  estimate:
    "Perkiraan offline dari dua berkas synth: id-nya tiruan; pastikan dengan `pulumi preview`.",
  planHeading: "Apa yang diubah",
  planHead: ["Layanan", "Kelas", "Gangguan"],
  noUserImpact: "Tidak ada layanan pengguna yang terganggu.",
  dataRisk:
    "Sumber daya yang menyimpan data diganti atau dihapus (pulihkan dari cadangan di bawah jika ada yang hilang):",
  beforeHeading: "Sebelum jadwal",
  backupJob: (job, host) =>
    `Jalankan sekali lagi tugas pencadangan NAS dan pastikan berhasil: \`ssh ${host} sudo systemctl start hastack-backup-${job}\``,
  backupPlan: (id) =>
    `Buat titik pemulihan AWS Backup sesuai permintaan untuk setiap volume data yang terdampak (rencana pencadangan \`${id}\`).`,
  noBackups:
    "Keluaran stack tidak mencantumkan tugas pencadangan NAS untuk layanan yang terdampak: buat snapshot setiap volume data yang terdampak secara manual.",
  announce:
    "Kirim pengumuman untuk staf (ditulis bersama runbook ini) paling lambat sehari sebelumnya.",
  previewStep: "Jalankan pratinjau dan pastikan hanya sumber daya yang diharapkan yang berubah:",
  applyHeading: "Penerapan",
  apply: "Terapkan perubahan yang sudah ditinjau:",
  flushBeforeApply: (side) =>
    `Tepat sebelum penerapan, di server mail ${side} (yang diganti atau dihapus): \`sudo hastack-mail-queue flush\`. Terapkan hanya setelah perintah itu berhasil; perintah itu menolak, sambil mencantumkannya, selama masih ada email dalam antrean (\`postqueue -p\` menjelaskan sebabnya). Server yang tidak bisa dijangkau menyimpan antreannya di volume datanya (\`/srv/data/postfix\`), yang tetap ada saat server dibangun ulang: Postfix mengirimkannya ketika server berjalan lagi dengan volume itu.`,
  checksHeading: "Pemeriksaan setelah perubahan",
  checkService: (svc, name) =>
    `${svc}: \`${name}\` menjawab di port-portnya dari luar (probe blackbox di monitoring berwarna hijau).`,
  checkMonitoring:
    "Tidak ada alert hastack yang menyala di Prometheus (metrik replikasi dan pencadangan masih baru).",
  flushAfterMove: (side) =>
    `mail: server ${side} tidak lagi menerima email; sebelum dimatikan atau di-fence untuk seterusnya, jalankan \`sudo hastack-mail-queue flush\` di server itu (perintah itu menolak selama masih ada email dalam antrean). Jika server itu mati, antreannya menunggu di volume datanya (\`/srv/data/postfix\`): jangan pernah menghapus volume itu; saat server menyala lagi dengan volume itu, Postfix mengirimkan antreannya (\`HastackMailQueueStuck\` padam).`,
  rollbackHeading: "Pengembalian (rollback)",
  rollbackIntro:
    "Jika pemeriksaan gagal, kembalikan — dengan peninjauan yang sama seperti perubahannya:",
  revertSettings: "Setel kembali nilai sebelumnya:",
  revertFile: (s) =>
    `Atau kembalikan berkas stack seperti semula: \`git checkout <commit sebelum perubahan> -- Pulumi.${s}.yaml\`.`,
  restoreFile: (s) =>
    `Kembalikan berkas stack seperti sebelum perubahan: \`git checkout <commit sebelum perubahan> -- Pulumi.${s}.yaml\`.`,
  revertPreview:
    "Jalankan pratinjau rollback (hanya sumber daya yang dikembalikan yang boleh berubah), periksa dengan impact, lalu terapkan:",
  restoreData:
    "Data yang hilang dari volume data yang diganti: pulihkan dari cadangan yang dibuat sebelum jadwal.",
  syncBack: {
    mail: [
      "mail: sebelum `active: primary` diterapkan lagi, jalankan `sudo hastack-mail-fallback` di server primary (sinkronisasi dua arah `doveadm sync` dengan standby, verifikasi, lalu `hastack-unfence`). Jangan lepas fence sebelum sinkronisasi terverifikasi.",
      "mail: setelah primary kembali menerima email, dan sebelum standby dimatikan atau dibangun ulang, jalankan `sudo hastack-mail-queue flush` di standby: email yang sudah diterimanya tetapi belum terkirim akan tertahan di sana.",
    ],
    mysql: [
      "mysql: menerapkan `active: primary` menjalankan `hastack-mysql-fallback` di primary lama lebih dulu (menjadi replika standby sampai tersusul), lalu menukar peran; setelahnya periksa `SHOW REPLICA STATUS` di standby yang baru.",
    ],
    pbx: [
      "pbx: di sisi yang sempat melayani, `sudo hastack-pbx-sync final` mengirim balik /etc/asterisk dan /var/spool/asterisk lalu memeriksa keduanya sama; baru setelah itu terapkan `active: primary`.",
    ],
    nas: [
      "nas: pastikan NAS standby sudah mereplikasi ke primary setelah tugas terakhirnya; lalu di primary jalankan `sudo hastack-unfence`, kemudian terapkan `active: primary`.",
    ],
  },
  contactsHeading: "Kontak",
  noContacts: "Belum ada kontak (hastack:contacts).",
};

export const RUNBOOK_TEXTS: Record<Lang, RunbookTexts> = { en: EN, id: ID };

/** Active side per service before and after: from the outputs, else the plan's parameters. */
function activeSides(plan: ImpactPlan, svc: string): { before?: string; after?: string } {
  const params = plan.services.find((s) => s.service === svc)?.params;
  return {
    before: plan.outputsBefore?.services?.[svc]?.activeSide ?? params?.activeBefore,
    after: plan.outputsAfter?.services?.[svc]?.activeSide ?? params?.activeAfter,
  };
}

/** The commands that restore the previous configuration, from the outputs before and after. */
export function fallbackSettings(plan: ImpactPlan): string[] {
  const before = plan.outputsBefore?.services ?? {};
  const after = plan.outputsAfter?.services ?? {};
  const cmds: string[] = [];
  for (const svc of SERVICES) {
    const sides = activeSides(plan, svc);
    if (sides.before && sides.after && sides.before !== sides.after) {
      cmds.push(`pulumi config set --path 'hastack:${svc}.active' ${sides.before}`);
    }
    const b = before[svc];
    const a = after[svc];
    if (
      typeof b?.migrationPhase === "number" &&
      typeof a?.migrationPhase === "number" &&
      b.migrationPhase !== a.migrationPhase
    ) {
      cmds.push(`pulumi config set --path 'hastack:${svc}.migration.phase' ${b.migrationPhase}`);
    }
  }
  return cmds;
}

/**
 * Sides of the mail pair whose server the change replaces or deletes: their Postfix queue is
 * delivered first (issue 17).
 */
export function mailServersToFlush(plan: ImpactPlan): string[] {
  const sides = plan.steps
    .filter(
      (s) =>
        s.service === "mail" &&
        s.type === "aws:ec2/instance:Instance" &&
        (s.op === "replace" || s.op === "delete" || s.op === "import-replacement"),
    )
    .map((s) => s.side ?? s.name);
  return [...new Set(sides)].sort();
}

/** Services whose active side the change moves: their rollback needs the sync-back first. */
function flippedServices(plan: ImpactPlan): string[] {
  return SERVICES.filter((svc) => {
    const sides = activeSides(plan, svc);
    return sides.before && sides.after && sides.before !== sides.after;
  });
}

function stackOf(plan: ImpactPlan): string | undefined {
  const urn = plan.steps[0]?.urn;
  try {
    return urn ? parseUrn(urn).stack : undefined;
  } catch {
    return undefined;
  }
}

/** Renders the operator runbook as Markdown. */
export function renderRunbook(plan: ImpactPlan, opts: RunbookOptions): string {
  const t = RUNBOOK_TEXTS[opts.lang];
  const stack = opts.stack ?? stackOf(plan) ?? "prod";
  const outputs = plan.outputsAfter ?? plan.outputsBefore ?? {};
  const affected = userServices(plan);
  const lines: string[] = [`# ${t.title(stack)}`, ""];
  lines.push(`**${t.window}:** ${describeWindow(opts.window, opts.lang)}`, "");
  if (plan.estimate) {
    lines.push(`_${t.estimate}_`, "");
  }

  lines.push(`## ${t.planHeading}`, "");
  if (affected.length === 0) {
    lines.push(t.noUserImpact, "");
  } else {
    lines.push(`| ${t.planHead.join(" | ")} |`, "|---|---|---|");
    for (const s of affected) {
      lines.push(`| ${s.service} | ${s.class} | ${fmtDuration(s.downtimeSeconds, opts.lang)} |`);
    }
    lines.push("");
  }
  const risky = plan.steps.filter((s) => s.class === "data-risk");
  if (risky.length > 0) {
    lines.push(`**${t.dataRisk}**`, "");
    for (const s of risky) {
      lines.push(`- \`${s.name}\` (${s.op}): \`${s.urn}\``);
    }
    lines.push("");
  }

  lines.push(`## ${t.beforeHeading}`, "");
  let n = 1;
  const services = new Set([...affected.map((s) => s.service), ...risky.map((s) => s.service)]);
  const nasHost =
    (outputs.nas as { hosts?: Record<string, string> } | undefined)?.hosts?.[
      outputs.services?.nas?.activeSide ?? "primary"
    ] ?? "nas";
  const jobs = (outputs.nas?.jobs ?? []).filter((j) => j.service && services.has(j.service));
  for (const j of jobs) {
    lines.push(`${n++}. ${t.backupJob(j.name ?? "?", nasHost)}`);
  }
  if (outputs.nas?.backupPlanId && services.size > 0) {
    lines.push(`${n++}. ${t.backupPlan(outputs.nas.backupPlanId)}`);
  }
  if (jobs.length === 0 && services.size > 0) {
    lines.push(`${n++}. ${t.noBackups}`);
  }
  if (affected.length > 0) {
    lines.push(`${n++}. ${t.announce}`);
  }
  lines.push(
    `${n++}. ${t.previewStep}`,
    "",
    "   ```sh",
    `   pulumi preview --stack ${stack} --diff`,
    `   pulumi preview --stack ${stack} --json > preview.json`,
    "   npm run impact -- preview.json",
    "   ```",
    "",
  );

  lines.push(`## ${t.applyHeading}`, "");
  const flush = mailServersToFlush(plan);
  if (flush.length > 0) {
    flush.forEach((side, i) => lines.push(`${i + 1}. ${t.flushBeforeApply(side)}`));
    lines.push("");
  }
  lines.push(t.apply, "", "```sh", `pulumi up --stack ${stack}`, "```", "");

  lines.push(`## ${t.checksHeading}`, "");
  for (const s of affected) {
    const name = outputs.services?.[s.service]?.dnsName;
    if (name) {
      lines.push(`- ${t.checkService(s.service, name)}`);
    }
  }
  const mailSides = activeSides(plan, "mail");
  if (mailSides.before && mailSides.after && mailSides.before !== mailSides.after) {
    lines.push(`- ${t.flushAfterMove(mailSides.before)}`);
  }
  lines.push(`- ${t.checkMonitoring}`, "");

  lines.push(`## ${t.rollbackHeading}`, "", t.rollbackIntro, "");
  n = 1;
  for (const svc of flippedServices(plan)) {
    for (const step of t.syncBack[svc] ?? []) {
      lines.push(`${n++}. ${step}`);
    }
  }
  const settings = fallbackSettings(plan);
  if (settings.length > 0) {
    lines.push(
      `${n++}. ${t.revertSettings}`,
      "",
      "   ```sh",
      ...settings.map((c) => `   ${c}`),
      "   ```",
      "",
    );
    lines.push(`   ${t.revertFile(stack)}`, "");
  } else {
    lines.push(`${n++}. ${t.restoreFile(stack)}`);
  }
  lines.push(
    `${n++}. ${t.revertPreview}`,
    "",
    "   ```sh",
    `   pulumi preview --stack ${stack} --diff`,
    `   pulumi preview --stack ${stack} --json > rollback-preview.json`,
    "   npm run impact -- rollback-preview.json",
    `   pulumi up --stack ${stack}`,
    "   ```",
    "",
  );
  if (risky.length > 0) {
    lines.push(`${n++}. ${t.restoreData}`, "");
  }

  lines.push(`## ${t.contactsHeading}`, "");
  const contacts = contactsOf(plan, opts.contacts);
  if (contacts.length === 0) {
    lines.push(t.noContacts);
  }
  for (const c of contacts) {
    lines.push(
      `- ${c.name} (${c.role})${c.phone ? `, ${c.phone}` : ""}${c.email ? `, ${c.email}` : ""}`,
    );
  }
  return lines.join("\n") + "\n";
}
