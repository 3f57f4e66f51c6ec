// The hastack security pack for Pulumi CrossGuard (issue 13): the pure checks of policy/rules.ts,
// each mandatory. Compiled to dist/policy/ (PulumiPolicy.yaml's `main`), run with
//   npm run build && pulumi preview --policy-pack policy
// The same checks run offline with `npm run synth -- --stack NAME --policy`.
import { PolicyPack, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { POLICIES, PolicyInput } from "./rules";

const policies = POLICIES.map((p): ResourceValidationPolicy | StackValidationPolicy => {
  if (p.kind === "resource") {
    return {
      name: p.name,
      description: p.description,
      enforcementLevel: "mandatory",
      validateResource: (args, reportViolation) => {
        const input: PolicyInput = {
          type: args.type,
          urn: args.urn,
          inputs: args.props,
          // CrossGuard passes no retainOnDelete: the check covers `protect` there.
          options: { protect: args.opts.protect },
        };
        for (const message of p.check(input)) {
          reportViolation(message);
        }
      },
    };
  }
  return {
    name: p.name,
    description: p.description,
    enforcementLevel: "mandatory",
    validateStack: (args, reportViolation) => {
      const resources: PolicyInput[] = args.resources.map((r) => ({
        type: r.type,
        urn: r.urn,
        inputs: r.props,
        options: { protect: r.opts.protect },
      }));
      for (const v of p.check(resources)) {
        reportViolation(v.message, v.urn);
      }
    },
  };
});

new PolicyPack("hastack-security", { policies });
