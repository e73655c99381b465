import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StopDeadline, waitUntilIdle } from "../../../server/app/stop-deadline.js";

const settledWithin = async (promise: Promise<unknown>, ms: number) =>
  Promise.race([promise.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms))]);

describe("StopDeadline", () => {
  it("is reached after the grace, and a second signal can only bring it forward", async () => {
    const deadline = new StopDeadline(10_000);
    assert.equal(await settledWithin(deadline.reached, 30), false);
    deadline.shorten(60_000); // later: ignored
    assert.equal(await settledWithin(deadline.reached, 30), false);
    deadline.shorten(0);
    assert.equal(await settledWithin(deadline.reached, 30), true);
  });

  it("grace 0 is reached at once; dispose settles it and clears the timer", async () => {
    assert.equal(await settledWithin(new StopDeadline(0).reached, 30), true);
    const long = new StopDeadline(3_600_000);
    long.dispose();
    assert.equal(await settledWithin(long.reached, 30), true);
  });

  it("waitUntilIdle returns true once idle, false when the deadline comes first", async () => {
    let busy = true;
    setTimeout(() => {
      busy = false;
    }, 60);
    assert.equal(await waitUntilIdle(() => !busy, new StopDeadline(5_000), 10), true);
    const started = Date.now();
    assert.equal(await waitUntilIdle(() => false, new StopDeadline(80), 10), false);
    assert.ok(Date.now() - started < 1_000);
  });
});
