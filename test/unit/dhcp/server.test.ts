import assert from "node:assert/strict";
import dgram from "node:dgram";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { Registry } from "prom-client";
import { decode, encode } from "../../../server/dhcp/codec.js";
import { readIp } from "../../../server/dhcp/options.js";
import { DhcpServer } from "../../../server/dhcp/server.js";
import type { DhcpTransport, ReceivedDatagram } from "../../../server/dhcp/transport.js";
import { BootEventBus } from "../../../server/events/boot-events.js";
import { FakeBackend, FakeDiscovery, FakeImages, lease, machine, opt, request, SERVE_URL } from "./fakes.js";

/** Relay-mode stand-in for the real transport: a plain dgram socket on 127.0.0.1, ephemeral port. */
class LoopbackTransport implements DhcpTransport {
  readonly description = "udp 127.0.0.1 (test)";
  readonly #socket = dgram.createSocket("udp4");
  port = 0;

  start(onDatagram: (datagram: ReceivedDatagram) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.once("error", reject);
      this.#socket.on("message", (data, rinfo) => onDatagram({ data, address: rinfo.address, port: rinfo.port }));
      this.#socket.bind(0, "127.0.0.1", () => {
        this.port = this.#socket.address().port;
        resolve();
      });
    });
  }

  send(data: Buffer, address: string, port: number): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#socket.send(data, port, address, (err) => (err ? reject(err) : resolve())),
    );
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}

const SERVER_IP = "127.0.0.1";
const MAC = "02:50:58:00:00:03";

describe("DhcpServer over loopback UDP (relay mode)", () => {
  const relay = dgram.createSocket("udp4");
  const inbox: Buffer[] = [];
  const waiters: ((b: Buffer) => void)[] = [];
  const logLines: { level: number; msg: string; reason?: string }[] = [];
  const registry = new Registry();
  const events = new BootEventBus();
  const transport = new LoopbackTransport();
  let server: DhcpServer;

  function nextReply(): Promise<Buffer> {
    const queued = inbox.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      // Safety bound so a broken server fails the test instead of hanging it.
      const timer = setTimeout(() => reject(new Error("no reply from server")), 5000);
      waiters.push((b) => {
        clearTimeout(timer);
        resolve(b);
      });
    });
  }

  function sendToServer(buf: Buffer): Promise<void> {
    return new Promise((resolve, reject) =>
      relay.send(buf, transport.port, "127.0.0.1", (err) => (err ? reject(err) : resolve())),
    );
  }

  async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
    const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
    return Number(v?.value ?? 0);
  }

  before(async () => {
    await new Promise<void>((resolve) => relay.bind(0, "127.0.0.1", () => resolve()));
    relay.on("message", (msg) => {
      const w = waiters.shift();
      if (w) w(msg);
      else inbox.push(msg);
    });
    const log = pino(
      { level: "debug" },
      {
        write(line: string) {
          logLines.push(JSON.parse(line));
        },
      },
    );
    server = new DhcpServer({
      transport,
      // The lease subnet holds the relay (127.0.0.1): relayed requests from elsewhere get no answer.
      backend: new FakeBackend([machine("node-1", [lease(MAC, "127.0.0.21", { subnetMask: "255.0.0.0" })])]),
      discovery: new FakeDiscovery(),
      images: new FakeImages({ dhcpBootImageName: "shimx64.efi" }),
      events,
      log,
      metrics: registry,
      mode: "relay",
      serverIp: SERVER_IP,
      serveUrl: SERVE_URL,
      relayPort: relay.address().port,
    });
    await server.start();
  });

  after(async () => {
    await server.close();
    await new Promise<void>((resolve) => relay.close(() => resolve()));
  });

  it("answers DISCOVER with an OFFER and the following REQUEST with an ACK, via giaddr", async () => {
    await sendToServer(encode(request({ type: 1, giaddr: "127.0.0.1", xid: 1 })));
    const offer = decode(await nextReply());
    assert.equal(offer.options.get(53)?.[0], 2);
    assert.equal(offer.xid, 1);
    assert.equal(offer.yiaddr, "127.0.0.21");
    assert.equal(offer.file, "shimx64.efi");
    assert.equal(offer.giaddr, "127.0.0.1");

    const req = request({
      type: 3,
      giaddr: "127.0.0.1",
      xid: 2,
      options: [opt.serverId(readIp(offer.options.get(54))!), opt.requestedIp(offer.yiaddr)],
    });
    await sendToServer(encode(req));
    const ack = decode(await nextReply());
    assert.equal(ack.options.get(53)?.[0], 5);
    assert.equal(ack.xid, 2);

    assert.equal(await metric("metalman_dhcp_packets_received_total", { type: "discover" }), 1);
    assert.equal(await metric("metalman_dhcp_replies_sent_total", { type: "ack" }), 1);
    const steps = events.recent({ mac: MAC }).map((e) => e.step);
    assert.deepEqual(steps, ["dhcp.discover", "dhcp.offer", "dhcp.request", "dhcp.ack"]);
  });

  it("drops malformed and unrelayed datagrams without throwing, counts them, logs once per source", async () => {
    await sendToServer(Buffer.from("not dhcp at all"));
    await sendToServer(Buffer.alloc(300));
    const overrun = encode(request({ giaddr: "127.0.0.1" }));
    overrun[243] = 60;
    overrun[244] = 250;
    await sendToServer(overrun);
    await sendToServer(encode(request({ type: 1, xid: 3 }))); // giaddr 0: relay mode ignores it
    await sendToServer(encode(request({ type: 1, giaddr: "127.0.0.1", xid: 4 })));
    // Datagrams are handled in order, so once this reply is here the others were handled.
    const offer = decode(await nextReply());
    assert.equal(offer.xid, 4);
    assert.equal(await metric("metalman_dhcp_malformed_total"), 3);
    assert.equal(await metric("metalman_dhcp_ignored_total", { reason: "not-relayed" }), 1);
    assert.equal(await metric("metalman_dhcp_errors_total"), 0);
    const malformedLogs = logLines.filter((l) => l.msg === "dropping malformed DHCP datagram");
    assert.equal(malformedLogs.length, 1, "one warning per source per minute");
    assert.equal(logLines.filter((l) => l.level >= 50).length, 0, "nothing at error level");
    assert.ok(events.recent().some((e) => e.step === "dhcp.ignored" && e.reason === "not-relayed"));
  });

  it("refuses a second start", async () => {
    await assert.rejects(server.start(), /already running/);
  });
});

describe("DhcpServer construction", () => {
  it("rejects 0.0.0.0 as server IP (spec §12 item 25) and unknown modes", () => {
    const base = {
      transport: new LoopbackTransport(),
      backend: new FakeBackend([]),
      discovery: new FakeDiscovery(),
      images: new FakeImages(),
      events: new BootEventBus(),
      log: pino({ level: "silent" }),
      metrics: new Registry(),
      serveUrl: SERVE_URL,
    };
    assert.throws(() => new DhcpServer({ ...base, mode: "relay", serverIp: "0.0.0.0" }), /unicast/);
    assert.throws(() => new DhcpServer({ ...base, mode: "bogus" as "relay", serverIp: "10.0.0.1" }), /mode/);
    // Two servers may share one registry.
    new DhcpServer({ ...base, mode: "relay", serverIp: "10.0.0.1" });
    new DhcpServer({ ...base, mode: "interface", serverIp: "10.0.0.1" });
  });
});

/** A transport the test drives by hand: `deliver` hands datagrams to the server synchronously. */
class ManualTransport implements DhcpTransport {
  readonly description = "manual (test)";
  readonly sent: { data: Buffer; address: string; port: number }[] = [];
  #onDatagram: ((datagram: ReceivedDatagram) => void) | undefined;

  async start(onDatagram: (datagram: ReceivedDatagram) => void): Promise<void> {
    this.#onDatagram = onDatagram;
  }

  deliver(data: Buffer, address = "10.78.0.254", port = 67): void {
    this.#onDatagram?.({ data, address, port });
  }

  async send(data: Buffer, address: string, port: number): Promise<void> {
    this.sent.push({ data, address, port });
  }

  async close(): Promise<void> {
    this.#onDatagram = undefined;
  }
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return Number(v?.value ?? 0);
}

/** Bounded wait for a condition that the server's event-loop turns make true. */
async function until(probe: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A server on a ManualTransport with node-1's lease (or `machines`); nothing leaves the process. */
function manualServer(
  transport: ManualTransport,
  registry: Registry,
  over: Partial<ConstructorParameters<typeof DhcpServer>[0]> & { machines?: ReturnType<typeof machine>[] } = {},
): DhcpServer {
  const { machines, ...options } = over;
  return new DhcpServer({
    transport,
    backend: new FakeBackend(machines ?? [machine("node-1", [lease(MAC, "10.77.0.21")])]),
    discovery: new FakeDiscovery(),
    images: new FakeImages({ dhcpBootImageName: "shimx64.efi" }),
    events: new BootEventBus(),
    log: pino({ level: "silent" }),
    metrics: registry,
    mode: "relay",
    serverIp: "10.0.0.1",
    serveUrl: SERVE_URL,
    ...options,
  });
}

describe("DhcpServer overload policy: started exchanges before new ones", () => {
  it("answers every REQUEST of a burst and sheds the DISCOVERs beyond the queue bound, counted", async () => {
    const clients = 200;
    const leases = Array.from({ length: clients }, (_, i) =>
      machine(`node-${i}`, [lease(`02:50:58:01:00:${i.toString(16).padStart(2, "0")}`, `10.78.0.${i + 1}`)]),
    );
    const registry = new Registry();
    const transport = new ManualTransport();
    const server = manualServer(transport, registry, { machines: leases, receiveQueue: { newLimit: 16, batch: 8 } });
    await server.start();
    try {
      // One burst, interleaved, faster than any handler drains: all of it arrives in one turn.
      for (let i = 0; i < clients; i++) {
        const mac = `02:50:58:01:00:${i.toString(16).padStart(2, "0")}`;
        transport.deliver(encode(request({ type: 1, mac, giaddr: "10.78.0.254", xid: 0x1000 + i })));
        const options = [opt.serverId("10.0.0.1"), opt.requestedIp(`10.78.0.${i + 1}`)];
        transport.deliver(encode(request({ type: 3, mac, giaddr: "10.78.0.254", xid: 0x2000 + i, options })));
      }
      await until(() => transport.sent.length >= clients + 16);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const types = transport.sent.map((s) => decode(s.data).options.get(53)?.[0]);
      assert.equal(types.filter((t) => t === 5).length, clients, "every REQUEST got its ACK");
      assert.equal(types.filter((t) => t === 2).length, 16, "only the queue bound of DISCOVERs got an OFFER");
      assert.ok(
        types.slice(0, clients).every((t) => t === 5),
        "REQUESTs are answered before any DISCOVER",
      );
      assert.equal(await metricValue(registry, "metalman_dhcp_shed_total", { type: "discover" }), clients - 16);
      assert.equal(await metricValue(registry, "metalman_dhcp_shed_total", { type: "request" }), 0);
      // The DISCOVERs kept are the newest: the oldest were shed first.
      const offered = transport.sent.filter((s) => decode(s.data).options.get(53)?.[0] === 2);
      assert.deepEqual(
        offered.map((s) => decode(s.data).xid),
        Array.from({ length: 16 }, (_, i) => 0x1000 + clients - 16 + i),
      );
    } finally {
      await server.close();
    }
  });

  it("sheds nothing when the load fits", async () => {
    const registry = new Registry();
    const transport = new ManualTransport();
    const server = manualServer(transport, registry);
    await server.start();
    try {
      for (let i = 0; i < 50; i++) transport.deliver(encode(request({ type: 1, giaddr: "10.77.0.254", xid: i })));
      await until(() => transport.sent.length === 50);
      assert.equal(await metricValue(registry, "metalman_dhcp_shed_total", { type: "discover" }), 0);
    } finally {
      await server.close();
    }
  });
});

describe("DhcpServer in cluster mode: broadcast DHCP only from the leader", () => {
  const registry = new Registry();
  const transport = new ManualTransport();
  let leader = false;
  let server: DhcpServer;

  before(async () => {
    // Interface mode: replies are only recorded (no broadcast leaves the test).
    server = manualServer(transport, registry, {
      mode: "interface",
      serverIp: "10.77.0.1",
      interfaceName: "prov0",
      answersBroadcast: () => leader,
    });
    await server.start();
  });
  after(() => server.close());

  // Silence is proven by the next answered packet: datagrams are handled in order, so a follower's
  // reply to the first DISCOVER would come before the leader's to the second.
  const ignored = (reason: string) => metricValue(registry, "metalman_dhcp_ignored_total", { reason });

  it("a follower stays silent on a DISCOVER and counts it; the leader offers", async () => {
    transport.deliver(encode(request({ type: 1, xid: 11, mac: MAC })), "0.0.0.0", 68);
    for (let i = 0; i < 200 && (await ignored("not-leader")) < 1; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(await ignored("not-leader"), 1, "the follower counted it");
    assert.equal(transport.sent.length, 0, "the follower did not offer");
    leader = true;
    transport.deliver(encode(request({ type: 1, xid: 12, mac: MAC })), "0.0.0.0", 68);
    await until(() => transport.sent.length === 1);
    assert.equal(decode(transport.sent[0]!.data).xid, 12, "the leader's OFFER is for the second DISCOVER");
    assert.equal(decode(transport.sent[0]!.data).options.get(53)?.[0], 2, "OFFER");
  });

  it("any replica answers a renewal (ciaddr set: the client unicasts to whoever answered it)", async () => {
    leader = false;
    transport.sent.length = 0;
    transport.deliver(encode(request({ type: 3, xid: 13, mac: MAC, ciaddr: "10.77.0.21" })), "10.77.0.21", 68);
    await until(() => transport.sent.length === 1);
    assert.equal(decode(transport.sent[0]!.data).options.get(53)?.[0], 5, "ACK");
  });
});
