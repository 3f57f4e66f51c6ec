// Fixture for test/support/summary-reporter.test.ts (not a suite file: no .test. in its name).
// Its time is in a hook, not in a test, so a reporter that summed test durations would miss it.
import { expect } from "chai";

/** The reporter test expects this file to take at least this long (its SLOW_HOOK_MS). */
const SLOW_HOOK_MS = 2000;

describe("reporter fixture: slow hook", () => {
  before(() => new Promise((resolve) => setTimeout(resolve, SLOW_HOOK_MS)));

  it("passes after the hook", () => {
    expect(1 + 1).to.equal(2);
  });

  it("passes again", () => {
    expect("a").to.equal("a");
  });
});
