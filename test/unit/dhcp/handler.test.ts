import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CLIENT_ARCH_NAMES, clientArchName } from "../../../server/dhcp/client-arch.js";
import { decode, encode } from "../../../server/dhcp/codec.js";
import { type DhcpReceiveContext, handleDhcpRequest } from "../../../server/dhcp/handler.js";
import { readIp, readIps, readString, readU32, userClassOption } from "../../../server/dhcp/options.js";
import {
  deps,
  FakeBackend,
  FakeImages,
  FULL_IMAGE,
  lease,
  machine,
  opt,
  request,
  SERVE_URL,
  SERVER_IP,
} from "./fakes.js";

/** A relay on the lease subnet 10.77.0.0/24 (relayed requests from elsewhere are not answered). */
const GIADDR = "10.77.0.254";
const IFACE: DhcpReceiveContext = { mode: "interface", address: "0.0.0.0", port: 68, interfaceName: "br0" };
const RELAY: DhcpReceiveContext = { mode: "relay", address: GIADDR, port: 67 };
const MAC = "02:50:58:00:00:03";
const LEASE_IP = "10.77.0.21";

function str(p: { options: Map<number, Buffer> }, code: number): string | undefined {
  return readString(p.options.get(code));
}

describe("dhcp handler: answers for known MACs", () => {
  it("DISCOVER → OFFER with the §3.3 options and no boot file while the image is not ready", () => {
    const d = deps();
    const out = handleDhcpRequest(request({ type: 1, flags: 0 }), IFACE, d);
    const reply = out.reply;
    assert.ok(reply);
    assert.equal(reply.type, "offer");
    const p = reply.packet;
    assert.equal(p.op, 2);
    assert.equal(p.xid, 0x12345678);
    assert.equal(p.yiaddr, LEASE_IP);
    assert.equal(p.siaddr, SERVER_IP);
    assert.equal(p.ciaddr, "0.0.0.0");
    assert.equal(p.options.get(53)?.[0], 2);
    assert.equal(readIp(p.options.get(1)), "255.255.255.0");
    assert.equal(readIp(p.options.get(54)), SERVER_IP);
    assert.equal(readU32(p.options.get(51)), 86400);
    assert.deepEqual(readIps(p.options.get(3)), ["10.77.0.254"]);
    assert.deepEqual(readIps(p.options.get(6)), ["10.77.0.53", "1.1.1.1"]);
    assert.equal(str(p, 12), "node-1");
    assert.equal(p.options.has(66), false);
    assert.equal(p.options.has(67), false);
    assert.equal(p.file, "");
    assert.equal(out.warning?.key, "no-boot-file:node-1");
    assert.deepEqual(
      out.events.map((e) => [e.step, e.result, e.machine]),
      [
        ["dhcp.discover", "ok", "node-1"],
        ["dhcp.offer", "ok", "node-1"],
      ],
    );
    // Interface mode, client without address: broadcast.
    assert.deepEqual([reply.address, reply.port], ["255.255.255.255", 68]);
    // The reply encodes and decodes cleanly.
    assert.equal(decode(encode(p)).yiaddr, LEASE_IP);
  });

  it("with a ready image: options 66/67, BOOTP file and sname, siaddr", () => {
    const d = deps({ images: new FakeImages({ dhcpBootImageName: "shimx64.efi" }) });
    const p = handleDhcpRequest(request(), IFACE, d).reply!.packet;
    assert.equal(str(p, 66), SERVER_IP);
    assert.equal(str(p, 67), "shimx64.efi");
    assert.equal(p.file, "shimx64.efi");
    assert.equal(p.sname, SERVER_IP);
    assert.equal(p.siaddr, SERVER_IP);
    assert.equal(p.options.has(60), false, "no option 60 echo to a client that sent none");
    assert.equal(p.options.has(43), false);
  });

  it("matches the lease MAC case-insensitively and honours leaseSeconds", () => {
    const backend = new FakeBackend([machine("upper", [lease("02:50:58:00:00:03".toUpperCase(), "10.77.0.99")])]);
    const p = handleDhcpRequest(request(), IFACE, deps({ backend, leaseSeconds: 600 })).reply!.packet;
    assert.equal(p.yiaddr, "10.77.0.99");
    assert.equal(readU32(p.options.get(51)), 600);
  });

  it("skips invalid router, DNS entries and mask", () => {
    const backend = new FakeBackend([
      machine("bad", [
        lease(MAC, LEASE_IP, { gateway: "none", dns: ["x", "9.9.9.9", "1.2.3"], subnetMask: "255.0.255.0" }),
      ]),
    ]);
    const out = handleDhcpRequest(request(), IFACE, deps({ backend }));
    const p = out.reply!.packet;
    assert.equal(p.options.has(3), false);
    assert.deepEqual(readIps(p.options.get(6)), ["9.9.9.9"]);
    assert.equal(p.options.has(1), false);
    assert.equal(out.warning?.key, "bad-mask:bad");
  });

  it("does not answer when the lease IP is invalid, the Machine has no pxe spec, or no lease matches", () => {
    const cases: [FakeBackend, string][] = [
      [new FakeBackend([machine("m", [lease(MAC, "10.77.0.300")])]), "bad-lease"],
      [new FakeBackend([{ ...machine("m", []), spec: {} }]), "unknown-mac"],
    ];
    for (const [backend, reason] of cases) {
      const out = handleDhcpRequest(request(), IFACE, deps({ backend }));
      assert.equal(out.reply, undefined);
      assert.equal(out.ignoredReason, reason);
    }
    // byMac found it, but no pxe spec / no matching lease (a backend indexing other fields).
    const odd = new FakeBackend([]);
    odd.byMac = () => ({ ...machine("m", []), spec: {} });
    assert.equal(handleDhcpRequest(request(), IFACE, deps({ backend: odd })).ignoredReason, "no-pxe-spec");
    odd.byMac = () => machine("m", [lease("02:00:00:00:00:01", "10.0.0.1")]);
    assert.equal(handleDhcpRequest(request(), IFACE, deps({ backend: odd })).ignoredReason, "no-lease");
  });

  it("echoes option 82 (last) and option 61, and follows the option 55 order", () => {
    const relayInfo = Buffer.from([1, 3, 0x65, 0x74, 0x68, 2, 2, 0xaa, 0xbb]);
    const clientId = Buffer.from([1, 2, 0x50, 0x58, 0, 0, 3]);
    const prl = Buffer.from([6, 3, 1, 12, 82, 51]);
    const r = request({
      giaddr: GIADDR,
      options: [
        [55, prl],
        [61, clientId],
        [82, relayInfo],
      ],
    });
    const p = handleDhcpRequest(r, RELAY, deps()).reply!.packet;
    assert.deepEqual(p.options.get(82), relayInfo);
    assert.deepEqual(p.options.get(61), clientId);
    const codes = [...p.options.keys()];
    assert.deepEqual(codes.slice(0, 6), [53, 6, 3, 1, 12, 51]);
    assert.equal(codes.at(-1), 82);
    const wire = encode(p);
    assert.deepEqual(decode(wire).options.get(82), relayInfo);
  });
});

describe("dhcp handler: REQUEST rules (RFC 2131 §4.3.2)", () => {
  it("SELECTING with our server id and the lease IP → ACK", () => {
    const r = request({ type: 3, options: [opt.serverId(SERVER_IP), opt.requestedIp(LEASE_IP)] });
    const out = handleDhcpRequest(r, IFACE, deps());
    assert.equal(out.reply?.type, "ack");
    assert.equal(out.reply?.packet.options.get(53)?.[0], 5);
    assert.equal(out.reply?.packet.yiaddr, LEASE_IP);
    assert.deepEqual(
      out.events.map((e) => e.step),
      ["dhcp.request", "dhcp.ack"],
    );
  });

  it("option 54 naming another server → silently ignored, never ACKed", () => {
    const r = request({ type: 3, options: [opt.serverId("10.77.0.2"), opt.requestedIp(LEASE_IP)] });
    const d = deps();
    const out = handleDhcpRequest(r, IFACE, d);
    assert.equal(out.reply, undefined);
    assert.equal(out.ignoredReason, "other-server");
    assert.equal(out.events[0].reason, "other-server");
    assert.equal(d.discovery.records.length, 0);
  });

  it("INIT-REBOOT asking for a wrong IP → NAK broadcast; the right one → ACK", () => {
    const wrong = handleDhcpRequest(request({ type: 3, options: [opt.requestedIp("10.77.0.99")] }), IFACE, deps());
    assert.equal(wrong.reply?.type, "nak");
    const nak = wrong.reply!.packet;
    assert.equal(nak.options.get(53)?.[0], 6);
    assert.equal(readIp(nak.options.get(54)), SERVER_IP);
    assert.equal(nak.yiaddr, "0.0.0.0");
    assert.equal(nak.siaddr, "0.0.0.0");
    assert.equal(nak.options.has(51), false);
    assert.deepEqual([wrong.reply!.address, wrong.reply!.port], ["255.255.255.255", 68]);
    assert.equal(wrong.events[1].step, "dhcp.nak");
    const right = handleDhcpRequest(request({ type: 3, options: [opt.requestedIp(LEASE_IP)] }), IFACE, deps());
    assert.equal(right.reply?.type, "ack");
  });

  it("relayed NAK goes to giaddr:67 with the broadcast bit", () => {
    const r = request({ type: 3, giaddr: GIADDR, options: [opt.requestedIp("10.77.0.99")] });
    const out = handleDhcpRequest(r, RELAY, deps());
    assert.equal(out.reply?.type, "nak");
    assert.deepEqual([out.reply!.address, out.reply!.port], [GIADDR, 67]);
    assert.equal(out.reply!.packet.flags & 0x8000, 0x8000);
    assert.equal(out.reply!.packet.giaddr, GIADDR);
  });

  it("RENEWING (ciaddr = lease) → ACK unicast to ciaddr:68 with ciaddr copied; wrong ciaddr → NAK", () => {
    const ok = handleDhcpRequest(request({ type: 3, ciaddr: LEASE_IP }), { ...IFACE, address: LEASE_IP }, deps());
    assert.equal(ok.reply?.type, "ack");
    assert.deepEqual([ok.reply!.address, ok.reply!.port], [LEASE_IP, 68]);
    assert.equal(ok.reply!.packet.ciaddr, LEASE_IP);
    const bad = handleDhcpRequest(request({ type: 3, ciaddr: "10.77.0.77" }), IFACE, deps());
    assert.equal(bad.reply?.type, "nak");
  });
});

describe("dhcp handler: other messages", () => {
  it("unknown MAC: no reply, recorded in the discovery store with its facts", () => {
    const d = deps();
    const uuid = Buffer.concat([Buffer.from([0]), Buffer.from("4c4c4544003010808034b3c04f303032", "hex")]);
    const r = request({
      mac: "52:54:00:AB:CD:EF",
      giaddr: GIADDR,
      options: [opt.arch(7), opt.vendorClass("PXEClient:Arch:00007:UNDI:003000"), opt.userClassRaw("iPXE"), [97, uuid]],
    });
    const out = handleDhcpRequest(r, { ...RELAY, interfaceName: "eth1" }, d);
    assert.equal(out.reply, undefined);
    assert.equal(out.ignoredReason, "unknown-mac");
    assert.deepEqual(d.discovery.records, [
      {
        mac: "52:54:00:ab:cd:ef",
        arch: 7,
        vendorClass: "PXEClient:Arch:00007:UNDI:003000",
        userClass: "iPXE",
        uuid: "4c4c4544-0030-1080-8034-b3c04f303032",
        relayAddress: GIADDR,
        interface: "eth1",
      },
    ]);
    assert.equal(out.events[0].step, "dhcp.discover");
    assert.equal(out.events[0].result, "not-found");
    assert.equal(out.events[0].reason, "unknown-mac");
  });

  it("RELEASE and DECLINE: no reply; DECLINE raises a warning", () => {
    const rel = handleDhcpRequest(request({ type: 7, ciaddr: LEASE_IP }), IFACE, deps());
    assert.equal(rel.reply, undefined);
    assert.equal(rel.events[0].step, "dhcp.release");
    assert.equal(rel.events[0].machine, "node-1");
    const dec = handleDhcpRequest(request({ type: 4, options: [opt.requestedIp(LEASE_IP)] }), IFACE, deps());
    assert.equal(dec.reply, undefined);
    assert.equal(dec.events[0].step, "dhcp.decline");
    assert.equal(dec.events[0].reason, "address-in-use");
    assert.match(dec.warning?.message ?? "", /declined/);
  });

  it("INFORM → ACK without yiaddr and lease time, sent to ciaddr", () => {
    const out = handleDhcpRequest(request({ type: 8, ciaddr: LEASE_IP }), { ...IFACE, address: LEASE_IP }, deps());
    assert.equal(out.reply?.type, "ack");
    const p = out.reply!.packet;
    assert.equal(p.yiaddr, "0.0.0.0");
    assert.equal(p.options.has(51), false);
    assert.equal(readIp(p.options.get(1)), "255.255.255.0");
    assert.deepEqual([out.reply!.address, out.reply!.port], [LEASE_IP, 68]);
    assert.equal(out.events[0].step, "dhcp.inform");
  });

  it("ignores BOOTREPLYs, non-ethernet, missing message type and server-only message types", () => {
    const cases: [ReturnType<typeof request>, string][] = [
      [request({ op: 2 }), "not-bootrequest"],
      [request({ hlen: 8 }), "not-ethernet"],
      [request({ type: 0 }), "no-message-type"],
      [request({ type: 2 }), "unexpected-message-type"],
      [request({ type: 42 }), "no-message-type"],
    ];
    for (const [r, reason] of cases) {
      const out = handleDhcpRequest(r, IFACE, deps());
      assert.equal(out.reply, undefined, reason);
      assert.equal(out.ignoredReason, reason);
      assert.equal(out.events.length, 1);
      assert.equal(out.events[0].step, "dhcp.ignored");
    }
  });
});

describe("dhcp handler: destinations (RFC 2131 §4.1) and modes", () => {
  it("relay mode drops packets without giaddr", () => {
    const out = handleDhcpRequest(request(), RELAY, deps());
    assert.equal(out.reply, undefined);
    assert.equal(out.ignoredReason, "not-relayed");
  });

  it("giaddr → giaddr:67 in both modes; ciaddr → ciaddr:68; broadcast flag → broadcast", () => {
    const relayed = handleDhcpRequest(request({ giaddr: GIADDR }), RELAY, deps()).reply!;
    assert.deepEqual([relayed.address, relayed.port], [GIADDR, 67]);
    assert.equal(relayed.packet.giaddr, GIADDR);
    const relayedIface = handleDhcpRequest(request({ giaddr: GIADDR }), IFACE, deps()).reply!;
    assert.deepEqual([relayedIface.address, relayedIface.port], [GIADDR, 67]);
    const custom = handleDhcpRequest(request({ giaddr: GIADDR }), RELAY, deps({ relayPort: 10067 })).reply!;
    assert.equal(custom.port, 10067);
    const ci = handleDhcpRequest(request({ type: 3, ciaddr: LEASE_IP }), IFACE, deps()).reply!;
    assert.deepEqual([ci.address, ci.port], [LEASE_IP, 68]);
    const bc = handleDhcpRequest(request({ flags: 0x8000 }), IFACE, deps()).reply!;
    assert.deepEqual([bc.address, bc.port], ["255.255.255.255", 68]);
    assert.equal(bc.packet.flags, 0x8000);
  });
});

describe("dhcp handler: boot file per client", () => {
  const ready = () => deps({ images: new FakeImages(FULL_IMAGE) });
  const boot = (options: [number, Buffer][], d = ready()) => {
    const p = handleDhcpRequest(request({ options }), IFACE, d).reply!.packet;
    return { file: str(p, 67), bootp: p.file, vendor: str(p, 60), tftp: str(p, 66) };
  };

  it("iPXE (raw or RFC 3004 user class) gets the script URL", () => {
    assert.equal(boot([opt.userClassRaw("iPXE"), opt.arch(0)]).file, `${SERVE_URL}/boot.ipxe`);
    assert.equal(boot([[77, userClassOption(["foo", "iPXE"])], opt.arch(7)]).file, `${SERVE_URL}/boot.ipxe`);
  });

  it("iPXE without an ipxeScriptName falls back to the upstream default", () => {
    const d = deps({ images: new FakeImages({ dhcpBootImageName: "shimx64.efi" }) });
    assert.equal(boot([opt.userClassRaw("iPXE"), opt.arch(7)], d).file, "shimx64.efi");
  });

  it("UEFI HTTP boot gets a URL and option 60 HTTPClient", () => {
    const r = boot([opt.vendorClass("HTTPClient:Arch:00016:UNDI:003016"), opt.arch(0x10)]);
    assert.equal(r.file, `${SERVE_URL}/shimx64.efi`);
    assert.equal(r.bootp, `${SERVE_URL}/shimx64.efi`);
    assert.equal(r.vendor, "HTTPClient");
    const p = handleDhcpRequest(request({ options: [opt.vendorClass("HTTPClient")] }), IFACE, ready()).reply!.packet;
    assert.equal(p.options.has(43), false);
  });

  it("BIOS PXE gets biosBootImageName, EFI gets dhcpBootImageName, both with PXEClient echoed", () => {
    const bios = boot([opt.vendorClass("PXEClient:Arch:00000:UNDI:002001"), opt.arch(0)]);
    const withVendor = handleDhcpRequest(
      request({ options: [opt.vendorClass("PXEClient:Arch:00007:UNDI:003000"), opt.arch(7)] }),
      IFACE,
      ready(),
    ).reply!.packet;
    // OVMF needs PXE discovery control 8 next to the PXEClient echo (see handler.ts).
    assert.deepEqual(withVendor.options.get(43), Buffer.from([6, 1, 8, 255]));
    assert.deepEqual(bios, { file: "undionly.kpxe", bootp: "undionly.kpxe", vendor: "PXEClient", tftp: SERVER_IP });
    for (const arch of [7, 9]) {
      const efi = boot([opt.vendorClass(`PXEClient:Arch:0000${arch}:UNDI:003000`), opt.arch(arch)]);
      assert.equal(efi.file, "shimx64.efi");
      assert.equal(efi.vendor, "PXEClient");
    }
    // Changed by issue 5 §1.1: BIOS and arm64 clients no longer get the x64 file (see boot-file tests).
  });

  it("a URL too long for the BOOTP file field stays in option 67 only", () => {
    const long = "a".repeat(140);
    const d = deps({ images: new FakeImages({ dhcpBootImageName: long }) });
    const r = boot([opt.vendorClass("HTTPClient"), opt.arch(0x10)], d);
    assert.equal(r.file, `${SERVE_URL}/${long}`);
    assert.equal(r.bootp, "");
  });

  it("arch names come from the constant table", () => {
    assert.equal(clientArchName(7), "x64-uefi");
    assert.equal(clientArchName(0x13), "arm64-uefi-http");
    assert.equal(clientArchName(0x1234), "arch-0x1234");
    assert.equal(CLIENT_ARCH_NAMES.get(0), "x86-bios");
  });
});
