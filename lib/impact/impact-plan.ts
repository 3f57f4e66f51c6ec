// What a stack update will do to the services, before anyone runs `pulumi up`: each step of a
// preview (or of an offline synth diff) is mapped to the service it belongs to and classified
// as no impact, a brief interruption, an outage or a data risk, with a downtime estimate per
// service from what the stack itself declares (TTL, health-check timing, boot time). The
// exit-code policy lives here too, so the CLI (scripts/impact.ts) is only flags and printing.
//
// This file is the public API of lib/impact; the work is split by concern:
//   model.ts            vocabulary: classes, ops, steps, outputs, URN → service/side
//   parse.ts            inputs: preview JSON, engine event logs, history event arrays
//   synth-diff.ts       two synth files → steps (with replace-forcing.ts, the estimate table)
//   classify.ts         one step → class and downtime (pair defaults from components/pair-defaults.ts)
//   plan.ts             the plan per service and the exit-code policy (--window, --allow)
//   render.ts           the operator's text report
export * from "./model";
export * from "./parse";
export * from "./replace-forcing";
export * from "./synth-diff";
export * from "./classify";
export * from "./plan";
export * from "./render";
