import assert from "node:assert/strict";
import { after, test } from "node:test";
import { UdpTransport } from "../../../server/dhcp/transport/udp-transport.js";
import type { ReceivedDatagram } from "../../../server/dhcp/transport.js";
import { loadUdpListener } from "../../../server/native/udp-listener.js";

/** Resolve with the next datagram, or reject after `ms` (bounded wait, not a timing assertion). */
function nextDatagram(queue: ReceivedDatagram[], waiters: Array<(d: ReceivedDatagram) => void>, ms = 2000) {
  const ready = queue.shift();
  if (ready) return Promise.resolve(ready);
  return new Promise<ReceivedDatagram>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no datagram within " + ms + " ms")), ms);
    waiters.push((datagram) => {
      clearTimeout(timer);
      resolve(datagram);
    });
  });
}

function collector() {
  const queue: ReceivedDatagram[] = [];
  const waiters: Array<(d: ReceivedDatagram) => void> = [];
  return {
    onDatagram: (datagram: ReceivedDatagram) => {
      const waiter = waiters.shift();
      if (waiter) waiter(datagram);
      else queue.push(datagram);
    },
    next: () => nextDatagram(queue, waiters),
  };
}

test("UdpTransport round-trips datagrams on 127.0.0.1", async () => {
  const server = new UdpTransport({ address: "127.0.0.1", port: 0 });
  const client = new UdpTransport({ address: "127.0.0.1", port: 0 });
  after(() => Promise.all([server.close(), client.close()]));
  const atServer = collector();
  const atClient = collector();
  await server.start(atServer.onDatagram);
  await client.start(atClient.onDatagram);
  const serverPort = server.localPort!;
  const clientPort = client.localPort!;
  assert.ok(serverPort > 0 && clientPort > 0);

  await client.send(Buffer.from("discover"), "127.0.0.1", serverPort);
  const request = await atServer.next();
  assert.equal(request.data.toString(), "discover");
  assert.equal(request.address, "127.0.0.1");
  assert.equal(request.port, clientPort);
  assert.equal(request.interfaceName, undefined);

  await server.send(Buffer.from("offer"), request.address, request.port);
  const reply = await atClient.next();
  assert.equal(reply.data.toString(), "offer");
  assert.equal(reply.port, serverPort);
});

test("UdpTransport describes itself as relay mode on all addresses by default", () => {
  assert.equal(new UdpTransport({ port: 67 }).description, "udp 0.0.0.0:67 (relay)");
});

test("UdpTransport start rejects when the address cannot be bound, and close is idempotent", async () => {
  // 192.0.2.1 (TEST-NET-1) is not assigned to this host: bind fails without sending anything.
  const transport = new UdpTransport({ address: "192.0.2.1", port: 0 });
  await assert.rejects(
    transport.start(() => {}),
    { code: "EADDRNOTAVAIL" },
  );
  await transport.close();
  await transport.close();
});

test("UdpTransport send before start rejects", async () => {
  await assert.rejects(new UdpTransport({ port: 0 }).send(Buffer.from("x"), "127.0.0.1", 9), /before start/);
});

test("UdpTransport cannot be started twice", async () => {
  const transport = new UdpTransport({ address: "127.0.0.1", port: 0 });
  after(() => transport.close());
  await transport.start(() => {});
  await assert.rejects(
    transport.start(() => {}),
    /already started/,
  );
});

test("UdpTransport on 0.0.0.0 answers from the address the request was sent to (IP_PKTINFO)", async (t) => {
  const server = new UdpTransport({ port: 0 });
  const client = new UdpTransport({ address: "127.0.0.1", port: 0 });
  after(() => Promise.all([server.close(), client.close()]));
  const atServer = collector();
  if (loadUdpListener() === undefined) {
    t.skip("metalman_udp.node not built (npx node-gyp rebuild --directory=server/native)");
    return;
  }
  await server.start(atServer.onDatagram);
  const replies: { data: Buffer; from: string }[] = [];
  // A raw socket: the reply's source address is what is under test.
  const { createSocket } = await import("node:dgram");
  const raw = createSocket("udp4");
  after(() => new Promise<void>((resolve) => raw.close(() => resolve())));
  const got = new Promise<void>((resolve) =>
    raw.on("message", (data, from) => {
      replies.push({ data, from: from.address });
      resolve();
    }),
  );
  await new Promise<void>((resolve) => raw.bind({ address: "127.0.0.1", port: 0 }, () => resolve()));
  // 127.0.0.2 is as local as 127.0.0.1: the loopback picture of a host's secondary address.
  const request = Buffer.alloc(240);
  request.writeUInt32BE(0xdeadbeef, 4); // xid
  await new Promise<void>((resolve) => raw.send(request, server.localPort!, "127.0.0.2", () => resolve()));
  const received = await atServer.next();
  const reply = Buffer.alloc(240);
  reply.writeUInt32BE(0xdeadbeef, 4);
  await server.send(reply, received.address, received.port);
  await got;
  assert.equal(replies[0].from, "127.0.0.2", "the reply leaves from the address the request was sent to");
});
