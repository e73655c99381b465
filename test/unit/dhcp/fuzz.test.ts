import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pino from "pino";
import { Registry } from "prom-client";
import { DhcpDecodeError, decode, encode, tryDecode } from "../../../server/dhcp/codec.js";
import { type DhcpReceiveContext, handleDhcpRequest } from "../../../server/dhcp/handler.js";
import { userClassOption } from "../../../server/dhcp/options.js";
import { DhcpServer } from "../../../server/dhcp/server.js";
import type { DhcpTransport, ReceivedDatagram } from "../../../server/dhcp/transport.js";
import { BootEventBus } from "../../../server/events/boot-events.js";
import { prng } from "../../support/prng.js";
import {
  deps,
  FakeBackend,
  FakeDiscovery,
  FakeImages,
  FULL_IMAGE,
  lease,
  machine,
  opt,
  readCaptures,
  request,
  SERVE_URL,
} from "./fakes.js";

function seeds(): Buffer[] {
  const out = [...readCaptures().values()];
  out.push(
    encode(
      request({
        giaddr: "10.0.1.1",
        options: [
          [55, Buffer.from([1, 3, 6, 12, 66, 67, 82])],
          [61, Buffer.from([1, 2, 0x50, 0x58, 0, 0, 3])],
          [77, userClassOption(["iPXE", "x"])],
          [82, Buffer.from([1, 3, 0x65, 0x74, 0x68])],
          [43, Buffer.alloc(300, 7)],
        ],
      }),
    ),
    encode(request({ type: 3, options: [opt.serverId("10.77.0.1"), opt.requestedIp("10.77.0.21")] })),
    encode(request({ type: 3, ciaddr: "10.77.0.9" })),
    encode(request({ type: 8, ciaddr: "10.77.0.21" })),
    encode(request({ type: 4, options: [opt.requestedIp("10.77.0.21")] })),
  );
  // An overloaded packet: options continue in file and sname.
  const over = encode(request({ options: [[52, Buffer.from([3])]] }));
  Buffer.from([60, 4, 0x48, 0x54, 0x54, 0x50, 255]).copy(over, 108);
  Buffer.from([93, 2, 0, 0x10, 255]).copy(over, 44);
  out.push(over);
  return out;
}

/** Walk the options of `buf` and return the offsets of their length bytes. */
function lengthOffsets(buf: Buffer): number[] {
  const out: number[] = [];
  let i = 240;
  while (i + 1 < buf.length && buf[i] !== 255) {
    if (buf[i] === 0) {
      i++;
      continue;
    }
    out.push(i + 1);
    i += 2 + buf[i + 1];
  }
  return out;
}

function mutate(seed: Buffer, rnd: () => number): Buffer {
  const int = (n: number) => Math.floor(rnd() * n);
  const buf = Buffer.from(seed);
  switch (int(6)) {
    case 0: {
      const flips = 1 + int(8);
      for (let i = 0; i < flips; i++) {
        const at = int(buf.length);
        buf[at] ^= 1 << int(8);
      }
      return buf;
    }
    case 1:
      return buf.subarray(0, int(buf.length + 1));
    case 2: {
      const offsets = lengthOffsets(buf);
      if (offsets.length > 0) buf[offsets[int(offsets.length)]] = int(256);
      return buf;
    }
    case 3: {
      // Random option bytes after a valid header and cookie.
      const tail = Buffer.alloc(int(400));
      for (let i = 0; i < tail.length; i++) tail[i] = int(256);
      return Buffer.concat([buf.subarray(0, 240), tail]);
    }
    case 4: {
      // Random overload value and garbage in file/sname.
      const offsets = lengthOffsets(buf);
      const at = offsets.length > 0 ? offsets[int(offsets.length)] - 1 : 240;
      if (at + 3 <= buf.length) {
        buf[at] = 52;
        buf[at + 1] = 1;
        buf[at + 2] = int(5);
      }
      for (let i = 0; i < 20; i++) buf[44 + int(192)] = int(256);
      return buf;
    }
    default: {
      const out = Buffer.alloc(int(700));
      for (let i = 0; i < out.length; i++) out[i] = int(256);
      return out;
    }
  }
}

const MACS = ["02:50:58:00:00:03", "52:54:00:12:34:56"];

describe("dhcp fuzz", () => {
  it("100k random and mutated datagrams: decode fails only with DhcpDecodeError, the handler never throws", () => {
    const rnd = prng(0xd4c9);
    const corpus = seeds();
    const d = deps({
      backend: new FakeBackend(MACS.map((m, i) => machine(`m${i}`, [lease(m, `10.77.0.${21 + i}`)]))),
      images: new FakeImages(FULL_IMAGE),
    });
    d.discovery.keep = false;
    const contexts: DhcpReceiveContext[] = [
      { mode: "interface", address: "0.0.0.0", port: 68, interfaceName: "br0" },
      { mode: "relay", address: "10.0.1.1", port: 67 },
    ];
    let decoded = 0;
    let replies = 0;
    for (let i = 0; i < 100_000; i++) {
      const buf = mutate(corpus[i % corpus.length], rnd);
      const result = tryDecode(buf);
      // decode() is tryDecode() plus a throw; every 4th buffer also goes through it (throwing
      // costs ~20 µs here, which would dominate the run).
      if (i % 4 === 0) {
        try {
          decode(buf);
          assert.ok(result.ok, `iteration ${i}: decode accepted what tryDecode refused`);
        } catch (err) {
          if (!(err instanceof DhcpDecodeError)) assert.fail(`iteration ${i}: decode threw ${err}`);
          assert.ok(!result.ok && err.reason === result.reason, `iteration ${i}: decode and tryDecode disagree`);
        }
      }
      if (!result.ok) continue;
      const packet = result.packet;
      decoded++;
      try {
        const out = handleDhcpRequest(packet, contexts[i & 1], d);
        assert.ok(out.events.length >= 1);
        if (out.reply) {
          replies++;
          decode(encode(out.reply.packet));
        }
      } catch (err) {
        assert.fail(`iteration ${i}: handler path threw ${err} for ${buf.toString("hex")}`);
      }
    }
    // The corpus must actually exercise both paths.
    assert.ok(decoded > 20_000, `decoded ${decoded}`);
    assert.ok(replies > 1_000, `replies ${replies}`);
  });

  it("10k mutated datagrams through DhcpServer: no handling errors, every decode failure counted", async () => {
    let deliver: ((d: ReceivedDatagram) => void) | undefined;
    let sent = 0;
    const transport: DhcpTransport = {
      description: "fake",
      start: async (on) => {
        deliver = on;
      },
      send: async () => {
        sent++;
      },
      close: async () => {},
    };
    const registry = new Registry();
    const server = new DhcpServer({
      transport,
      backend: new FakeBackend(MACS.map((m, i) => machine(`m${i}`, [lease(m, `10.77.0.${21 + i}`)]))),
      discovery: Object.assign(new FakeDiscovery(), { keep: false }),
      images: new FakeImages(FULL_IMAGE),
      events: new BootEventBus({ keepRecent: 100 }),
      log: pino({ level: "silent" }),
      metrics: registry,
      mode: "interface",
      serverIp: "10.77.0.1",
      serveUrl: SERVE_URL,
      // Every datagram must be handled, not shed by the overload policy (server.test.ts covers that).
      receiveQueue: { newLimit: 20_000, startedLimit: 20_000 },
    });
    await server.start();
    const rnd = prng(0xbeef);
    const corpus = seeds();
    let malformed = 0;
    for (let i = 0; i < 10_000; i++) {
      const data = mutate(corpus[i % corpus.length], rnd);
      if (!tryDecode(data).ok) malformed++;
      deliver!({ data, address: i & 1 ? "0.0.0.0" : "10.77.0.21", port: 68 });
    }
    // The server drains its receive queue a batch per event-loop turn: wait (bounded) until all 10k are handled.
    const sum = async (name: string) =>
      (await registry.getMetricsAsJSON()).find((m) => m.name === name)?.values.reduce((a, v) => a + v.value, 0) ?? 0;
    for (let turn = 0; turn < 20_000; turn++) {
      if ((await sum("metalman_dhcp_packets_received_total")) + (await sum("metalman_dhcp_malformed_total")) >= 10_000)
        break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    await server.close();
    const json = await registry.getMetricsAsJSON();
    const value = (name: string) => json.find((m) => m.name === name)?.values.reduce((a, v) => a + v.value, 0) ?? 0;
    assert.equal(value("metalman_dhcp_errors_total"), 0);
    assert.equal(value("metalman_dhcp_malformed_total"), malformed);
    assert.ok(sent > 0);
  });
});
