// The executor's create rule the migration drill needs (issue 12 item 5): a migration phase's
// one-shot command (phase 2's import-users) exists only from AFTER on, so the booted stack (phase
// 1) does not declare it; its connection must come from AFTER's unmasked synth, as `pulumi up`
// runs the resource the new program declares. On real synths of the prod stack.
import { expect } from "chai";
import { Deployment, InspectedResource, synthesizeEdited } from "../../../lib/synth/offline-synth";
import { CommandStep, planApply } from "../../../lib/rehearse/stack/apply";
import { commandInputsOf, unmaskedCommands } from "../../../lib/rehearse/stack/apply-run";
import { PROJECT_DIR, StackConfigDoc } from "../../support/stack-files";

function atPhase(phase: number) {
  return (c: StackConfigDoc): void => {
    const mail = c["hastack:mail"] as { migration: { phase: number } };
    mail.migration.phase = phase;
  };
}

async function synth(phase: number): Promise<{ d: Deployment; inspected: InspectedResource[] }> {
  let inspected: InspectedResource[] = [];
  const d = await synthesizeEdited({
    projectDir: PROJECT_DIR,
    stack: "prod",
    edit: atPhase(phase),
    inspect: (rs) => (inspected = rs),
  });
  return { d, inspected };
}

describe("rehearse apply: a create's command spec comes from AFTER", function () {
  this.timeout(300_000);
  let p1: Awaited<ReturnType<typeof synth>>;
  let p2: Awaited<ReturnType<typeof synth>>;
  before(async () => {
    p1 = await synth(1);
    p2 = await synth(2);
  });

  function importUsers(): CommandStep {
    const plan = planApply(p1.d, p2.d, { region: "ap-southeast-3" });
    const s = plan.steps.find(
      (x): x is CommandStep => x.kind === "command" && x.name === "mail-import-users",
    );
    expect(s, plan.steps.map((x) => x.kind).join(",")).to.not.equal(undefined);
    return s!;
  }

  it("phase 1 → 2 creates import-users, which the booted phase-1 stack does not declare", () => {
    const s = importUsers();
    expect(s.op).to.equal("create");
    expect(s.resource.inputs.connection).to.equal("[secret]");
    const booted = unmaskedCommands(p1.inspected);
    expect(booted.has(s.urn)).to.equal(false);
    // Before this change the executor looked only at the booted stack: nothing to run it with.
    expect(commandInputsOf(s, booted)).to.equal(undefined);
  });

  it("takes the create's connection from AFTER's unmasked synth: the active server's EIP and user", () => {
    const s = importUsers();
    const got = commandInputsOf(s, unmaskedCommands(p1.inspected), unmaskedCommands(p2.inspected));
    expect(got?.from).to.equal("after");
    const conn = got!.inputs.connection as Record<string, unknown>;
    expect(conn.host).to.match(/^\d+\.\d+\.\d+\.\d+$/);
    expect(conn.user).to.be.a("string");
    // The host key pins the active server (the rehearsal swaps in its generated one by host).
    expect(conn).to.have.property("hostKey");
  });

  it("a step that is not a create keeps the booted stack's spec, even when AFTER has one", () => {
    const s = importUsers();
    const booted = new Map([[s.urn, { connection: { host: "192.0.2.1" } }]]);
    const after = new Map([[s.urn, { connection: { host: "192.0.2.2" } }]]);
    const update = { ...s, op: "update" as const };
    expect(commandInputsOf(update, booted, after)?.inputs.connection).to.deep.equal({
      host: "192.0.2.1",
    });
    expect(
      commandInputsOf({ ...s, op: "delete" as const, runs: "delete" }, booted, after)?.from,
    ).to.equal("booted");
    expect(commandInputsOf(s, booted, after)?.from).to.equal("after");
    expect(commandInputsOf({ ...s, op: "replace" as const }, booted, after)?.from).to.equal(
      "after",
    );
  });
});
