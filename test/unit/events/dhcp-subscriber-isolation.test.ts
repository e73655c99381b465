/**
 * A throwing event subscriber (a broken console stream, a buggy sink) must not stop the
 * protocol: the real DhcpServer over a real UDP socket on loopback, with an in-memory
 * backend, still answers DISCOVER with an OFFER, and the other subscribers still get every event.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { Registry } from "prom-client";
import { decode, encode } from "../../../server/dhcp/codec.js";
import { DhcpServer } from "../../../server/dhcp/server.js";
import { UdpTransport } from "../../../server/dhcp/transport/udp-transport.js";
import { BootEventBus } from "../../../server/events/boot-events.js";
import { FakeBackend, FakeDiscovery, FakeImages, lease, machine, request, SERVE_URL } from "../dhcp/fakes.js";

const MAC = "02:50:58:00:00:07";

describe("a throwing event subscriber and the DHCP server", () => {
  const relay = dgram.createSocket("udp4");
  const replies: Buffer[] = [];
  const warnings: { msg: string }[] = [];
  const events = new BootEventBus({
    log: pino({ level: "warn" }, { write: (line: string) => warnings.push(JSON.parse(line)) }),
  });
  const transport = new UdpTransport({ port: 0, address: "127.0.0.1" });
  const seenByOthers: string[] = [];
  let server: DhcpServer;

  before(async () => {
    await new Promise<void>((resolve) => relay.bind(0, "127.0.0.1", () => resolve()));
    relay.on("message", (msg) => replies.push(msg));
    // Subscribed before and after the broken one: neither may lose an event.
    events.subscribe((e) => seenByOthers.push(`before ${e.step}`));
    events.subscribe(() => {
      throw new Error("subscriber bug");
    });
    events.subscribe((e) => seenByOthers.push(`after ${e.step}`));
    server = new DhcpServer({
      transport,
      // The relay (giaddr 127.0.0.1) must lie in the lease's subnet (docs/boot-files.md).
      backend: new FakeBackend([machine("node-1", [lease(MAC, "127.0.0.31", { subnetMask: "255.0.0.0" })])]),
      discovery: new FakeDiscovery(),
      images: new FakeImages({ dhcpBootImageName: "shimx64.efi" }),
      events,
      log: pino({ level: "silent" }),
      metrics: new Registry(),
      mode: "relay",
      serverIp: "127.0.0.1",
      serveUrl: SERVE_URL,
      relayPort: relay.address().port,
    });
    await server.start();
  });

  after(async () => {
    await server.close();
    await new Promise<void>((resolve) => relay.close(() => resolve()));
  });

  it("still sends the OFFER, and the other subscribers see the discover and the offer", async () => {
    const discover = encode(request({ type: 1, giaddr: "127.0.0.1", xid: 0x5107, mac: MAC }));
    await new Promise<void>((resolve, reject) =>
      relay.send(discover, transport.localPort!, "127.0.0.1", (err) => (err ? reject(err) : resolve())),
    );
    // Bounded wait for the reply (a broken server fails the test instead of hanging it).
    for (let i = 0; i < 200 && replies.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(replies.length, 1, "no OFFER: the subscriber's exception reached the DHCP server");
    const offer = decode(replies[0]!);
    assert.equal(offer.options.get(53)?.[0], 2);
    assert.equal(offer.xid, 0x5107);
    assert.equal(offer.yiaddr, "127.0.0.31");
    assert.deepEqual(seenByOthers, [
      "before dhcp.discover",
      "after dhcp.discover",
      "before dhcp.offer",
      "after dhcp.offer",
    ]);
    assert.equal(events.stats().subscriberErrors, 2);
    assert.equal(warnings.length, 1, "logged once, rate-limited");
  });
});
