import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createClientIdentity, normalizeIp } from "../../../server/http/client-identity.js";

describe("client identity", () => {
  it("normalises addresses", () => {
    assert.equal(normalizeIp("::ffff:10.0.0.1"), "10.0.0.1");
    assert.equal(normalizeIp("::FFFF:10.0.0.1"), "10.0.0.1");
    assert.equal(normalizeIp(" 10.0.0.1:8080 "), "10.0.0.1");
    assert.equal(normalizeIp("[FD00::1]:80"), "fd00::1");
    assert.equal(normalizeIp("unknown"), undefined);
    assert.equal(normalizeIp(""), undefined);
  });

  it("uses the socket peer and ignores X-Forwarded-For without trusted proxies", () => {
    const identify = createClientIdentity();
    assert.equal(identify("::ffff:10.0.0.5", "10.0.0.11"), "10.0.0.5");
    assert.equal(identify(undefined, "10.0.0.11"), undefined);
  });

  it("takes the right-most untrusted hop from a trusted peer", () => {
    const identify = createClientIdentity(["127.0.0.1", "192.168.0.0/16"]);
    assert.equal(identify("127.0.0.1", "10.0.0.11"), "10.0.0.11");
    assert.equal(identify("127.0.0.1", "6.6.6.6, 10.0.0.11, 192.168.1.1"), "10.0.0.11");
    assert.equal(identify("127.0.0.1", ["6.6.6.6", "10.0.0.11"]), "10.0.0.11");
    assert.equal(identify("127.0.0.1", "192.168.1.2, 192.168.1.1"), "192.168.1.2");
    assert.equal(identify("127.0.0.1", "10.0.0.11, garbage"), undefined);
    assert.equal(identify("127.0.0.1", undefined), "127.0.0.1");
    assert.equal(identify("127.0.0.2", "10.0.0.11"), "127.0.0.2");
  });

  it("refuses malformed trusted-proxy entries", () => {
    assert.throws(() => createClientIdentity(["10.0.0.0/33"]));
    assert.throws(() => createClientIdentity(["nope"]));
    assert.throws(() => createClientIdentity(["10.0.0.0/8/1"]));
    assert.equal(createClientIdentity(["fd00::/8", "10.0.0.0/8"])("fd00::1", "10.1.2.3"), "10.1.2.3");
  });
});
