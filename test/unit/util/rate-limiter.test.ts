import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RateLimiter, rateLimitedLog } from "../../../server/util/rate-limiter.js";

describe("RateLimiter", () => {
  it("allows a key once per interval and reports what it suppressed", () => {
    let now = 1000;
    const limiter = new RateLimiter({ intervalMs: 60_000, now: () => now });
    assert.deepEqual(limiter.check("a"), { allowed: true, suppressed: 0 });
    assert.equal(limiter.check("a").allowed, false);
    assert.equal(limiter.check("a").allowed, false);
    assert.equal(limiter.check("b").allowed, true, "keys are independent");
    now += 60_000;
    assert.deepEqual(limiter.check("a"), { allowed: true, suppressed: 2 });
  });

  it("bounds memory by evicting the oldest keys", () => {
    const limiter = new RateLimiter({ maxKeys: 3, now: () => 0 });
    for (const k of ["a", "b", "c", "d"]) limiter.check(k);
    assert.equal(limiter.size, 3);
    assert.equal(limiter.check("a").allowed, true, "a was evicted, so it is allowed again");
  });

  it("wraps a log function", () => {
    let now = 0;
    const lines: [Record<string, unknown>, string][] = [];
    const warn = rateLimitedLog(new RateLimiter({ intervalMs: 10, now: () => now }), (f, m) => lines.push([f, m]));
    assert.equal(warn("k", { x: 1 }, "hello"), true);
    assert.equal(warn("k", { x: 2 }, "hello"), false);
    now = 10;
    warn("k", { x: 3 }, "hello");
    assert.deepEqual(lines, [
      [{ x: 1 }, "hello"],
      [{ x: 3, suppressed: 1 }, "hello"],
    ]);
  });
});
