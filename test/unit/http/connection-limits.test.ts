/**
 * HTTP connection caps (issue 5 §4.4) over real loopback sockets: the N+1th connection from
 * one client address is refused (503, closed) while another address is still served, a slot
 * frees when a connection closes, trusted proxies are exempt per client, and the total cap
 * holds across addresses. 127.0.0.2 is a second client address on Linux loopback.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { describe, it } from "node:test";
import { buildHealthApp } from "../../../server/http/app.js";
import { harness, silentLog } from "./support.js";

interface Reply {
  status: number | undefined;
  closed: boolean;
}

/** Opens a connection from `from`, sends one keep-alive GET, resolves with the status (the socket stays open). */
function request(port: number, from: string, path = "/healthz"): Promise<{ socket: Socket; reply: Reply }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, localAddress: from });
    let data = "";
    const done = (closed: boolean) => {
      clearTimeout(timer);
      const match = /^HTTP\/1\.1 (\d{3})/.exec(data);
      resolve({ socket, reply: { status: match ? Number(match[1]) : undefined, closed } });
    };
    const timer = setTimeout(() => done(false), 3000);
    socket.on("error", () => undefined);
    socket.on("connect", () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n`));
    socket.on("data", (chunk) => {
      data += chunk.toString("latin1");
      if (/\r\n\r\n/.test(data) && /content-length: \d+/i.test(data)) {
        const length = Number(/content-length: (\d+)/i.exec(data)![1]);
        if (data.length - data.indexOf("\r\n\r\n") - 4 >= length) done(false);
      }
    });
    socket.on("close", () => done(true));
    socket.on("timeout", () => reject(new Error("timeout")));
  });
}

async function closeAll(sockets: Socket[]): Promise<void> {
  await Promise.all(
    sockets.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.destroyed) return resolve();
          s.once("close", () => resolve());
          s.destroy();
        }),
    ),
  );
}

describe("HTTP connection limits", () => {
  it("refuses the N+1th connection from one address while another address is served", async () => {
    const h = await harness({ app: { connectionLimits: { perClient: 3, maxConnections: 100 } } });
    await h.app.listen({ host: "127.0.0.1", port: 0 });
    const port = (h.app.server.address() as { port: number }).port;
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const { socket, reply } = await request(port, "127.0.0.1");
        held.push(socket);
        assert.equal(reply.status, 200, `connection ${i + 1}`);
      }
      const refused = await request(port, "127.0.0.1");
      held.push(refused.socket);
      assert.equal(refused.reply.status, 503, "4th from 127.0.0.1");
      await new Promise<void>((resolve, reject) => {
        if (refused.socket.destroyed || refused.reply.closed) return resolve();
        const timer = setTimeout(() => reject(new Error("the refused connection stayed open")), 2000);
        refused.socket.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
      });

      const other = await request(port, "127.0.0.2");
      held.push(other.socket);
      assert.equal(other.reply.status, 200, "another client is still served");

      // One of the first three leaves: its slot is free again.
      await closeAll([held[0]!]);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const again = await request(port, "127.0.0.1");
      held.push(again.socket);
      assert.equal(again.reply.status, 200, "a freed slot is reusable");
    } finally {
      await closeAll(held);
      await h.close();
    }
  });

  it("exempts trusted proxies from the per-client cap and keeps a total cap", async () => {
    const h = await harness({
      app: { trustedProxies: ["127.0.0.2/32"], connectionLimits: { perClient: 1, maxConnections: 4 } },
    });
    await h.app.listen({ host: "127.0.0.1", port: 0 });
    const port = (h.app.server.address() as { port: number }).port;
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const { socket, reply } = await request(port, "127.0.0.2");
        held.push(socket);
        assert.equal(reply.status, 200, `proxy connection ${i + 1}`);
      }
      // The total cap: Node closes the 5th at once, whoever it comes from.
      const over = await request(port, "127.0.0.3");
      held.push(over.socket);
      assert.equal(over.reply.status, undefined);
      assert.equal(over.reply.closed, true);
    } finally {
      await closeAll(held);
      await h.close();
    }
  });

  it("the health listener has its own small caps", async () => {
    const app = buildHealthApp({
      log: silentLog(),
      readiness: () => ({ ready: true, checks: {} }),
      connectionLimits: { perClient: 1 },
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const port = (app.server.address() as { port: number }).port;
    const held: Socket[] = [];
    try {
      const first = await request(port, "127.0.0.1");
      held.push(first.socket);
      assert.equal(first.reply.status, 200);
      const second = await request(port, "127.0.0.1");
      held.push(second.socket);
      assert.equal(second.reply.status, 503);
    } finally {
      await closeAll(held);
      await app.close();
    }
  });
});
