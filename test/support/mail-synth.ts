// Test support: one MailPair declared under the SDK mocks (lib/synth/offline-synth.ts), in the
// shared test placement, with a mail config as the stack file would give it — what every
// mocks-level mail test synthesizes (mail-pair, mail-mta-sts, mail-migration-dns).
import { Dns } from "../../components/dns";
import { MailPair, MailPairArgs } from "../../components/mail";
import { stackConfigSchema } from "../../lib/config/stack-config";
import { Deployment, runUnderMocks } from "../../lib/synth/offline-synth";
import { testPlacement } from "./placement";

export const MAIL_DOMAIN = "kantor-contoh.co.id";

/** hastack:mail parsed by the stack's schema (defaults applied), `active: primary` unless given. */
export function mailConfig(over: Record<string, unknown> = {}) {
  return stackConfigSchema.shape.mail.parse({ active: "primary", ...over });
}

export interface MailSynth {
  d: Deployment;
  /** The stack outputs: the pair's summary and operations. */
  outputs: Record<string, unknown>;
}

/**
 * Declares MailPair `mail` for `cfg` (hastack:mail keys) under the mocks, in `o.domain`
 * (MAIL_DOMAIN), with `o.args` overriding MailPair's arguments.
 */
export async function synthMailPair(
  cfg: Record<string, unknown> = {},
  o: { args?: Partial<MailPairArgs>; adminCidrs?: string[]; domain?: string } = {},
): Promise<MailSynth> {
  const domain = o.domain ?? MAIL_DOMAIN;
  const d = await runUnderMocks(() => {
    const dns = new Dns("dns", { domain, zoneName: domain });
    const mail = new MailPair("mail", {
      ...testPlacement(dns),
      domain,
      config: mailConfig(cfg),
      adminCidrs: o.adminCidrs ?? ["203.0.113.10/32"],
      ...o.args,
    });
    return { summary: mail.summary, operations: mail.operations };
  });
  const stack = d.deployment.resources.find((r) => r.type === "pulumi:pulumi:Stack")!;
  return { d, outputs: stack.outputs as Record<string, unknown> };
}
