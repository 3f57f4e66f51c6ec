// Two documents from one impact plan (issue 15), each in English or Bahasa Indonesia:
// - the ANNOUNCEMENT for the people who use the services: when, how long, what they will
//   notice, what to do meanwhile, whom to call. No command, path, resource id or URN — staff
//   cannot use them and they leak how the stack is built.
// - the operator RUNBOOK for the change (runbook.ts): steps, checks and the full rollback per
//   service, with the sync-back and unfence that README's Fallback section requires.
// Pure: the impact CLI writes the files; tests render every class of change into both.
import {
  Contact,
  ImpactClass,
  ImpactPlan,
  MaintenanceWindow,
  SERVICES,
  ServiceImpact,
  StackOutputs,
  fmtDuration,
} from "../impact/impact-plan";

export type Lang = "en" | "id";

export interface AnnouncementOptions {
  lang: Lang;
  /** Defaults to "to be scheduled". */
  window?: MaintenanceWindow;
  /** Defaults to the contacts in the stack outputs, else none. */
  contacts?: Contact[];
}

type UserClass = Exclude<ImpactClass, "none" | "data-risk">;

interface StaffTexts {
  title: (services: string) => string;
  greeting: string;
  intro: string;
  when: string;
  toBeScheduled: string;
  howLong: string;
  expected: (d: string) => string;
  untilDone: string;
  upTo: (d: string) => string;
  nothingNoticeable: string;
  noticeHeading: string;
  meanwhileHeading: string;
  unaffectedHeading: string;
  unaffected: (list: string) => string;
  backupTaken: string;
  estimate: string;
  contactsHeading: string;
  contactsIntro: string;
  contactsHead: [string, string, string, string];
  noContacts: string;
  closing: string;
  serviceName: Record<string, string>;
  notice: Record<string, Record<UserClass, string>>;
  meanwhile: Record<string, string>;
  genericNotice: Record<UserClass, string>;
  genericMeanwhile: string;
  months: string[];
  days: string[];
}

const EN: StaffTexts = {
  title: (s) => `Scheduled maintenance: ${s}`,
  greeting: "Dear colleagues,",
  intro: "the IT team will carry out maintenance on our office systems.",
  when: "When",
  toBeScheduled: "to be scheduled (we will confirm the date and time)",
  howLong: "How long",
  expected: (d) =>
    `${d} for each service, within the time above; the rest of the time everything works as usual.`,
  untilDone: "until the work is finished",
  upTo: (d) => `Up to ${d}`,
  nothingNoticeable:
    "You should not notice anything: the services you use keep working during the work. We send this notice so that you know it is happening.",
  noticeHeading: "What you will notice",
  meanwhileHeading: "What to do meanwhile",
  unaffectedHeading: "Not affected",
  unaffected: (l) => `${l} keep working as usual.`,
  backupTaken: "Before the work starts, we take a fresh backup of the data involved.",
  estimate: "The times are estimates; we will let you know when the work is finished.",
  contactsHeading: "Who to call",
  contactsIntro: "If you have questions, or something does not work afterwards, please contact:",
  contactsHead: ["Name", "Role", "Phone", "Email"],
  noContacts: "Please contact the IT team.",
  closing: "We apologise for the inconvenience and thank you for your understanding.",
  serviceName: {
    mail: "Email",
    pbx: "Office telephones",
    mysql: "Office applications (database)",
    nas: "Data backups",
  },
  notice: {
    mail: {
      brief:
        "Incoming mail may arrive a few minutes late; nothing is lost. Your mail app reconnects by itself; if it shows an error, close it and open it again.",
      outage:
        "You cannot send or read email during the interruption. Mail sent to us waits at the sender's side and arrives afterwards.",
    },
    pbx: {
      brief:
        "A call in progress may drop. Desk phones and softphones reconnect by themselves within a few minutes; if your call drops, please call again.",
      outage:
        "You cannot make or receive calls during the interruption. The phones come back by themselves afterwards.",
    },
    mysql: {
      brief:
        "Office applications may lose their connection for a moment and reconnect; something you were saving at that moment may need to be saved again.",
      outage:
        "Office applications that use the database, including call records, cannot be used during the interruption.",
    },
    nas: {
      brief: "Backups pause for a moment and continue by themselves.",
      outage: "Backups pause during the work and run again on their usual schedule afterwards.",
    },
  },
  meanwhile: {
    mail: "Save important messages as drafts before the start. For anything urgent, please phone.",
    pbx: "Use your mobile phone for urgent calls.",
    mysql: "Save your work before the start and hold off entering data until the service is back.",
    nas: "Nothing; please keep working as usual.",
  },
  genericNotice: {
    brief: "A short interruption; connections recover by themselves.",
    outage: "The service cannot be used during the interruption.",
  },
  genericMeanwhile: "Save your work before the start.",
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
};

const ID: StaffTexts = {
  title: (s) => `Pemberitahuan Pemeliharaan Terjadwal: ${s}`,
  greeting: "Yth. Bapak/Ibu rekan kerja,",
  intro: "tim TI akan melakukan pemeliharaan sistem kantor.",
  when: "Waktu",
  toBeScheduled: "akan kami umumkan kemudian (tanggal dan jam menyusul)",
  howLong: "Lama gangguan",
  expected: (d) =>
    `${d} untuk setiap layanan, dalam rentang waktu di atas. Di luar itu, semua layanan berjalan seperti biasa.`,
  untilDone: "sampai pekerjaan selesai",
  upTo: (d) => `Paling lama ${d}`,
  nothingNoticeable:
    "Bapak/Ibu tidak akan merasakan gangguan: layanan yang biasa digunakan tetap berjalan selama pekerjaan. Pemberitahuan ini kami sampaikan agar Bapak/Ibu mengetahuinya.",
  noticeHeading: "Yang akan Bapak/Ibu alami",
  meanwhileHeading: "Yang perlu Bapak/Ibu lakukan",
  unaffectedHeading: "Tidak terpengaruh",
  unaffected: (l) => `${l} tetap dapat digunakan seperti biasa.`,
  backupTaken: "Sebelum pekerjaan dimulai, kami membuat cadangan terbaru dari data yang terkait.",
  estimate:
    "Waktu di atas adalah perkiraan; kami akan mengabari Bapak/Ibu setelah pekerjaan selesai.",
  contactsHeading: "Kontak",
  contactsIntro:
    "Jika ada pertanyaan, atau ada yang tidak berfungsi setelah pemeliharaan, silakan hubungi:",
  contactsHead: ["Nama", "Jabatan", "Telepon", "Email"],
  noContacts: "Silakan hubungi tim TI.",
  closing: "Mohon maaf atas ketidaknyamanannya. Terima kasih atas pengertian Bapak/Ibu.",
  serviceName: {
    mail: "Email",
    pbx: "Telepon kantor",
    mysql: "Aplikasi kantor (basis data)",
    nas: "Pencadangan data",
  },
  notice: {
    mail: {
      brief:
        "Email masuk mungkin terlambat beberapa menit, tetapi tidak akan hilang. Aplikasi email akan tersambung kembali dengan sendirinya; jika muncul pesan kesalahan, tutup lalu buka kembali aplikasinya.",
      outage:
        "Selama gangguan, email tidak dapat dikirim maupun dibuka. Email dari luar akan tertahan sementara di server pengirim dan tetap masuk setelah layanan pulih.",
    },
    pbx: {
      brief:
        "Panggilan yang sedang berlangsung bisa terputus. Telepon meja dan softphone akan tersambung kembali dengan sendirinya dalam beberapa menit; silakan hubungi ulang jika panggilan terputus.",
      outage:
        "Selama gangguan, Bapak/Ibu tidak dapat menelepon maupun menerima telepon. Telepon akan aktif kembali dengan sendirinya setelahnya.",
    },
    mysql: {
      brief:
        "Aplikasi kantor bisa terputus sebentar lalu tersambung kembali; data yang sedang disimpan saat itu mungkin perlu disimpan ulang.",
      outage:
        "Selama gangguan, aplikasi kantor yang memakai basis data, termasuk catatan panggilan telepon, tidak dapat digunakan.",
    },
    nas: {
      brief: "Pencadangan data berhenti sebentar lalu berjalan lagi dengan sendirinya.",
      outage:
        "Pencadangan data dihentikan sementara selama pekerjaan dan berjalan lagi sesuai jadwal setelahnya.",
    },
  },
  meanwhile: {
    mail: "Simpan email penting sebagai draf sebelum pemeliharaan dimulai. Untuk urusan mendesak, silakan menelepon.",
    pbx: "Untuk panggilan mendesak, silakan gunakan telepon seluler.",
    mysql:
      "Simpan pekerjaan Bapak/Ibu sebelum pemeliharaan dimulai, dan tunda input data sampai layanan pulih.",
    nas: "Tidak ada; silakan bekerja seperti biasa.",
  },
  genericNotice: {
    brief: "Gangguan singkat; sambungan pulih dengan sendirinya.",
    outage: "Layanan tidak dapat digunakan selama gangguan.",
  },
  genericMeanwhile: "Simpan pekerjaan Bapak/Ibu sebelum pemeliharaan dimulai.",
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
};

export const TEXTS: Record<Lang, StaffTexts> = { en: EN, id: ID };

/** Indonesian time-zone names by UTC offset, the way people here say the time. */
const ZONE_NAMES: Record<number, string> = { 420: "WIB", 480: "WITA", 540: "WIT" };

/** `Sabtu, 5 Juli 2025 pukul 22.00 WIB` / `Saturday 5 July 2025, 22:00 (WIB, UTC+07:00)`. */
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

/** The window as people read it, or "to be scheduled". */
export function describeWindow(window: MaintenanceWindow | undefined, lang: Lang): string {
  if (!window) {
    return TEXTS[lang].toBeScheduled;
  }
  return `${formatWhen(window.start, window.offsetMinutes, lang)} – ${formatWhen(window.end, window.offsetMinutes, lang)}`;
}

/** The services users reach that the plan interrupts (brief or worse). */
export function userServices(plan: ImpactPlan): ServiceImpact[] {
  return plan.services.filter(
    (s) => (SERVICES as readonly string[]).includes(s.service) && s.class !== "none",
  );
}

/** Contacts: given, else the stack outputs', else none. */
export function contactsOf(plan: ImpactPlan, given?: Contact[]): Contact[] {
  const outputs: StackOutputs = plan.outputsAfter ?? plan.outputsBefore ?? {};
  return given ?? (Array.isArray(outputs.contacts) ? outputs.contacts : []);
}

function duration(seconds: number | null, lang: Lang): string {
  const t = TEXTS[lang];
  return seconds === null ? t.untilDone : t.upTo(fmtDuration(seconds, lang));
}

/** Renders the staff announcement as Markdown: no commands, paths, ids or URNs. */
export function renderAnnouncement(plan: ImpactPlan, opts: AnnouncementOptions): string {
  const t = TEXTS[opts.lang];
  const affected = userServices(plan);
  const names = affected.map((s) => t.serviceName[s.service] ?? s.service);
  const holdsData = plan.steps.some((s) => s.class === "data-risk");
  const lines: string[] = [];
  lines.push(`# ${t.title(names.length > 0 ? names.join(", ") : t.serviceName.nas)}`, "");
  lines.push(`${t.greeting}`, "", `${t.intro}`, "");
  lines.push(`**${t.when}:** ${describeWindow(opts.window, opts.lang)}  `);
  if (affected.length === 0) {
    lines.push("", t.nothingNoticeable, "");
  } else {
    const downs = affected.map((s) => s.downtimeSeconds);
    const longest = downs.includes(null) ? null : Math.max(...(downs as number[]));
    lines.push(`**${t.howLong}:** ${t.expected(duration(longest, opts.lang))}`, "");
    lines.push(`## ${t.noticeHeading}`, "");
    for (const s of affected) {
      const cls: UserClass = s.class === "brief" ? "brief" : "outage";
      const notice = t.notice[s.service]?.[cls] ?? t.genericNotice[cls];
      lines.push(
        `- **${t.serviceName[s.service] ?? s.service}** (${duration(s.downtimeSeconds, opts.lang).toLowerCase()}): ${notice}`,
      );
    }
    lines.push("", `## ${t.meanwhileHeading}`, "");
    for (const s of affected) {
      lines.push(
        `- **${t.serviceName[s.service] ?? s.service}:** ${t.meanwhile[s.service] ?? t.genericMeanwhile}`,
      );
    }
    lines.push("", `_${t.estimate}_`, "");
  }
  if (holdsData) {
    lines.push(t.backupTaken, "");
  }
  const unaffected = SERVICES.filter(
    (svc) =>
      !affected.some((s) => s.service === svc) &&
      (plan.outputsAfter?.services?.[svc] || plan.outputsBefore?.services?.[svc]),
  ).map((svc) => t.serviceName[svc]);
  if (affected.length > 0 && unaffected.length > 0) {
    lines.push(`## ${t.unaffectedHeading}`, "", t.unaffected(unaffected.join(", ")), "");
  }
  lines.push(`## ${t.contactsHeading}`, "");
  const contacts = contactsOf(plan, opts.contacts);
  if (contacts.length === 0) {
    lines.push(t.noContacts);
  } else {
    lines.push(t.contactsIntro, "");
    lines.push(`| ${t.contactsHead.join(" | ")} |`, "|---|---|---|---|");
    for (const c of contacts) {
      lines.push(`| ${c.name} | ${c.role} | ${c.phone ?? "—"} | ${c.email ?? "—"} |`);
    }
  }
  lines.push("", t.closing);
  return lines.join("\n") + "\n";
}
