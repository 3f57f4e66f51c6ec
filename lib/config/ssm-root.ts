// Which SSM root a stack update uses (issue 10). Every parameter lives under
// `<root>/<service>`; a new stack's root carries its name (`/hastack/<stack>`), so two stacks in
// one account never share a parameter. Moving a live stack's root would rename — replace —
// every parameter, and its running servers read the paths their first boot wrote into their
// scripts: so a root never moves by itself. A stack made before the root existed keeps
// `/hastack` (its stack file must say so), and an update may not change the root its last
// update recorded (the `ssmRoot` stack output).
import { LEGACY_SSM_ROOT, stackSsmRoot } from "../../components/pair-defaults";
import { ConfigError, configKey } from "./stack-config";

/** What the last update left behind. */
export interface PreviousSsmState {
  /** The stack has outputs from an earlier update (it exists). */
  exists: boolean;
  /** The root that update used; undefined when it predates the `ssmRoot` output. */
  ssmRoot?: string;
}

/**
 * The root for this update: hastack:ssmRoot when set, else `/hastack/<stack>`. Throws a
 * ConfigError naming hastack:ssmRoot when that would move the parameters of an existing stack
 * (one made before issue 10 without `ssmRoot: /hastack`, or a root other than the recorded one).
 */
export function resolveSsmRoot(o: {
  configured?: string;
  stack: string;
  previous?: PreviousSsmState;
}): string {
  const key = configKey(["ssmRoot"]);
  const root = o.configured ?? stackSsmRoot(o.stack);
  const recorded = o.previous?.exists ? (o.previous.ssmRoot ?? LEGACY_SSM_ROOT) : undefined;
  if (recorded === undefined || recorded === root) {
    return root;
  }
  const why =
    o.previous?.ssmRoot === undefined
      ? `this stack was made before per-stack SSM paths and its parameters live under ${LEGACY_SSM_ROOT}/<service>`
      : `the last update kept the parameters under ${recorded}/<service>`;
  throw new ConfigError([
    {
      key,
      message:
        `${o.configured === undefined ? "is unset, so it defaults to" : "is"} "${root}", but ${why}: ` +
        `moving them replaces every parameter while the running servers read the old paths. ` +
        `Set ${key} to "${recorded}" (README Security: "Upgrading an existing stack")`,
    },
  ]);
}
