// Fixture for test/support/summary-reporter.test.ts: one pass, one readable failure, one skip.
import { expect } from "chai";

describe("reporter fixture: failing", () => {
  it("passes", () => {
    expect(true).to.equal(true);
  });

  it("fails with a readable message", () => {
    expect("the pair's standby", "reporter-fixture-marker").to.equal("the pair's primary");
  });

  it.skip("is skipped", () => {});
});
