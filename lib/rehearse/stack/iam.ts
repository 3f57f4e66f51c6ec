// IAM policy evaluation for the rehearsal's SSM stand-in (issue 11): the caller's instance
// profile decides, as on AWS — an explicit Deny wins, then an Allow, else the implicit deny.
// Covers what instance-profile policies in this stack use: Action and Resource lists with `*` and
// `?` wildcards (actions case-insensitive, resources case-sensitive). Conditions are refused when
// the model is built, never ignored.
import { PolicyStatement } from "./model";

function globToRegExp(glob: string, flags: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${body}$`, flags);
}

/** Whether `policy` allows `action` (e.g. "ssm:GetParameter") on the resource ARN. */
export function isAllowed(policy: PolicyStatement[], action: string, resourceArn: string): boolean {
  const matches = (s: PolicyStatement): boolean =>
    s.actions.some((a) => globToRegExp(a, "i").test(action)) &&
    s.resources.some((r) => globToRegExp(r, "").test(resourceArn));
  if (policy.some((s) => s.effect === "Deny" && matches(s))) {
    return false;
  }
  return policy.some((s) => s.effect === "Allow" && matches(s));
}

/** The ARN of an SSM parameter, as the policy names it. */
export function parameterArn(region: string, account: string, name: string): string {
  return `arn:aws:ssm:${region}:${account}:parameter${name.startsWith("/") ? name : `/${name}`}`;
}
