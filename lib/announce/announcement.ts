// The maintenance announcement the team publishes before a window, in English or Bahasa
// Indonesia, rendered from the impact plan: when, which services, what users will notice, how
// long, which backup is taken first, how we go back if it goes wrong, and whom to call. Pure:
// scripts/impact.ts writes the file; tests render it directly.
import {
  Contact,
  ImpactClass,
  ImpactPlan,
  MaintenanceWindow,
  SERVICES,
  ServiceImpact,
  StackOutputs,
  fmtDuration,
  parseUrn,
} from "../impact/impact-plan";

export type Lang = "en" | "id";

export interface AnnouncementOptions {
  lang: Lang;
  /** Defaults to "to be scheduled". */
  window?: MaintenanceWindow;
  /** Defaults to the contacts in the stack outputs, else none. */
  contacts?: Contact[];
  /** Stack name for the commands. Defaults to the stack in the plan's URNs, else "prod". */
  stack?: string;
}

interface Texts {
  title: (services: string) => string;
  when: string;
  toBeScheduled: string;
  affected: string;
  expected: (d: string) => string;
  noUserImpact: string;
  noticeHeading: string;
  tableHead: [string, string, string];
  unaffectedHeading: string;
  unaffected: (list: string) => string;
  backupHeading: string;
  backupJob: (job: {
    name: string;
    service: string;
    every: string;
    kept: string;
    target: string;
  }) => string;
  backupPlan: (id: string) => string;
  noBackups: string;
  dataRisk: (names: string) => string;
  fallbackHeading: string;
  fallbackIntro: string;
  fallbackConfig: string;
  fallbackFile: (stack: string) => string;
  fallbackCheck: string;
  fallbackData: string;
  contactsHeading: string;
  contactsHead: [string, string, string, string];
  noContacts: string;
  estimate: string;
  serviceName: Record<string, string>;
  notice: Record<string, Partial<Record<ImpactClass, string>>>;
  genericNotice: Record<ImpactClass, string>;
  months: string[];
  days: string[];
  upTo: (d: string) => string;
  untilDone: string;
}

const EN: Texts = {
  title: (s) => `Scheduled maintenance: ${s}`,
  when: "When",
  toBeScheduled: "to be scheduled (we will confirm the date and time)",
  affected: "Services affected",
  expected: (d) =>
    `Expected interruption: ${d} per service, within the window; the rest of the window the services work normally.`,
  noUserImpact: "No service users reach is affected; this notice is for information only.",
  noticeHeading: "What you will notice",
  tableHead: ["Service", "What you will notice", "Expected interruption"],
  unaffectedHeading: "Not affected",
  unaffected: (l) => `${l} keep working as usual.`,
  backupHeading: "Backup taken before the work",
  backupJob: (j) =>
    `NAS backup job \`${j.name}\` (${j.service}, normally every ${j.every}, kept ${j.kept}, to ${j.target}) is run once more just before the window starts.`,
  backupPlan: (id) =>
    `An on-demand AWS Backup recovery point of each affected server's data volume is taken under backup plan \`${id}\`.`,
  noBackups:
    "The stack outputs list no NAS backup jobs: the change owner takes a manual backup of each affected server's data volume before starting.",
  dataRisk: (n) =>
    `This work replaces resources that hold data (${n}). If anything is missing afterwards, it is restored from the backup above.`,
  fallbackHeading: "If something goes wrong: going back",
  fallbackIntro:
    "We go back to the previous configuration, reviewed the same way as the change itself:",
  fallbackConfig: "Set the previous values again:",
  fallbackFile: (s) =>
    `Or restore the stack file as it was before the change: \`git checkout <commit before the change> -- Pulumi.${s}.yaml\`.`,
  fallbackCheck: "Then check the preview (only the reverted resources may change) and apply it:",
  fallbackData:
    "Data written while the new configuration was active stays where it was written and is synced back before the old side takes over again.",
  contactsHeading: "Contacts",
  contactsHead: ["Name", "Role", "Phone", "Email"],
  noContacts: "No contacts are configured (hastack:contacts); ask the IT team.",
  estimate:
    "Durations are estimates from the stack's own settings (DNS TTL, health-check timing, server boot time).",
  serviceName: {
    mail: "Email",
    pbx: "Office telephones (PBX)",
    mysql: "Database (business applications, call records)",
    nas: "Backups (NAS)",
  },
  notice: {
    mail: {
      brief:
        "Mail may arrive a few minutes late: it is queued, not lost. Mail apps reconnect to IMAP by themselves; if one shows an error, close and reopen it.",
      outage:
        "Email cannot be sent or read during the interruption. Mail sent to us waits at the senders' servers and arrives afterwards.",
    },
    pbx: {
      brief:
        "Calls in progress may drop. Desk phones and softphones re-register by themselves within a few minutes; call again if a call drops.",
      outage:
        "No calls in or out during the interruption; phones show no service until they re-register by themselves afterwards.",
    },
    mysql: {
      brief:
        "Applications lose their database connection for a moment and reconnect; a save that was in progress may need to be repeated.",
      outage:
        "Applications that use the database (including call records) do not work during the interruption.",
    },
    nas: {
      brief: "Backups pause for a moment and continue by themselves.",
      outage:
        "Backups do not run during the window; the next scheduled backup runs as usual afterwards.",
    },
  },
  genericNotice: {
    none: "Nothing noticeable.",
    brief: "A short interruption; connections recover by themselves.",
    outage: "The service is unavailable during the interruption.",
    "data-risk": "The service is unavailable during the interruption.",
  },
  months: [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
  ],
  days: ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"],
  upTo: (d) => `up to ${d}`,
  untilDone: "until the work is finished",
};

const ID: Texts = {
  title: (s) => `Pemberitahuan Pemeliharaan Terjadwal: ${s}`,
  when: "Waktu",
  toBeScheduled: "akan dijadwalkan (tanggal dan jam akan kami konfirmasi)",
  affected: "Layanan yang terdampak",
  expected: (d) =>
    `Perkiraan gangguan: ${d} untuk setiap layanan, di dalam jendela waktu tersebut; di luar itu layanan berjalan seperti biasa.`,
  noUserImpact:
    "Tidak ada layanan yang digunakan pengguna yang terdampak; pemberitahuan ini hanya untuk informasi.",
  noticeHeading: "Yang akan Anda alami",
  tableHead: ["Layanan", "Yang akan Anda alami", "Perkiraan gangguan"],
  unaffectedHeading: "Tidak terdampak",
  unaffected: (l) => `${l} tetap berjalan seperti biasa.`,
  backupHeading: "Pencadangan sebelum pekerjaan dimulai",
  backupJob: (j) =>
    `Tugas pencadangan NAS \`${j.name}\` (${j.service}, biasanya setiap ${j.every}, disimpan ${j.kept}, ke ${j.target}) dijalankan sekali lagi tepat sebelum jendela pemeliharaan dimulai.`,
  backupPlan: (id) =>
    `Titik pemulihan AWS Backup sesuai permintaan diambil untuk volume data setiap server yang terdampak, di bawah rencana pencadangan \`${id}\`.`,
  noBackups:
    "Keluaran stack tidak mencantumkan tugas pencadangan NAS: penanggung jawab perubahan mengambil cadangan manual volume data setiap server yang terdampak sebelum mulai.",
  dataRisk: (n) =>
    `Pekerjaan ini mengganti sumber daya yang menyimpan data (${n}). Jika ada data yang hilang setelahnya, data dipulihkan dari cadangan di atas.`,
  fallbackHeading: "Jika terjadi masalah: kembali ke konfigurasi sebelumnya",
  fallbackIntro:
    "Kami kembali ke konfigurasi sebelumnya, dengan peninjauan yang sama seperti perubahan ini:",
  fallbackConfig: "Setel kembali nilai sebelumnya:",
  fallbackFile: (s) =>
    `Atau pulihkan berkas stack seperti sebelum perubahan: \`git checkout <commit sebelum perubahan> -- Pulumi.${s}.yaml\`.`,
  fallbackCheck:
    "Lalu periksa pratinjaunya (hanya sumber daya yang dikembalikan yang boleh berubah) dan terapkan:",
  fallbackData:
    "Data yang ditulis selama konfigurasi baru aktif tetap tersimpan dan disinkronkan kembali sebelum sisi lama mengambil alih lagi.",
  contactsHeading: "Kontak",
  contactsHead: ["Nama", "Peran", "Telepon", "Email"],
  noContacts: "Belum ada kontak yang dikonfigurasi (hastack:contacts); silakan hubungi tim TI.",
  estimate:
    "Durasi di atas adalah perkiraan dari pengaturan stack itu sendiri (TTL DNS, interval pemeriksaan kesehatan, waktu menyala server).",
  serviceName: {
    mail: "Email",
    pbx: "Telepon kantor (PBX)",
    mysql: "Basis data (aplikasi bisnis, catatan panggilan)",
    nas: "Pencadangan data (NAS)",
  },
  notice: {
    mail: {
      brief:
        "Email masuk bisa terlambat beberapa menit: email diantrekan, tidak hilang. Aplikasi email akan tersambung kembali ke IMAP dengan sendirinya; jika muncul pesan galat, tutup lalu buka kembali aplikasinya.",
      outage:
        "Email tidak dapat dikirim maupun dibaca selama gangguan. Email yang dikirim kepada kita tertahan di server pengirim dan akan diterima setelahnya.",
    },
    pbx: {
      brief:
        "Panggilan yang sedang berlangsung bisa terputus. Pesawat telepon dan softphone akan mendaftar ulang secara otomatis dalam beberapa menit; silakan menelepon kembali jika panggilan terputus.",
      outage:
        "Tidak ada panggilan masuk maupun keluar selama gangguan; pesawat telepon menampilkan tidak ada layanan sampai mendaftar ulang secara otomatis setelahnya.",
    },
    mysql: {
      brief:
        "Aplikasi akan kehilangan koneksi ke basis data sesaat lalu tersambung kembali; penyimpanan yang sedang berjalan mungkin perlu diulang.",
      outage:
        "Aplikasi yang memakai basis data (termasuk catatan panggilan) tidak dapat digunakan selama gangguan.",
    },
    nas: {
      brief: "Pencadangan berhenti sesaat lalu berjalan kembali dengan sendirinya.",
      outage:
        "Pencadangan tidak berjalan selama pemeliharaan; pencadangan terjadwal berikutnya berjalan seperti biasa setelahnya.",
    },
  },
  genericNotice: {
    none: "Tidak ada yang terasa.",
    brief: "Gangguan singkat; koneksi pulih dengan sendirinya.",
    outage: "Layanan tidak tersedia selama gangguan.",
    "data-risk": "Layanan tidak tersedia selama gangguan.",
  },
  months: [
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
  ],
  days: ["Minggu", "Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu"],
  upTo: (d) => `paling lama ${d}`,
  untilDone: "sampai pekerjaan selesai",
};

export const TEXTS: Record<Lang, Texts> = { en: EN, id: ID };

/** Indonesian time-zone names by UTC offset, the way people here say the time. */
const ZONE_NAMES: Record<number, string> = { 420: "WIB", 480: "WITA", 540: "WIT" };

/** `Sabtu, 5 Juli 2025 22.00 WIB` / `Saturday 5 July 2025, 22:00 (UTC+07:00)`. */
export function formatWhen(date: Date, offsetMinutes: number, lang: Lang): string {
  const t = TEXTS[lang];
  const local = new Date(date.getTime() + offsetMinutes * 60_000);
  const hh = String(local.getUTCHours()).padStart(2, "0");
  const mm = String(local.getUTCMinutes()).padStart(2, "0");
  const sign = offsetMinutes < 0 ? "-" : "+";
  const abs = Math.abs(offsetMinutes);
  const utc = `UTC${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
  const zone = ZONE_NAMES[offsetMinutes];
  const day = t.days[local.getUTCDay()];
  const date_ = `${local.getUTCDate()} ${t.months[local.getUTCMonth()]} ${local.getUTCFullYear()}`;
  if (lang === "id") {
    return `${day}, ${date_} pukul ${hh}.${mm} ${zone ?? utc}`;
  }
  return `${day} ${date_}, ${hh}:${mm} (${zone ? `${zone}, ` : ""}${utc})`;
}

/** The commands that restore the previous configuration, from the outputs before and after. */
export function fallbackSettings(plan: ImpactPlan): string[] {
  const before = plan.outputsBefore?.services ?? {};
  const after = plan.outputsAfter?.services ?? {};
  const cmds: string[] = [];
  for (const svc of SERVICES) {
    const b = before[svc];
    const a = after[svc];
    if (b?.activeSide && a?.activeSide && b.activeSide !== a.activeSide) {
      cmds.push(`pulumi config set --path 'hastack:${svc}.active' ${b.activeSide}`);
    }
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

function stackOf(plan: ImpactPlan): string | undefined {
  const urn = plan.steps[0]?.urn;
  return urn ? parseUrn(urn).stack : undefined;
}

function userServices(plan: ImpactPlan): ServiceImpact[] {
  return plan.services.filter(
    (s) => (SERVICES as readonly string[]).includes(s.service) && s.class !== "none",
  );
}

/** Renders the announcement as Markdown. */
export function renderAnnouncement(plan: ImpactPlan, opts: AnnouncementOptions): string {
  const t = TEXTS[opts.lang];
  const outputs: StackOutputs = plan.outputsAfter ?? plan.outputsBefore ?? {};
  const contacts = opts.contacts ?? (Array.isArray(outputs.contacts) ? outputs.contacts : []);
  const stack = opts.stack ?? stackOf(plan) ?? "prod";
  const affected = userServices(plan);
  const names = affected.map((s) => t.serviceName[s.service] ?? s.service);
  const lines: string[] = [];
  lines.push(`# ${t.title(names.length > 0 ? names.join(", ") : "—")}`, "");
  const when = opts.window
    ? `${formatWhen(opts.window.start, opts.window.offsetMinutes, opts.lang)} – ${formatWhen(opts.window.end, opts.window.offsetMinutes, opts.lang)}`
    : t.toBeScheduled;
  lines.push(`**${t.when}:** ${when}  `);
  lines.push(`**${t.affected}:** ${names.length > 0 ? names.join(", ") : "—"}`, "");
  if (affected.length === 0) {
    lines.push(t.noUserImpact, "");
  } else {
    const downs = affected.map((s) => s.downtimeSeconds);
    const longest = downs.includes(null) ? null : Math.max(...(downs as number[]));
    lines.push(
      t.expected(longest === null ? t.untilDone : t.upTo(fmtDuration(longest, opts.lang))),
      "",
    );
    lines.push(`## ${t.noticeHeading}`, "");
    lines.push(`| ${t.tableHead.join(" | ")} |`, "|---|---|---|");
    for (const s of affected) {
      const cls: ImpactClass = s.class === "data-risk" ? "outage" : s.class;
      const notice = t.notice[s.service]?.[cls] ?? t.genericNotice[cls];
      const d =
        s.downtimeSeconds === null
          ? t.untilDone
          : t.upTo(fmtDuration(s.downtimeSeconds, opts.lang));
      lines.push(`| ${t.serviceName[s.service] ?? s.service} | ${notice} | ${d} |`);
    }
    lines.push("", `_${t.estimate}_`, "");
  }
  const unaffected = SERVICES.filter(
    (svc) =>
      !affected.some((s) => s.service === svc) &&
      (plan.outputsAfter?.services?.[svc] || plan.outputsBefore?.services?.[svc]),
  ).map((svc) => t.serviceName[svc]);
  if (unaffected.length > 0) {
    lines.push(`## ${t.unaffectedHeading}`, "", t.unaffected(unaffected.join(", ")), "");
  }

  lines.push(`## ${t.backupHeading}`, "");
  const affectedSet = new Set(affected.map((s) => s.service));
  const jobs = (outputs.nas?.jobs ?? []).filter((j) => j.service && affectedSet.has(j.service));
  for (const j of jobs) {
    lines.push(
      `- ${t.backupJob({
        name: j.name ?? "?",
        service: t.serviceName[j.service!] ?? j.service!,
        every:
          j.intervalHours !== undefined
            ? opts.lang === "id"
              ? `${j.intervalHours} jam`
              : `${j.intervalHours} h`
            : "?",
        kept:
          j.retentionDays !== undefined
            ? opts.lang === "id"
              ? `${j.retentionDays} hari`
              : `${j.retentionDays} days`
            : "?",
        target: j.target ?? "NAS",
      })}`,
    );
  }
  if (outputs.nas?.backupPlanId) {
    lines.push(`- ${t.backupPlan(outputs.nas.backupPlanId)}`);
  }
  if (jobs.length === 0 && !outputs.nas?.backupPlanId) {
    lines.push(t.noBackups);
  }
  const risky = plan.steps.filter((s) => s.class === "data-risk").map((s) => `\`${s.name}\``);
  if (risky.length > 0) {
    lines.push("", `**${t.dataRisk(risky.join(", "))}**`);
  }
  lines.push("");

  lines.push(`## ${t.fallbackHeading}`, "", t.fallbackIntro, "");
  const settings = fallbackSettings(plan);
  if (settings.length > 0) {
    lines.push(
      `1. ${t.fallbackConfig}`,
      "",
      "   ```sh",
      ...settings.map((c) => `   ${c}`),
      "   ```",
      "",
    );
    lines.push(`   ${t.fallbackFile(stack)}`, "");
  } else {
    lines.push(`1. ${t.fallbackFile(stack)}`, "");
  }
  lines.push(
    `2. ${t.fallbackCheck}`,
    "",
    "   ```sh",
    `   pulumi preview --stack ${stack} --diff`,
    `   pulumi preview --stack ${stack} --json > fallback-preview.json`,
    `   npm run impact -- fallback-preview.json`,
    `   pulumi up --stack ${stack}`,
    "   ```",
    "",
    t.fallbackData,
    "",
  );

  lines.push(`## ${t.contactsHeading}`, "");
  if (contacts.length === 0) {
    lines.push(t.noContacts);
  } else {
    lines.push(`| ${t.contactsHead.join(" | ")} |`, "|---|---|---|---|");
    for (const c of contacts) {
      lines.push(`| ${c.name} | ${c.role} | ${c.phone ?? "—"} | ${c.email ?? "—"} |`);
    }
  }
  return lines.join("\n") + "\n";
}
