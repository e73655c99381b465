import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decode, encode } from "../../../server/dhcp/codec.js";
import { readIp } from "../../../server/dhcp/options.js";
import { handleProxyRequest, type ProxyReceiveContext } from "../../../server/dhcp/proxy-handler.js";
import { deps, FakeImages, FULL_IMAGE, opt, request, SERVE_URL, SERVER_IP } from "./fakes.js";

/**
 * proxyDHCP policy (issue 5 §1.2): boot information only, for PXE clients of known Machines.
 * The firmware-level proof is test/vm/proxy-dhcp-boot.test.ts (dnsmasq + OVMF / SeaBIOS+iPXE).
 */

const UUID: [number, Buffer] = [97, Buffer.from("00112233445566778899aabbccddeeff00", "hex").subarray(0, 17)];
const onDhcpPort: ProxyReceiveContext = { address: "0.0.0.0", port: 68, via: "dhcp", interfaceName: "br0" };
const onBootPort: ProxyReceiveContext = { address: "10.77.0.21", port: 68, via: "boot-server", interfaceName: "br0" };
const ADDRESS_OPTIONS = [1, 3, 6, 12, 15, 28, 51, 58, 59];

function pxeDiscover(extra: [number, Buffer][] = [], arch = 7) {
  const uuid: [number, Buffer] = [97, Buffer.concat([Buffer.from([0]), Buffer.alloc(16, 0xab)])];
  return request({
    type: 1,
    options: [opt.vendorClass(`PXEClient:Arch:0000${arch}:UNDI:003000`), opt.arch(arch), uuid, ...extra],
  });
}

describe("proxyDHCP handler", () => {
  it("offers boot information only to a PXE DISCOVER of a known Machine: no address, no lease, option 97 echoed", () => {
    const d = deps({ images: new FakeImages(FULL_IMAGE) });
    const out = handleProxyRequest(pxeDiscover(), onDhcpPort, d);
    assert.ok(out.reply, `no reply: ${out.ignoredReason}`);
    assert.equal(out.reply.type, "offer");
    assert.equal(out.reply.address, "255.255.255.255");
    assert.equal(out.reply.port, 68);
    const offer = decode(encode(out.reply.packet));
    assert.equal(offer.op, 2);
    assert.equal(offer.yiaddr, "0.0.0.0", "a proxy offer has no address");
    assert.equal(offer.siaddr, SERVER_IP);
    assert.equal(offer.file, "shimx64.efi");
    assert.equal(offer.options.get(53)?.[0], 2);
    assert.equal(readIp(offer.options.get(54)), SERVER_IP);
    assert.equal(offer.options.get(60)?.toString("latin1"), "PXEClient");
    assert.equal(offer.options.get(67)?.toString("latin1"), "shimx64.efi");
    assert.deepEqual(offer.options.get(97), Buffer.concat([Buffer.from([0]), Buffer.alloc(16, 0xab)]));
    for (const code of ADDRESS_OPTIONS) assert.equal(offer.options.has(code), false, `option ${code} in a proxy offer`);
    // EDK2 drops a proxy offer with PXE discovery options (ProxyPxe10); without them it asks :4011.
    assert.equal(offer.options.has(43), false);
    assert.deepEqual(
      out.events.map((e) => [e.step, e.result, e.machine]),
      [
        ["dhcp.discover", "ok", "node-1"],
        ["dhcp.offer", "ok", "node-1"],
      ],
    );
    assert.equal(out.events[1]?.detail?.proxy, true);
  });

  it("answers the boot server REQUEST on :4011 with an ACK unicast back to its source", () => {
    const d = deps({ images: new FakeImages(FULL_IMAGE) });
    const req = request({
      type: 3,
      ciaddr: "10.77.0.21",
      options: [opt.vendorClass("PXEClient:Arch:00007:UNDI:003000"), opt.arch(7), UUID],
    });
    const out = handleProxyRequest(req, { ...onBootPort, port: 4011 }, d);
    assert.ok(out.reply);
    assert.equal(out.reply.type, "ack");
    assert.deepEqual([out.reply.address, out.reply.port], ["10.77.0.21", 4011]);
    const ack = decode(encode(out.reply.packet));
    assert.equal(ack.options.get(53)?.[0], 5);
    assert.equal(ack.yiaddr, "0.0.0.0");
    assert.equal(ack.ciaddr, "10.77.0.21");
    assert.equal(ack.options.get(67)?.toString("latin1"), "shimx64.efi", "EDK2 needs the boot file in the ACK");
    for (const code of ADDRESS_OPTIONS) assert.equal(ack.options.has(code), false, `option ${code} in a proxy ACK`);
    assert.equal(out.warning, undefined);
  });

  it("gives iPXE its script URL and a BIOS ROM the BIOS file (chooseBootFile)", () => {
    const d = deps({ images: new FakeImages(FULL_IMAGE) });
    const ipxe = request({
      type: 3,
      ciaddr: "10.77.0.21",
      options: [opt.vendorClass("PXEClient:Arch:00000:UNDI:002001"), opt.arch(0), opt.userClassRaw("iPXE")],
    });
    const out = handleProxyRequest(ipxe, onBootPort, d);
    assert.equal(out.reply?.packet.options.get(67)?.toString("latin1"), `${SERVE_URL}/boot.ipxe`);
    const bios = handleProxyRequest(pxeDiscover([], 0), onDhcpPort, d);
    assert.equal(bios.reply?.packet.file, "undionly.kpxe");
  });

  it("echoes a PXE_BOOT_ITEM of a boot server discovery REQUEST in option 43", () => {
    const d = deps({ images: new FakeImages(FULL_IMAGE) });
    const item = Buffer.from([43, 8, 71, 4, 0x80, 0x00, 0x00, 0x00, 255, 0]);
    const req = request({
      type: 3,
      ciaddr: "10.77.0.21",
      options: [opt.vendorClass("PXEClient:Arch:00000:UNDI:002001"), opt.arch(0), [43, item.subarray(2, 9)]],
    });
    const out = handleProxyRequest(req, onBootPort, d);
    assert.deepEqual(out.reply?.packet.options.get(43), Buffer.from([71, 4, 0x80, 0, 0, 0, 255]));
  });

  it("answers HTTP boot clients with HTTPClient and a URL", () => {
    const d = deps({ images: new FakeImages(FULL_IMAGE) });
    const req = request({ type: 1, options: [opt.vendorClass("HTTPClient:Arch:00016:UNDI:003001"), opt.arch(16)] });
    const out = handleProxyRequest(req, onDhcpPort, d);
    assert.equal(out.reply?.packet.options.get(60)?.toString("latin1"), "HTTPClient");
    assert.equal(out.reply?.packet.options.get(67)?.toString("latin1"), `${SERVE_URL}/shimx64.efi`);
  });

  it("stays silent for everything else: non-PXE clients, strangers, REQUESTs to the site server, no boot file", () => {
    const d = deps({ images: new FakeImages(FULL_IMAGE) });
    const plain = handleProxyRequest(request({ type: 1 }), onDhcpPort, d);
    assert.equal(plain.reply, undefined);
    assert.equal(plain.ignoredReason, "not-pxe-client");

    const stranger = handleProxyRequest({ ...pxeDiscover(), chaddr: Buffer.alloc(16, 7) }, onDhcpPort, d);
    assert.equal(stranger.reply, undefined);
    assert.equal(stranger.ignoredReason, "unknown-mac");
    assert.equal(d.discovery.records.length, 1, "a PXE stranger is recorded as discovered");

    const toSite = request({
      type: 3,
      options: [opt.vendorClass("PXEClient:Arch:00007"), opt.serverId("10.77.0.2"), opt.requestedIp("10.77.0.21")],
    });
    const other = handleProxyRequest(toSite, onDhcpPort, d);
    assert.equal(other.reply, undefined);
    assert.equal(other.ignoredReason, "other-server");
    assert.equal(other.warning, undefined, "the site gives the lease address: nothing to say");

    const wrong = request({
      type: 3,
      options: [opt.vendorClass("PXEClient:Arch:00007"), opt.serverId("10.77.0.2"), opt.requestedIp("10.77.0.99")],
    });
    const mismatch = handleProxyRequest(wrong, onDhcpPort, d);
    assert.equal(mismatch.reply, undefined);
    assert.match(mismatch.warning?.message ?? "", /another address than its lease/);

    const discoverOn4011 = handleProxyRequest(pxeDiscover(), onBootPort, d);
    assert.equal(discoverOn4011.ignoredReason, "unexpected-message-type");

    const noFile = handleProxyRequest(pxeDiscover(), onDhcpPort, deps({ images: new FakeImages() }));
    assert.equal(noFile.reply, undefined);
    assert.equal(noFile.ignoredReason, "no-boot-file");
    assert.match(String(noFile.events[0]?.detail?.bootSkipped), /not-ready/);
  });

  it("sends a relayed proxy offer back through the relay", () => {
    const d = deps({ images: new FakeImages(FULL_IMAGE), relayPort: 1067 });
    const relayed = { ...pxeDiscover(), giaddr: "10.9.0.1" };
    const out = handleProxyRequest(relayed, { ...onDhcpPort, address: "10.9.0.1", port: 67 }, d);
    assert.deepEqual([out.reply?.address, out.reply?.port], ["10.9.0.1", 1067]);
    assert.equal(out.reply?.packet.giaddr, "10.9.0.1");
  });
});

describe("proxyDHCP handler on hostile input", () => {
  it("never throws on 20k mutated PXE datagrams, and every reply it builds encodes without an address", () => {
    const d = deps({ images: new FakeImages(FULL_IMAGE) });
    const seeds = [
      encode(pxeDiscover()),
      encode(pxeDiscover([opt.userClassRaw("iPXE")], 0)),
      encode(
        request({
          type: 3,
          ciaddr: "10.77.0.21",
          options: [opt.vendorClass("PXEClient:Arch:00007"), [43, Buffer.from([71, 4, 0x80, 0, 0, 0, 255])]],
        }),
      ),
    ];
    // Deterministic xorshift, so a failure reproduces.
    let state = 0x5eed;
    const next = () => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return state >>> 0;
    };
    let replies = 0;
    for (let i = 0; i < 20_000; i++) {
      const buf = Buffer.from(seeds[i % seeds.length]!);
      const flips = 1 + (next() % 8);
      for (let f = 0; f < flips; f++) buf[240 + (next() % (buf.length - 240))] = next() & 255;
      let packet: ReturnType<typeof decode>;
      try {
        packet = decode(buf);
      } catch {
        continue;
      }
      const out = handleProxyRequest(packet, i & 1 ? onDhcpPort : onBootPort, d);
      assert.ok(out.events.length >= 1);
      if (out.reply) {
        replies++;
        const reply = decode(encode(out.reply.packet));
        assert.equal(reply.yiaddr, "0.0.0.0");
        for (const code of ADDRESS_OPTIONS) assert.equal(reply.options.has(code), false);
      }
    }
    assert.ok(replies > 1000, `only ${replies} replies: the corpus does not reach the reply path`);
  });
});
