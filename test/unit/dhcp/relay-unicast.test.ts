import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decode, encode } from "../../../server/dhcp/codec.js";
import { type DhcpReceiveContext, handleDhcpRequest } from "../../../server/dhcp/handler.js";
import { ipOption, readIp } from "../../../server/dhcp/options.js";
import { inLeaseSubnet } from "../../../server/dhcp/reply-route.js";
import { deps, FakeImages, opt, request, SERVER_IP } from "./fakes.js";

/**
 * Issue 5 §1.5: relay mode serves the unicasts of lease holders (RFC 2131 §4.3.2, §4.3.5,
 * §4.4.5), honours RFC 5107 server-id-override, answers relayed requests only when giaddr lies
 * in the lease's subnet, and sends to ciaddr only when it is the lease address.
 */
const MAC = "02:50:58:00:00:03";
const LEASE_IP = "10.77.0.21"; // /24 (fakes.ts)
const RELAY_IP = "10.77.0.254";
const RELAY: DhcpReceiveContext = { mode: "relay", address: RELAY_IP, port: 67 };
/** A direct unicast from the client's own address (it went through routers, not a relay agent). */
const FROM_CLIENT: DhcpReceiveContext = { mode: "relay", address: LEASE_IP, port: 68 };
const IFACE: DhcpReceiveContext = { mode: "interface", address: "0.0.0.0", port: 68 };

/** Option 82 with circuit id "eth0" and RFC 5107 server-id-override = ip. */
function relayInfoWithOverride(ip: string): Buffer {
  return Buffer.concat([Buffer.from([1, 4]), Buffer.from("eth0"), Buffer.from([11, 4]), ipOption(ip)]);
}

describe("relay mode: direct unicasts of lease holders", () => {
  it("RENEWING REQUEST (ciaddr = lease, no giaddr, no 54) → ACK unicast to ciaddr:68", () => {
    const out = handleDhcpRequest(request({ type: 3, ciaddr: LEASE_IP }), FROM_CLIENT, deps());
    assert.equal(out.reply?.type, "ack", out.ignoredReason);
    assert.deepEqual([out.reply.address, out.reply.port], [LEASE_IP, 68]);
    assert.equal(out.reply.packet.ciaddr, LEASE_IP);
    assert.equal(out.reply.packet.yiaddr, LEASE_IP);
    assert.deepEqual(
      out.events.map((e) => e.step),
      ["dhcp.request", "dhcp.ack"],
    );
  });

  it("RENEWING from a ciaddr that is not the lease: no reply at all (no NAK broadcast, nothing to ciaddr)", () => {
    const out = handleDhcpRequest(
      request({ type: 3, ciaddr: "10.77.0.99" }),
      { ...FROM_CLIENT, address: "10.77.0.99" },
      deps(),
    );
    assert.equal(out.reply, undefined);
    assert.equal(out.ignoredReason, "ciaddr-not-lease");
  });

  it("INFORM from the lease address → ACK to it; from another address → ignored", () => {
    const ok = handleDhcpRequest(request({ type: 8, ciaddr: LEASE_IP }), FROM_CLIENT, deps());
    assert.equal(ok.reply?.type, "ack");
    assert.deepEqual([ok.reply.address, ok.reply.port], [LEASE_IP, 68]);
    assert.equal(ok.reply.packet.yiaddr, "0.0.0.0");
    for (const ctx of [FROM_CLIENT, IFACE]) {
      const other = handleDhcpRequest(request({ type: 8, ciaddr: "192.0.2.7" }), ctx, deps());
      assert.equal(other.reply, undefined, ctx.mode);
      assert.equal(other.ignoredReason, "ciaddr-not-lease");
    }
  });

  it("RELEASE of a known client is recorded", () => {
    const out = handleDhcpRequest(
      request({ type: 7, ciaddr: LEASE_IP, options: [opt.serverId(SERVER_IP)] }),
      FROM_CLIENT,
      deps(),
    );
    assert.equal(out.reply, undefined);
    assert.equal(out.ignoredReason, "release");
    assert.equal(out.events[0].step, "dhcp.release");
    assert.equal(out.events[0].machine, "node-1");
  });

  it("direct DISCOVERs and SELECTING REQUESTs stay the relays' job", () => {
    assert.equal(handleDhcpRequest(request({ type: 1 }), FROM_CLIENT, deps()).ignoredReason, "not-relayed");
    const selecting = request({ type: 3, options: [opt.serverId(SERVER_IP), opt.requestedIp(LEASE_IP)] });
    assert.equal(handleDhcpRequest(selecting, FROM_CLIENT, deps()).ignoredReason, "not-relayed");
  });

  it("interface mode: ciaddr that is not the lease never gets the ACK, even with option 50 = lease", () => {
    const r = request({ type: 3, ciaddr: "192.0.2.7", options: [opt.requestedIp(LEASE_IP)] });
    const out = handleDhcpRequest(r, IFACE, deps());
    assert.equal(out.reply?.type, "nak");
    assert.deepEqual([out.reply.address, out.reply.port], ["255.255.255.255", 68]);
  });
});

describe("relayed requests: giaddr must lie in the lease's subnet", () => {
  it("a giaddr outside 10.77.0.0/24 gets nothing (DISCOVER, REQUEST and the NAK case)", () => {
    // Also the subnet's own broadcast and network addresses: a reply there is a directed broadcast.
    for (const giaddr of ["192.0.2.1", "10.77.1.1", "127.0.0.1", "255.255.255.255", "10.77.0.255", "10.77.0.0"]) {
      for (const r of [
        request({ giaddr }),
        request({ type: 3, giaddr, options: [opt.serverId(SERVER_IP), opt.requestedIp(LEASE_IP)] }),
        request({ type: 3, giaddr, options: [opt.requestedIp("10.77.0.99")] }),
      ]) {
        const out = handleDhcpRequest(r, { ...RELAY, address: giaddr }, deps());
        assert.equal(out.reply, undefined, `giaddr ${giaddr}`);
        assert.equal(out.ignoredReason, "giaddr-outside-lease-subnet");
      }
    }
    const ok = handleDhcpRequest(request({ giaddr: RELAY_IP }), RELAY, deps());
    assert.deepEqual([ok.reply?.address, ok.reply?.port], [RELAY_IP, 67]);
  });

  it("inLeaseSubnet: host addresses only; /31 and /32 have no network or broadcast address", () => {
    const l = (ipv4: string, subnetMask: string) => ({ mac: MAC, ipv4, subnetMask, gateway: "" });
    assert.equal(inLeaseSubnet("10.1.0.1", l("10.1.2.3", "255.255.0.0")), true);
    assert.equal(inLeaseSubnet("10.1.255.255", l("10.1.2.3", "255.255.0.0")), false);
    assert.equal(inLeaseSubnet("10.1.0.0", l("10.1.2.3", "255.255.0.0")), false);
    assert.equal(inLeaseSubnet("10.2.0.1", l("10.1.2.3", "255.255.0.0")), false);
    assert.equal(inLeaseSubnet("10.1.1.0", l("10.1.1.1", "255.255.255.254")), true);
    assert.equal(inLeaseSubnet("10.1.1.1", l("10.1.1.1", "255.255.255.255")), true);
    assert.equal(inLeaseSubnet("10.1.1.2", l("10.1.1.1", "255.255.255.255")), false);
    assert.equal(inLeaseSubnet("not-an-ip", l("10.1.1.1", "255.255.255.0")), false);
  });

  it("a lease without a valid mask is never answered through a relay", () => {
    const d = deps();
    d.backend.byMac = () => ({
      apiVersion: "unbounded-cloud.io/v1alpha3",
      kind: "Machine",
      metadata: { name: "m" },
      spec: {
        pxe: { image: "dir:/i", dhcpLeases: [{ mac: MAC, ipv4: LEASE_IP, subnetMask: "255.0.255.0", gateway: "" }] },
      },
    });
    assert.equal(
      handleDhcpRequest(request({ giaddr: RELAY_IP }), RELAY, d).ignoredReason,
      "giaddr-outside-lease-subnet",
    );
  });

  it("fuzzed giaddr and ciaddr: every reply goes to the lease address, a relay in its subnet, or broadcast", () => {
    let seed = 0x5eed;
    const rand = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed;
    };
    const ip = () => {
      const n = rand();
      // Half of them inside the lease's /24 so both branches are exercised.
      return rand() & 1 ? `10.77.0.${n & 255}` : `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
    };
    const d = deps({ images: new FakeImages({ dhcpBootImageName: "shimx64.efi" }) });
    let replies = 0;
    for (let i = 0; i < 5000; i++) {
      const giaddr = rand() % 3 === 0 ? "0.0.0.0" : ip();
      const ciaddr = rand() % 2 === 0 ? "0.0.0.0" : ip();
      const type = [1, 3, 7, 8][rand() % 4];
      const extra: [number, Buffer][] = rand() & 1 ? [opt.requestedIp(ip())] : [];
      const ctx: DhcpReceiveContext = rand() & 1 ? { mode: "relay", address: ip(), port: 67 } : IFACE;
      const out = handleDhcpRequest(request({ type, giaddr, ciaddr, options: extra }), ctx, d);
      if (!out.reply) continue;
      replies++;
      const to = out.reply.address;
      const inSubnet = to.startsWith("10.77.0.") && to === giaddr && to !== "10.77.0.255" && to !== "10.77.0.0";
      assert.ok(
        to === LEASE_IP || inSubnet || (to === "255.255.255.255" && ctx.mode === "interface"),
        `reply to ${to} (giaddr ${giaddr}, ciaddr ${ciaddr}, type ${type}, mode ${ctx.mode})`,
      );
    }
    assert.ok(replies > 100, `only ${replies} replies: the fuzz does not reach the reply paths`);
  });
});

describe("RFC 5107 server-id-override (option 82 sub-option 11)", () => {
  it("replies name the relay as server id and echo option 82; REQUESTs naming the relay are ours", () => {
    const info = relayInfoWithOverride(RELAY_IP);
    const offer = handleDhcpRequest(request({ giaddr: RELAY_IP, options: [[82, info]] }), RELAY, deps());
    assert.equal(readIp(offer.reply?.packet.options.get(54)), RELAY_IP);
    assert.deepEqual(offer.reply?.packet.options.get(82), info);
    const renew = request({
      type: 3,
      giaddr: RELAY_IP,
      options: [opt.serverId(RELAY_IP), opt.requestedIp(LEASE_IP), [82, info]],
    });
    const ack = handleDhcpRequest(renew, RELAY, deps());
    assert.equal(ack.reply?.type, "ack", ack.ignoredReason);
    assert.equal(readIp(ack.reply.packet.options.get(54)), RELAY_IP);
    assert.deepEqual(decode(encode(ack.reply.packet)).options.get(82), info);
    // Without the sub-option, the relay's address in 54 is another server.
    const plain = request({ type: 3, giaddr: RELAY_IP, options: [opt.serverId(RELAY_IP), opt.requestedIp(LEASE_IP)] });
    assert.equal(handleDhcpRequest(plain, RELAY, deps()).ignoredReason, "other-server");
  });

  it("an override in a direct (unrelayed) packet is ignored", () => {
    const r = request({ type: 3, ciaddr: LEASE_IP, options: [[82, relayInfoWithOverride("192.0.2.9")]] });
    const out = handleDhcpRequest(r, FROM_CLIENT, deps());
    assert.equal(readIp(out.reply?.packet.options.get(54)), SERVER_IP);
  });
});
