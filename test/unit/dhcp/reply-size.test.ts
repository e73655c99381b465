import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decode, encode } from "../../../server/dhcp/codec.js";
import { type DhcpReceiveContext, handleDhcpRequest } from "../../../server/dhcp/handler.js";
import { readIps, readString, readU16 } from "../../../server/dhcp/options.js";
import { DROP_ORDER, fitReply, replySizeLimit } from "../../../server/dhcp/reply-size.js";
import { deps, FakeBackend, FakeImages, lease, machine, readCaptures, request } from "./fakes.js";

/** Issue 5 §1.6: option 57 and the 576-byte default; overload (52) first, then documented drops. */
const MAC = "02:50:58:00:00:03";
const IFACE: DhcpReceiveContext = { mode: "interface", address: "0.0.0.0", port: 68 };
const RELAY: DhcpReceiveContext = { mode: "relay", address: "10.77.0.254", port: 67 };
const u16 = (n: number) => Buffer.from([n >> 8, n & 255]);
const DNS = Array.from({ length: 40 }, (_, i) => `10.77.1.${i + 1}`);
const LONG_NAME = `node-${"a".repeat(90)}`;

function bigDeps() {
  return deps({
    backend: new FakeBackend([machine(LONG_NAME, [lease(MAC, "10.77.0.21", { dns: DNS })])]),
    images: new FakeImages({ dhcpBootImageName: "shimx64.efi" }),
  });
}

describe("reply size", () => {
  it("limit: option 57 minus IP/UDP headers, 576 when absent or invalid, one Ethernet frame at most", () => {
    assert.equal(replySizeLimit(request()), 548);
    assert.equal(replySizeLimit(request({ options: [[57, u16(1500)]] })), 1472);
    assert.equal(replySizeLimit(request({ options: [[57, u16(300)]] })), 548);
    assert.equal(replySizeLimit(request({ options: [[57, u16(9000)]] })), 1472);
    assert.equal(replySizeLimit(request({ options: [[57, Buffer.from([1])]] })), 548);
  });

  it("a reply too big for 548 bytes moves options into file/sname (option 52) and loses nothing", () => {
    const relayInfo = Buffer.concat([Buffer.from([1, 40]), Buffer.alloc(40, 0x61)]);
    const r = request({ giaddr: "10.77.0.254", options: [[82, relayInfo]] });
    const out = handleDhcpRequest(r, RELAY, bigDeps());
    assert.ok(out.reply);
    const wire = encode(out.reply.packet);
    assert.ok(wire.length <= 548, `reply is ${wire.length} bytes`);
    const back = decode(wire);
    assert.ok([1, 2, 3].includes(wire[wire.indexOf(Buffer.from([52, 1])) + 2]), "option 52 in the options field");
    assert.equal(readString(back.options.get(12)), LONG_NAME);
    assert.deepEqual(readIps(back.options.get(6)), DNS);
    assert.equal(readString(back.options.get(67)), "shimx64.efi");
    assert.deepEqual(back.options.get(82), relayInfo);
    assert.equal(back.yiaddr, "10.77.0.21");
    // Option 82 stays in the options field, last (relays strip it there).
    const main = wire.subarray(240);
    const at82 = main.indexOf(Buffer.from([82, relayInfo.length]));
    assert.ok(at82 > 0 && main[at82 + 2 + relayInfo.length] === 255, "82 is the last option of the field");
    const offer = out.events.find((e) => e.step === "dhcp.offer");
    assert.ok(Number(offer?.detail?.overload) > 0);
  });

  it("sname is used before file, so PXE ROMs reading only BOOTP fields keep the boot file name", () => {
    const d = deps({
      backend: new FakeBackend([
        machine(`n-${"s".repeat(48)}`, [lease(MAC, "10.77.0.21", { dns: DNS.concat(DNS).slice(0, 55) })]),
      ]),
      images: new FakeImages({ dhcpBootImageName: "shimx64.efi" }),
    });
    const out = handleDhcpRequest(request(), IFACE, d);
    assert.equal(out.reply?.packet.overload?.file, undefined);
    const wire = encode(out.reply!.packet);
    assert.ok(wire.length <= 548);
    assert.deepEqual([...wire.subarray(243, 246)], [52, 1, 2], "option 52 = 2 (sname only)");
    const back = decode(wire);
    assert.equal(back.file, "shimx64.efi");
    assert.equal(readString(back.options.get(12)), `n-${"s".repeat(48)}`);
  });

  it("a client that accepts more (option 57 = 1500) gets the plain layout", () => {
    const out = handleDhcpRequest(request({ options: [[57, u16(1500)]] }), IFACE, bigDeps());
    const wire = encode(out.reply!.packet);
    assert.ok(wire.length > 548);
    assert.equal(decode(wire).file, "shimx64.efi");
    assert.equal(out.reply!.packet.overload, undefined);
  });

  it("when overload is not enough, optional options go in DROP_ORDER and the essentials stay", () => {
    // 255-byte option 82 and a 200-byte client id: both cannot fit with everything else.
    const relayInfo = Buffer.concat([Buffer.from([1, 253]), Buffer.alloc(253, 0x62)]);
    const clientId = Buffer.concat([Buffer.from([0]), Buffer.alloc(199, 0x63)]);
    const r = request({
      giaddr: "10.77.0.254",
      options: [
        [82, relayInfo],
        [61, clientId],
      ],
    });
    const out = handleDhcpRequest(r, RELAY, bigDeps());
    assert.ok(out.reply);
    const wire = encode(out.reply.packet);
    assert.ok(wire.length <= 548, `reply is ${wire.length} bytes`);
    const back = decode(wire);
    for (const code of [53, 54, 51, 1, 3, 67, 82]) assert.ok(back.options.has(code), `option ${code} kept`);
    const dropped = String(out.events.at(-1)?.detail?.droppedOptions ?? "").split(",");
    assert.deepEqual(dropped, DROP_ORDER.filter((c) => !back.options.has(c) && [12, 6, 66, 61].includes(c)).map(name));
    assert.equal(dropped[0], "host-name", "the host name goes first");
  });

  it("fitReply leaves a small reply alone and gives up (undefined) when the essentials exceed the limit", () => {
    const small = handleDhcpRequest(request(), IFACE, deps()).reply!.packet;
    assert.deepEqual(fitReply(small, 548), { packet: small, overload: 0, dropped: [] });
    assert.equal(fitReply(small, 260), undefined);
  });

  it("real captures: udhcpc (57 = 576) and the firmware ROMs (57 = 1472) get replies within their size", () => {
    for (const [label, wire] of readCaptures()) {
      const p = decode(wire);
      const mac = [...p.chaddr.subarray(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join(":");
      const d = deps({
        backend: new FakeBackend([machine(LONG_NAME, [lease(mac, "10.77.0.21", { dns: DNS.concat(DNS) })])]),
        images: new FakeImages({ dhcpBootImageName: "shimx64.efi", ipxeScriptName: "boot.ipxe" }),
      });
      const out = handleDhcpRequest(p, IFACE, d);
      assert.ok(out.reply, label);
      const limit = (readU16(p.options.get(57)) ?? 576) - 28;
      assert.ok(encode(out.reply.packet).length <= limit, `${label}: over ${limit}`);
    }
  });
});

describe("reply size: property over random leases and requests", () => {
  it("every reply encodes within the client's limit, decodes, and keeps the essentials", () => {
    let seed = 0x57;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    let overloaded = 0;
    for (let i = 0; i < 2000; i++) {
      const dns = Array.from({ length: rand(64) }, (_, k) => `10.77.2.${k + 1}`);
      const hostName = `n${"x".repeat(rand(200))}`;
      const options: [number, Buffer][] = [];
      if (rand(2)) options.push([57, u16(rand(2) ? 576 + rand(1000) : rand(600))]);
      if (rand(2)) options.push([61, Buffer.alloc(2 + rand(250), 1)]);
      const relayed = rand(2) === 1;
      const circuitId = rand(240);
      if (relayed) options.push([82, Buffer.concat([Buffer.from([1, circuitId]), Buffer.alloc(circuitId, 0x63)])]);
      if (rand(2)) options.push([60, Buffer.from("PXEClient:Arch:00007:UNDI:003016")], [93, Buffer.from([0, 7])]);
      const d = deps({
        backend: new FakeBackend([machine(hostName, [lease(MAC, "10.77.0.21", { dns })])]),
        images: new FakeImages({ dhcpBootImageName: `${"b".repeat(rand(120))}shimx64.efi` }),
      });
      const r = request({ type: rand(2) ? 1 : 3, giaddr: relayed ? "10.77.0.254" : "0.0.0.0", options });
      const out = handleDhcpRequest(r, relayed ? RELAY : IFACE, d);
      if (!out.reply) {
        assert.equal(out.ignoredReason, "reply-too-big");
        continue;
      }
      const wire = encode(out.reply.packet);
      assert.ok(wire.length <= replySizeLimit(r), `case ${i}: ${wire.length} > ${replySizeLimit(r)}`);
      const back = decode(wire);
      for (const code of [53, 54, 1, 3]) assert.ok(back.options.has(code), `case ${i}: option ${code}`);
      assert.match(readString(back.options.get(67)) ?? "", /shimx64\.efi$/);
      if (relayed) assert.deepEqual(back.options.get(82), options.find(([c]) => c === 82)?.[1]);
      if (out.reply.packet.overload) overloaded++;
    }
    assert.ok(overloaded > 100, `only ${overloaded} overloaded replies: the property misses that path`);
  });
});

function name(code: number): string {
  return ({ 12: "host-name", 6: "dns-server", 66: "tftp-server-name", 61: "client-id" } as Record<number, string>)[
    code
  ];
}
