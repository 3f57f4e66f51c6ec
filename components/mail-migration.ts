// The planned move of a domain's mail from an old server to the new pair, as nine reviewed
// stack updates (issue 3). Each phase is pure data here — the MX values, which records and
// one-shot commands exist — so the component only declares what `migrationPlan` says, and the
// tests prove per phase and per transition that each step touches only what it needs.
//
// MX preferences (lower = preferred), with the old server's preference p and raised value r:
//   phase 0 (no migration) and 9: the pair alone, active p, standby p+10 — the new servers
//            take over the old server's number, so the finished migration equals phase 0;
//   phases 1–4: the old server alone at p (the new servers are built, filled and tested
//            under their own names mx1/mx2, no mail is routed to them yet);
//   phase 5:   the old server alone at r;
//   phases 6–8: active p (now preferred: new mail lands there), old r, standby r+10 — the old
//            server, still complete until step 8, stays the first fallback; the standby is last
//            so it never outranks a known-good server during the move.
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
  { phase: 8, title: "old server shut down" },
  { phase: 9, title: "old MX removed" },
];

export const LAST_PHASE = 9;

/** The server being replaced (hastack:mail.migration.oldServer). */
export interface OldServer {
  /** FQDN; must equal the new pair's service name (same hostname, only the IP differs). */
  hostname: string;
  ip: string;
  /** Its MX preference before the move. */
  mxPreference: number;
  /** What step 5 raises it to; greater than mxPreference. */
  raisedPreference: number;
  /** Label of the A record its MX entry points at. Defaults to "mx-old". */
  mxLabel?: string;
}

export interface MigrationPlanInput {
  phase: number;
  /** Required when phase > 0. */
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
  /** The old server's A record (target of its MX entry), when it is in the MX set. */
  oldServerRecord?: { name: string; ip: string };
  /** The old server's IP is authorised in SPF (it still sends mail until it is shut down). */
  spfAuthorisesOldServer: boolean;
  /** One-shot steps run on the new active server; each stays declared from its phase on. */
  steps: {
    /** Step 2: users and passwords loaded (from the SSM users parameter) and checked. */
    importUsers: boolean;
    /** Step 3: first old → new mailbox copy (doveadm backup -R over IMAP). */
    initialSync: boolean;
    /** Step 7: final old → new merge without deleting mail that landed on the new server. */
    finalSync: boolean;
  };
  /** The MX preference of the new pair's active server in this phase's steady state. */
  pairPreference: number;
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
 * same phase, one forward, one back, and 9 → 0 (the finished migration: phase 9 and phase 0
 * declare the same records) are allowed. An unknown previous phase (a new stack, or no state
 * to read) is not checked.
 */
export function checkPhaseTransition(previous: number | undefined, next: number): void {
  phaseTitle(next);
  if (previous === undefined) {
    return;
  }
  phaseTitle(previous);
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
  if (old) {
    if (old.raisedPreference <= old.mxPreference) {
      problems.push(
        `hastack:mail.migration.oldServer.raisedPreference must be greater than mxPreference ` +
          `(${old.mxPreference}), got ${old.raisedPreference}`,
      );
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
  const p = old ? old.mxPreference : DEFAULT_MX_PREFERENCE;
  const mx = (pref: number, host: string): string => `${pref} ${host}`;
  const pair = [mx(p, input.activeServer), mx(p + MX_PREFERENCE_STEP, input.standbyServer)];
  const title = phaseTitle(phase);
  if (phase === 0 || !old) {
    return {
      phase,
      title,
      mx: pair,
      spfAuthorisesOldServer: false,
      steps: { importUsers: false, initialSync: false, finalSync: false },
      pairPreference: p,
      clientsOnOldServer: false,
    };
  }
  const oldName = oldServerRecordName(old, input.domain);
  let values: string[];
  if (phase <= 4) {
    values = [mx(old.mxPreference, oldName)];
  } else if (phase === 5) {
    values = [mx(old.raisedPreference, oldName)];
  } else if (phase <= 8) {
    values = [
      mx(p, input.activeServer),
      mx(old.raisedPreference, oldName),
      mx(old.raisedPreference + MX_PREFERENCE_STEP, input.standbyServer),
    ];
  } else {
    values = pair;
  }
  return {
    phase,
    title,
    mx: values,
    oldServerRecord: phase <= 8 ? { name: oldName, ip: old.ip } : undefined,
    // Until step 8 the old server still sends (bounces, forwards, users not yet moved).
    spfAuthorisesOldServer: phase <= 7,
    steps: { importUsers: phase >= 2, initialSync: phase >= 3, finalSync: phase >= 7 },
    pairPreference: p,
    clientsOnOldServer: phase <= 5,
  };
}
