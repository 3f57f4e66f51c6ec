// IAM policy evaluation for the rehearsal's SSM stand-in (issue 11): the caller's instance
// profile decides, as on AWS — an explicit Deny wins, then an Allow, else the implicit deny.
// Covers what instance-profile policies in this stack use: Action and Resource lists with `*` and
// `?` wildcards (actions case-insensitive, resources case-sensitive), and the StringEquals /
// StringLike conditions the KMS statements use, and their ForAllValues: forms (the mail servers'
// ACME policy on Route 53 record names); any other condition is refused when the model is built,
// never ignored.
import { PolicyStatement } from "./model";

function globToRegExp(glob: string, flags: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${body}$`, flags);
}

/**
 * Whether a statement's conditions hold for the request context. A single-valued operator fails
 * on a missing key; a `ForAllValues:` one needs every value of the request's key (a list, or
 * one value) to match, and holds on a missing key — as AWS evaluates it (an empty set).
 */
function conditionsHold(s: PolicyStatement, context: Record<string, string | string[]>): boolean {
  return Object.entries(s.conditions ?? {}).every(([op, keys]) =>
    Object.entries(keys).every(([key, values]) => {
      const actual = Object.entries(context).find(
        ([k]) => k.toLowerCase() === key.toLowerCase(),
      )?.[1];
      const forAll = op.startsWith("ForAllValues:");
      const like = op.endsWith("StringLike");
      const matches = (a: string): boolean =>
        values.some((v) => (like ? globToRegExp(v, "").test(a) : v === a));
      if (actual === undefined) {
        return forAll;
      }
      const set = Array.isArray(actual) ? actual : [actual];
      return forAll ? set.every(matches) : set.length === 1 && matches(set[0]);
    }),
  );
}

/**
 * Whether `policy` allows `action` (e.g. "ssm:GetParameter") on the resource ARN, with the
 * request's condition keys in `context` (e.g. "kms:EncryptionContext:PARAMETER_ARN").
 */
export function isAllowed(
  policy: PolicyStatement[],
  action: string,
  resourceArn: string,
  context: Record<string, string | string[]> = {},
): boolean {
  const matches = (s: PolicyStatement): boolean =>
    s.actions.some((a) => globToRegExp(a, "i").test(action)) &&
    s.resources.some((r) => globToRegExp(r, "").test(resourceArn)) &&
    conditionsHold(s, context);
  if (policy.some((s) => s.effect === "Deny" && matches(s))) {
    return false;
  }
  return policy.some((s) => s.effect === "Allow" && matches(s));
}

/** The ARN of an SSM parameter, as the policy names it. */
export function parameterArn(region: string, account: string, name: string): string {
  return `arn:aws:ssm:${region}:${account}:parameter${name.startsWith("/") ? name : `/${name}`}`;
}
