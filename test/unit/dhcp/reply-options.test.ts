import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encode } from "../../../server/dhcp/codec.js";
import { type DhcpReceiveContext, handleDhcpRequest } from "../../../server/dhcp/handler.js";
import { ReplyOptionCache } from "../../../server/dhcp/reply-options.js";
import type { Machine } from "../../../server/inventory/types.js";
import { deps, FakeBackend, FakeImages, lease, machine, request } from "./fakes.js";

const IFACE: DhcpReceiveContext = { mode: "interface", address: "0.0.0.0", port: 68, interfaceName: "br0" };
const MAC = "02:50:58:00:00:03";

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

describe("dhcp reply option cache (reply-options.ts)", () => {
  it("gives byte-identical replies with and without the cache, for frozen and mutable Machines", () => {
    const images = new FakeImages({ dhcpBootImageName: "shimx64.efi" });
    for (const frozen of [true, false]) {
      const m = machine("node-1", [lease(MAC, "10.77.0.21")]);
      const backend = new FakeBackend([frozen ? deepFreeze(m) : m]);
      const plain = deps({ backend, images });
      const cached = { ...plain, replyOptions: new ReplyOptionCache() };
      for (const type of [1, 3] as const) {
        const a = handleDhcpRequest(request({ type }), IFACE, plain);
        // twice: the second answer comes from the cache
        handleDhcpRequest(request({ type }), IFACE, cached);
        const b = handleDhcpRequest(request({ type }), IFACE, cached);
        assert.deepEqual(encode(b.reply!.packet), encode(a.reply!.packet), `type ${type}, frozen ${frozen}`);
        assert.deepEqual(b.events, a.events);
      }
    }
  });

  it("never serves a changed mutable lease from the cache", () => {
    const m: Machine = machine("node-1", [lease(MAC, "10.77.0.21")]);
    const d = { ...deps({ backend: new FakeBackend([m]) }), replyOptions: new ReplyOptionCache() };
    handleDhcpRequest(request({ type: 1 }), IFACE, d);
    m.spec.pxe!.dhcpLeases![0]!.gateway = "10.77.0.253";
    const p = handleDhcpRequest(request({ type: 1 }), IFACE, d).reply!.packet;
    assert.deepEqual([...p.options.get(3)!], [10, 77, 0, 253]);
  });

  it("reuses one Buffer per value, and keys a frozen lease by the Machine name too", () => {
    const cache = new ReplyOptionCache();
    assert.equal(cache.ip("10.0.0.1"), cache.ip("10.0.0.1"));
    assert.equal(cache.string("shimx64.efi"), cache.string("shimx64.efi"));
    assert.throws(() => cache.ip("not-an-ip"), TypeError);
    const l = Object.freeze(lease(MAC, "10.77.0.21"));
    assert.equal(cache.lease(l, "a"), cache.lease(l, "a"));
    assert.equal(cache.lease(l, "b").hostName?.toString("latin1"), "b");
  });
});
