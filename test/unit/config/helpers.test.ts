import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatGoDuration, parseGoDuration } from "../../../server/config/go-duration.js";
import { createTrustedProxyMatcher, parseCidr } from "../../../server/config/trusted-proxy.js";

describe("Go durations", () => {
  it("parses what time.ParseDuration accepts", () => {
    assert.equal(parseGoDuration("15s"), 15_000);
    assert.equal(parseGoDuration("1m30s"), 90_000);
    assert.equal(parseGoDuration("1.5h"), 5_400_000);
    assert.equal(parseGoDuration("300ms"), 300);
    assert.equal(parseGoDuration("0"), 0);
    assert.equal(parseGoDuration("-2s"), -2000);
    for (const bad of ["", "15", "s", "1x", "1m 2s"]) assert.equal(parseGoDuration(bad), undefined, bad);
  });
  it("formats like Go", () => {
    assert.equal(formatGoDuration(15_000), "15s");
    assert.equal(formatGoDuration(90_000), "1m30s");
    assert.equal(formatGoDuration(500), "500ms");
  });
});

describe("trusted proxies", () => {
  it("parses CIDRs and bare addresses", () => {
    assert.deepEqual(parseCidr("10.0.0.0/8"), { address: "10.0.0.0", prefix: 8, family: "ipv4" });
    assert.deepEqual(parseCidr("192.0.2.7"), { address: "192.0.2.7", prefix: 32, family: "ipv4" });
    assert.equal(parseCidr("10.0.0.0/40"), undefined);
    assert.equal(parseCidr("host"), undefined);
  });
  it("matches peers, including IPv4-mapped IPv6", () => {
    const trusted = createTrustedProxyMatcher(["10.0.0.0/8", "fd00::/8"]);
    assert.equal(trusted("10.1.2.3"), true);
    assert.equal(trusted("::ffff:10.1.2.3"), true);
    assert.equal(trusted("fd00::1"), true);
    assert.equal(trusted("192.0.2.1"), false);
    assert.equal(createTrustedProxyMatcher([])("10.1.2.3"), false);
  });
});
