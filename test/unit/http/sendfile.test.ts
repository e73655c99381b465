import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { BootEvent } from "../../../server/events/boot-events.js";
import type { NetbootAppOptions } from "../../../server/http/app.js";
import { loadSendfileAddon } from "../../../server/http/sendfile-body.js";
import { type Harness, harness, makeMachine } from "./support.js";

/** Bigger than several 8 MiB sendfile jobs and than loopback socket buffers. */
const BIG_BYTES = 20 * 1024 * 1024 + 12345;
const addonBuilt = loadSendfileAddon() !== undefined;

interface Served {
  h: Harness;
  port: number;
  big: Buffer;
  events: BootEvent[];
}

async function serve(app: Partial<NetbootAppOptions>): Promise<Served> {
  const h = await harness({ app, machines: () => [makeMachine("local", "127.0.0.1", "dir:image")] });
  const big = randomBytes(BIG_BYTES);
  writeFileSync(path.join(h.image.diskDir, "disk.img"), big);
  const events: BootEvent[] = [];
  h.events.subscribe((event) => {
    if (event.step === "http.artifact") events.push(event);
  });
  await h.app.listen({ host: "127.0.0.1", port: 0 });
  const address = h.app.server.address();
  return { h, port: typeof address === "object" && address ? address.port : 0, big, events };
}

interface RawResponse {
  head: string;
  body: Buffer;
}

/**
 * Sends the requests one after the other on one keep-alive connection (each after the
 * previous answer: a pipelined response is queued by Node and always streams) and splits
 * the answers by Content-Length, so it also proves that nothing follows a sendfile body.
 */
function rawRequests(port: number, requests: string[]): Promise<RawResponse[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const responses: RawResponse[] = [];
    let pending: Buffer = Buffer.alloc(0);
    let head: string | undefined;
    let body: Buffer[] = [];
    let bodyBytes = 0;
    let wanted = 0;
    const onData = (chunk: Buffer) => {
      let data: Buffer = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
      pending = Buffer.alloc(0);
      while (data.length > 0) {
        if (head === undefined) {
          const headEnd = data.indexOf("\r\n\r\n");
          if (headEnd < 0) {
            pending = data;
            return;
          }
          head = data.subarray(0, headEnd).toString("latin1");
          wanted = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
          data = data.subarray(headEnd + 4);
        }
        const take = Math.min(wanted - bodyBytes, data.length);
        body.push(data.subarray(0, take));
        bodyBytes += take;
        data = data.subarray(take);
        if (bodyBytes < wanted) return;
        responses.push({ head, body: Buffer.concat(body) });
        head = undefined;
        body = [];
        bodyBytes = 0;
        if (data.length > 0) {
          reject(new Error(`stray bytes after a response: ${data.length}`));
          socket.destroy();
          return;
        }
        const next = requests[responses.length];
        if (next === undefined) {
          socket.end();
          resolve(responses);
        } else {
          socket.write(next);
        }
      }
    };
    socket.on("data", onData);
    socket.on("error", reject);
    socket.on("close", () => {
      if (responses.length < requests.length) reject(new Error(`closed after ${responses.length} responses`));
    });
    socket.write(requests[0] ?? "");
  });
}

const get = (target: string, headers: Record<string, string> = {}) =>
  `GET ${target} HTTP/1.1\r\nHost: x\r\n${Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("")}\r\n`;

function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

/** Bounded wait for a condition driven by the server (no timing assertion: only a cap). */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}

for (const zeroCopy of [true, false]) {
  const transfer = zeroCopy && addonBuilt ? "sendfile" : "stream";
  describe(`file bodies over a real socket (zeroCopy ${zeroCopy} → ${transfer})`, () => {
    let s: Served;
    before(async () => {
      s = await serve({ zeroCopy });
    });
    after(() => s.h.close());

    it("sends whole files and single ranges byte-identical, back to back on one connection", async () => {
      const vmlinuz = s.h.image.vmlinuz;
      const responses = await rawRequests(s.port, [
        get("/disk.img"),
        get("/vmlinuz", { range: "bytes=10-19" }),
        get("/disk.img", { range: "bytes=-100" }),
        get("/disk.img", { range: "bytes=8388607-" }),
        get("/vmlinuz"),
      ]);
      const [full, small, suffix, open, whole] = responses as [
        RawResponse,
        RawResponse,
        RawResponse,
        RawResponse,
        RawResponse,
      ];
      assert.match(full.head, /^HTTP\/1\.1 200 /);
      assert.doesNotMatch(full.head, /transfer-encoding/i);
      assert.ok(full.body.equals(s.big));
      assert.match(small.head, /^HTTP\/1\.1 206 /);
      assert.match(small.head, /\r\ncontent-range: bytes 10-19\/300000/i);
      assert.ok(small.body.equals(vmlinuz.subarray(10, 20)));
      assert.match(suffix.head, /^HTTP\/1\.1 206 /);
      assert.ok(suffix.body.equals(s.big.subarray(BIG_BYTES - 100)));
      assert.ok(open.body.equals(s.big.subarray(8388607)));
      assert.ok(whole.body.equals(vmlinuz));
      await until(() => s.events.length >= 5, "five artifact events");
      assert.deepEqual(
        s.events.map((event) => [event.result, event.detail?.transfer]),
        Array.from({ length: 5 }, () => ["ok", transfer]),
      );
    });

    it("survives a client that leaves mid-transfer, without leaking descriptors", async () => {
      // Warm up so lazily opened descriptors (thread pool, epoll) are counted in the baseline.
      s.events.length = 0;
      await rawRequests(s.port, [get("/vmlinuz")]);
      await until(() => s.events.length >= 1, "the warm-up event");
      s.events.length = 0;
      const before = openFds();
      for (let round = 0; round < 3; round++) {
        await new Promise<void>((resolve, reject) => {
          const socket: Socket = connect(s.port, "127.0.0.1");
          let received = 0;
          socket.on("data", (chunk: Buffer) => {
            received += chunk.length;
            if (received > 1024 * 1024) socket.destroy();
          });
          socket.on("close", () => resolve());
          socket.on("error", reject);
          socket.write(get("/disk.img"));
        });
      }
      await until(() => s.events.length >= 3, "three aborted events");
      for (const event of s.events) {
        assert.equal(event.result, "aborted");
        assert.equal(event.reason, "incomplete");
        assert.equal(event.detail?.transfer, transfer);
        assert.ok(Number(event.detail?.bytes) < BIG_BYTES);
      }
      await until(() => openFds() <= before, `descriptors back to ${before} (now ${openFds()})`);
      const [again] = await rawRequests(s.port, [get("/disk.img")]);
      assert.ok(again?.body.equals(s.big));
    });
  });
}

describe("zero-copy fallbacks", () => {
  it("streams when the addon is missing", async () => {
    const s = await serve({ sendfileAddonPath: "/nonexistent/metalman_sendfile.node" });
    try {
      const [full] = await rawRequests(s.port, [get("/disk.img")]);
      assert.ok(full?.body.equals(s.big));
      await until(() => s.events.length >= 1, "an artifact event");
      assert.equal(s.events[0]?.detail?.transfer, "stream");
    } finally {
      await s.h.close();
    }
  });

  it("uses streams for inject (no real socket) and HEAD", async () => {
    const s = await serve({});
    try {
      const injected = await s.h.app.inject({ url: "/vmlinuz", remoteAddress: "127.0.0.1" });
      assert.ok(injected.rawPayload.equals(s.h.image.vmlinuz));
      const head = await fetch(`http://127.0.0.1:${s.port}/disk.img`, { method: "HEAD" });
      assert.equal(head.headers.get("content-length"), String(BIG_BYTES));
      assert.equal((await head.arrayBuffer()).byteLength, 0);
      await until(() => s.events.length >= 1, "an artifact event");
      assert.equal(s.events[0]?.detail?.transfer, "stream");
    } finally {
      await s.h.close();
    }
  });

  it("closes a stalled download after the idle timeout", {
    skip: !addonBuilt && "sendfile addon not built",
  }, async () => {
    const s = await serve({ timeouts: { idleMs: 300 } });
    try {
      const socket = connect(s.port, "127.0.0.1");
      try {
        socket.once("data", () => socket.pause()); // never read again: the server's send buffer stays full
        socket.on("error", () => undefined);
        socket.write(get("/disk.img"));
        await until(() => s.events.length >= 1, "an aborted event");
        assert.equal(s.events[0]?.reason, "incomplete");
        assert.equal(s.events[0]?.detail?.transfer, "sendfile");
        assert.ok(Number(s.events[0]?.detail?.bytes) < BIG_BYTES);
      } finally {
        socket.destroy();
      }
    } finally {
      await s.h.close();
    }
  });
});
