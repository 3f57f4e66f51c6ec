// The planned move of a domain's mail from an old server to the new pair, as nine reviewed
// stack updates (issues 3 and 18). Each phase is pure data here — the MX values, which records and
// one-shot commands exist — so the component only declares what `migrationPlan` says, and the
// tests prove per phase and per transition that each step touches only what it needs.
//
// MX preferences (lower = preferred), with the old server's preference p and raised value r
// (r ≥ p + 2, so both new servers fit below r from step 6):
//   phase 0:   no migration — the pair alone at 10/20. With an old server configured, phase 0 is
//              refused (it would hand the domain's mail to servers whose users are not imported
//              yet): a move starts at phase 1;
//   phases 1–4: the old server alone at p (the new servers are built, filled and tested
//              under their own names mx1/mx2, no mail is routed to them yet);
//   phase 5:   the old server alone at r;
//   phases 6–7: active p, standby between p and r, old r — new mail lands on the new servers, and the old
//              server takes mail only while BOTH new servers are down (issue 18: the standby
//              used to come after the old server, so mail reached the old server after its
//              final sync);
//   phases 8–9: the pair alone at 10/20, as without migration (9 → 0 changes no record). Step 8 takes the old server out of the MX set while
//              it still accepts mail (senders holding the previous MX set for one TTL still
//              reach it), so no phase ever names a host that stopped accepting mail; step 9
//              retires it: its check refuses while it still accepts SMTP or holds mail the new
//              servers lack, then its A record and SPF entry go (power it off after step 9).
// The old server's MX entry names its own A record (`mx-old` by default) because its host
// name is the new pair's service name from phase 1 on ("same hostname, only the IP differs").

/** One step of the move, as issue 3 numbers and titles it. */
export interface MigrationStep {
  phase: number;
  title: string;
}

export const MIGRATION_STEPS: readonly MigrationStep[] = [
  { phase: 1, title: "new server built with the same hostname/domain as the old one" },
  { phase: 2, title: "users and passwords imported from the old server" },
  { phase: 3, title: "mailboxes synced old → new" },
  { phase: 4, title: "new server tested (SMTP banner, IMAP login, a delivery)" },
  { phase: 5, title: "old MX preference raised" },
  { phase: 6, title: "new MX added with a lower number than the old one (new mail lands there)" },
  { phase: 7, title: "mailboxes synced again old → new (mail that arrived meanwhile)" },
  // Classic order: 8 shut down, 9 remove the MX. hastack removes the MX first, while the old
  // server still accepts mail: a shut-down MX costs every sender a timeout, and mail it took
  // after the last sync would be stranded on it.
  { phase: 8, title: "old MX removed (the old server still accepts mail while caches expire)" },
  {
    phase: 9,
    title:
      "old server shut down (once it stopped accepting mail and the new servers hold all of it)",
  },
];

export const LAST_PHASE = 9;

/** The server being replaced (hastack:mail.migration.oldServer). */
export interface OldServer {
  /** FQDN; must equal the new pair's service name (same hostname, only the IP differs). */
  hostname: string;
  ip: string;
  /** Its MX preference before the move. */
  mxPreference: number;
  /** What step 5 raises it to; at least mxPreference + 2 (both new servers fit below it). */
  raisedPreference: number;
  /** Label of the A record its MX entry points at. Defaults to "mx-old". */
  mxLabel?: string;
}

export interface MigrationPlanInput {
  phase: number;
  /** Required when phase > 0; refused at phase 0 (a move starts at phase 1). */
  oldServer?: OldServer;
  domain: string;
  /** FQDN of the new pair's active server (its per-server A record, e.g. mx1.example.co.id). */
  activeServer: string;
  /** FQDN of the other server (e.g. mx2.example.co.id). */
  standbyServer: string;
}

/** What exists in one phase. */
export interface MigrationPlan {
  phase: number;
  /** "no migration" or the step's title. */
  title: string;
  /** Values of the ONE MX record set of the domain, most preferred first ("0 mx1.example.co.id"). */
  mx: string[];
  /**
   * The old server's A record (target of its MX entry): while it is in the MX set, and one phase
   * longer (step 8), so senders that still hold the previous MX set for a TTL can reach it.
   */
  oldServerRecord?: { name: string; ip: string };
  /** The old server's IP is authorised in SPF (it may send — bounces, its queue — until step 9). */
  spfAuthorisesOldServer: boolean;
  /**
   * Whether the old server is expected to accept SMTP in this phase: yes until step 9, whose
   * check refuses while it still does. The MX set names it only in phases where this holds.
   */
  oldServerAcceptsMail: boolean;
  /** One-shot steps run on the new active server; each stays declared from its phase on. */
  steps: {
    /** Step 2: users and passwords loaded (from the SSM users parameter) and checked. */
    importUsers: boolean;
    /** Step 3: first old → new mailbox copy (one-way doveadm sync over IMAP, deletes nothing). */
    initialSync: boolean;
    /** Step 7: final old → new merge without deleting mail that landed on the new server. */
    finalSync: boolean;
    /**
     * Step 9: refuses while the old server still accepts SMTP, repeats the final sync (bounded)
     * and refuses while any old mailbox holds mail the new server lacks (counted); the step's
     * record changes wait for it.
     */
    retireOld: boolean;
  };
  /**
   * Clients (IMAP, submission) should still reach the old server under the shared host name:
   * until step 6 the new servers hold no live mail. (ServerPair owns that name's records; see
   * the MailPair warning.)
   */
  clientsOnOldServer: boolean;
}

/** Default MX preference of the active server when no migration was ever configured. */
export const DEFAULT_MX_PREFERENCE = 10;
/** Gap between a server and the next fallback in the MX set. */
export const MX_PREFERENCE_STEP = 10;
export const DEFAULT_OLD_MX_LABEL = "mx-old";

/** Thrown for a phase change the migration does not allow, or a phase that cannot be planned. */
export class MigrationPhaseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MigrationPhaseError";
  }
}

const PHASE_KEY = "hastack:mail.migration.phase";

/** The title of a phase: "no migration" for 0. */
export function phaseTitle(phase: number): string {
  if (phase === 0) {
    return "no migration";
  }
  const step = MIGRATION_STEPS.find((s) => s.phase === phase);
  if (!step) {
    throw new MigrationPhaseError(`${PHASE_KEY} must be 0–${LAST_PHASE}, got ${phase}`);
  }
  return step.title;
}

/** `step 3 (mailboxes synced old → new)` */
function describeStep(phase: number): string {
  return `step ${phase} (${phaseTitle(phase)})`;
}

function listSteps(phases: number[]): string {
  const parts = phases.map(describeStep);
  return parts.length <= 1
    ? parts.join("")
    : `${parts.slice(0, -1).join(", ")} and ${parts.at(-1)}`;
}

/**
 * Refuses a phase change that is not one reviewed step: more than one phase forward (naming
 * every skipped step) or more than one phase back (a rollback undoes one step at a time). The
 * same phase, one forward, one back, and 9 → 0 (the finished migration, with the old server
 * removed from the config) are allowed — except 1 → 0: phase 0 makes the new servers the
 * domain's MX, which would move the mail before any user is imported (issue 18). An unknown
 * previous phase (a new stack, or no state to read) is not checked.
 */
export function checkPhaseTransition(previous: number | undefined, next: number): void {
  phaseTitle(next);
  if (previous === undefined) {
    return;
  }
  phaseTitle(previous);
  if (previous === 1 && next === 0) {
    throw new MigrationPhaseError(
      `${PHASE_KEY} cannot move back from phase 1 to phase 0: phase 0 publishes the new servers ` +
        `as the domain's MX, which would move its mail before step 2 imports the users. To ` +
        `abandon the move, stay at phase 1 (mail stays on the old server).`,
    );
  }
  if (next === previous || next === previous + 1 || next === previous - 1) {
    return;
  }
  if (previous === LAST_PHASE && next === 0) {
    return;
  }
  if (next > previous) {
    const skipped: number[] = [];
    for (let p = previous + 1; p < next; p++) {
      skipped.push(p);
    }
    throw new MigrationPhaseError(
      `${PHASE_KEY} cannot move from phase ${previous} to phase ${next}: that skips ` +
        `${listSteps(skipped)}. Apply one phase at a time — the next is phase ${previous + 1} ` +
        `(${phaseTitle(previous + 1)}).`,
    );
  }
  const undone: number[] = [];
  for (let p = previous; p > next; p--) {
    if (p > 0) {
      undone.push(p);
    }
  }
  throw new MigrationPhaseError(
    `${PHASE_KEY} cannot move back from phase ${previous} to phase ${next}: that undoes ` +
      `${listSteps(undone)} at once. Roll back one phase at a time — the next is phase ` +
      `${previous - 1}${previous - 1 > 0 ? ` (${phaseTitle(previous - 1)})` : " (no migration)"}.`,
  );
}

/** Problems with the migration settings, each naming its config key; empty when fine. */
export function checkMigrationInput(input: MigrationPlanInput): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(input.phase) || input.phase < 0 || input.phase > LAST_PHASE) {
    problems.push(`${PHASE_KEY} must be a whole number 0–${LAST_PHASE}, got ${input.phase}`);
  }
  const old = input.oldServer;
  if (input.phase > 0 && !old) {
    problems.push(
      `hastack:mail.migration.oldServer is required when ${PHASE_KEY} is ${input.phase}`,
    );
  }
  if (old && input.phase === 0) {
    problems.push(PHASE_ZERO_WITH_OLD_SERVER);
  }
  if (old) {
    const raised = checkRaisedPreference(old.mxPreference, old.raisedPreference);
    if (raised) {
      problems.push(`hastack:mail.migration.oldServer.raisedPreference ${raised}`);
    }
    const oldRecord = oldServerRecordName(old, input.domain);
    for (const taken of [old.hostname, input.activeServer, input.standbyServer]) {
      if (oldRecord === taken.toLowerCase()) {
        problems.push(
          `hastack:mail.migration.oldServer.mxLabel names ${oldRecord}, which is already ` +
            `${taken === old.hostname ? "the service name" : "a new server's name"}; pick another label`,
        );
      }
    }
  }
  return problems;
}

/**
 * Phase 0 is "no migration": the new servers are the domain's MX. With an old server described
 * that would move its mail to servers whose users are not imported yet (issue 18).
 */
export const PHASE_ZERO_WITH_OLD_SERVER =
  `hastack:mail.migration.phase is 0 (no migration: the new servers would be the domain's only MX) ` +
  `but hastack:mail.migration.oldServer is set. To start moving mail from the old server set ` +
  `${PHASE_KEY} to 1 — mail stays on the old server until step 6; when there is no old server ` +
  `(or the move is finished at phase 9), remove hastack:mail.migration.oldServer`;

/**
 * The raise of step 5 must leave room for both new servers below the old one from step 6 (the
 * standby sits between them). Returns the problem ("must be …, got …") or undefined.
 */
export function checkRaisedPreference(mxPreference: number, raised: number): string | undefined {
  return raised >= mxPreference + 2
    ? undefined
    : `must be at least mxPreference + 2 (${mxPreference + 2}), so both new servers fit below ` +
        `the old one from step 6; got ${raised}`;
}

/** `mx-old.example.co.id` */
export function oldServerRecordName(old: OldServer, domain: string): string {
  return `${old.mxLabel ?? DEFAULT_OLD_MX_LABEL}.${domain}`.toLowerCase();
}

/** What phase `input.phase` declares. Throws MigrationPhaseError for invalid input. */
export function migrationPlan(input: MigrationPlanInput): MigrationPlan {
  const problems = checkMigrationInput(input);
  if (problems.length > 0) {
    throw new MigrationPhaseError(problems.join("; "));
  }
  const { phase, oldServer: old } = input;
  const mx = (pref: number, host: string): string => `${pref} ${host}`;
  const title = phaseTitle(phase);
  if (!old) {
    const p = DEFAULT_MX_PREFERENCE;
    return {
      phase,
      title,
      mx: [mx(p, input.activeServer), mx(p + MX_PREFERENCE_STEP, input.standbyServer)],
      spfAuthorisesOldServer: false,
      oldServerAcceptsMail: false,
      steps: { importUsers: false, initialSync: false, finalSync: false, retireOld: false },
      clientsOnOldServer: false,
    };
  }
  const p = old.mxPreference;
  const r = old.raisedPreference;
  const oldName = oldServerRecordName(old, input.domain);
  let values: string[];
  if (phase <= 4) {
    values = [mx(p, oldName)];
  } else if (phase === 5) {
    values = [mx(r, oldName)];
  } else if (phase <= 7) {
    // Both new servers before the old one: it takes mail only while both are down.
    values = [
      mx(p, input.activeServer),
      mx(Math.floor((p + r) / 2), input.standbyServer),
      mx(r, oldName),
    ];
  } else {
    // The pair alone, at the numbers of a stack without migration: 9 → 0 changes no record.
    values = [
      mx(DEFAULT_MX_PREFERENCE, input.activeServer),
      mx(DEFAULT_MX_PREFERENCE + MX_PREFERENCE_STEP, input.standbyServer),
    ];
  }
  return {
    phase,
    title,
    mx: values,
    oldServerRecord: phase <= 8 ? { name: oldName, ip: old.ip } : undefined,
    spfAuthorisesOldServer: phase <= 8,
    oldServerAcceptsMail: phase <= 8,
    steps: {
      importUsers: phase >= 2,
      initialSync: phase >= 3,
      finalSync: phase >= 7,
      retireOld: phase >= 9,
    },
    clientsOnOldServer: phase <= 5,
  };
}

/** The MX set parsed: preference and host, most preferred first (ties keep their order). */
export function parseMx(values: string[]): { preference: number; host: string }[] {
  return values
    .map((v) => {
      const [pref, host] = v.split(" ");
      return { preference: Number(pref), host };
    })
    .sort((a, b) => a.preference - b.preference);
}

/** Who is who in one phase's MX set, for the policies below. */
export interface MxHosts {
  /** The old server's MX host (its own A record), when a migration is configured. */
  old?: string;
  /** The new pair's MX hosts (mx1, mx2). */
  pair: string[];
  /** Whether the old server accepts SMTP in this phase. */
  oldAcceptsMail: boolean;
}

/**
 * The MX invariants of issue 18, as policies over one phase's MX set (what the plan declares or
 * what a DNS server answers); returns the violations, empty when compliant:
 *   - before step 6 no new server is (one of) the most preferred MX;
 *   - from step 6 on the old server is never preferred over, or tied with, a new one;
 *   - no MX names a host that no longer accepts mail.
 */
export function mxPolicyViolations(phase: number, mx: string[], hosts: MxHosts): string[] {
  const entries = parseMx(mx);
  const problems: string[] = [];
  const isNew = (host: string): boolean => hosts.pair.includes(host);
  if (entries.length === 0) {
    return [`phase ${phase}: the MX set is empty`];
  }
  if (hosts.old !== undefined) {
    const best = entries[0].preference;
    const preferred = entries.filter((e) => e.preference === best);
    if (phase < 6 && preferred.some((e) => isNew(e.host))) {
      problems.push(
        `phase ${phase}: new server ${preferred.find((e) => isNew(e.host))!.host} is the most ` +
          `preferred MX before step 6 (its users and mail are not moved yet)`,
      );
    }
    const old = entries.find((e) => e.host === hosts.old);
    if (phase >= 6 && old) {
      for (const e of entries.filter((x) => isNew(x.host))) {
        if (e.preference >= old.preference) {
          problems.push(
            `phase ${phase}: the old server (${old.preference}) is not behind new server ` +
              `${e.host} (${e.preference}): it would take mail while a new server is up`,
          );
        }
      }
    }
    if (old && !hosts.oldAcceptsMail) {
      problems.push(`phase ${phase}: the MX set names ${hosts.old}, which no longer accepts mail`);
    }
  }
  return problems;
}
