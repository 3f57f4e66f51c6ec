// The numbers a server pair is built from and the recovery-time arithmetic over them, in one
// module without any Pulumi import: components (server-pair.ts) declare resources from them and
// the impact tool (lib/impact) estimates downtime from them, so the two can never disagree about
// a default or about how an RTO is computed (issue 10: "one set of defaults").

export type Switchover = "dns" | "eip";

/** Route 53 probes every 10 s (the "fast" interval): detection = 10 s × failureThreshold. */
export const HEALTH_CHECK_INTERVAL_SECONDS = 10;
/** Failed probes before Route 53 counts a side as down (hastack:<svc>.healthCheck). */
export const DEFAULT_FAILURE_THRESHOLD = 3;
/**
 * TTL of the switch records. 30 s with 3 failed 10 s probes fails over in at most 60 s (a
 * resolver's cached answer expires at most one TTL after Route 53 answers the other side), the
 * office's target; 60 s made it 90 s. Flapping is not a TTL matter: Route 53 needs the threshold's
 * consecutive results either way, and a recovered primary stays fenced until the fallback.
 */
export const DEFAULT_TTL_SECONDS = 30;
/** Upper bound the config and ServerPair accept for the switch records' TTL. */
export const MAX_SWITCH_TTL_SECONDS = 60;
/** Seconds from an instance start to the service answering (hastack:<svc>.bootSeconds). */
export const DEFAULT_BOOT_SECONDS = 180;
/** How long an operator takes to confirm a manual (eip) switch, for RTO estimates. */
export const OPERATOR_RESPONSE_SECONDS = 900;
/** Disassociating and associating an Elastic IP. */
export const EIP_REASSOCIATION_SECONDS = 30;
/** How each service follows its active side unless its config says otherwise. */
export const DEFAULT_SWITCHOVER: Readonly<Record<string, Switchover>> = {
  mail: "dns",
  mysql: "dns",
  pbx: "eip",
  nas: "dns",
};

/** Seconds Route 53 needs to declare a side down. */
export function detectionSeconds(failureThreshold: number): number {
  return HEALTH_CHECK_INTERVAL_SECONDS * failureThreshold;
}

/**
 * Designed recovery time. dns: detection (interval × threshold) plus the record TTL, automatic.
 * eip: detection plus an operator confirming the switch, plus the re-association.
 */
export function estimateRtoSeconds(o: {
  switchover: Switchover;
  ttl: number;
  failureThreshold: number;
}): number {
  const detection = detectionSeconds(o.failureThreshold);
  return o.switchover === "dns"
    ? detection + o.ttl
    : detection + OPERATOR_RESPONSE_SECONDS + EIP_REASSOCIATION_SECONDS;
}

// SSM paths (issue 10): every service's parameters live under `<root>/<service>`, and the root
// carries the stack name, so two stacks in one account never share (and overwrite) a parameter.
// Stacks made before that keep `/hastack` through hastack:ssmRoot: renaming a parameter
// replaces it, and servers read the paths their first boot wrote into their scripts.

/** The root of stacks made before issue 10 (hastack:ssmRoot: /hastack keeps it). */
export const LEGACY_SSM_ROOT = "/hastack";

/** The SSM root of a new stack: `/hastack/<stack>`. */
export function stackSsmRoot(stack: string): string {
  return `${LEGACY_SSM_ROOT}/${stack}`;
}

/**
 * A service's SSM prefix: `<root>/<service>`, e.g. /hastack/prod/mail — the one place it is
 * spelled. The root defaults to LEGACY_SSM_ROOT (a component built alone, as in tests).
 */
export function ssmPrefix(root: string | undefined, service: string): string {
  return `${root ?? LEGACY_SSM_ROOT}/${service}`;
}
