/**
 * The Machine event stream over SSE (`GET /api/v1/machines/NAME/events?follow=1`) on a real
 * unix socket: resume with Last-Event-ID (replay then live, ids are seqs, no gap, no double),
 * only that Machine's events, the stream cap, a reader that stops reading is dropped instead of
 * buffered without bound, and closing the API ends open streams so shutdown is not held up.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { unixSocketIdentity } from "../../../server/api/actor.js";
import { buildManagementApp } from "../../../server/api/app.js";
import { ApiAnswerError, ApiClient, type SseMessage } from "../../../server/api/client.js";
import { type ClaimedSocket, claimUnixSocket } from "../../../server/api/unix-socket.js";
import { BootEventBus } from "../../../server/events/boot-events.js";
import { FileInventory } from "../../../server/inventory/file-inventory.js";
import { type Scratch, scratchInventory, silentLog } from "./helpers.js";

describe("machine event stream (SSE) on the unix socket", () => {
  let scratch: Scratch;
  let inventory: FileInventory;
  let events: BootEventBus;
  let socket: ClaimedSocket;
  let app: ReturnType<typeof buildManagementApp>;
  let client: ApiClient;

  before(async () => {
    scratch = await scratchInventory("mm-apisse-");
    inventory = new FileInventory({
      dir: scratch.inventoryDir,
      stateDir: scratch.stateDir,
      log: silentLog,
      watch: false,
    });
    await inventory.load();
    events = new BootEventBus({ startSeq: 500 });
    socket = await claimUnixSocket(path.join(scratch.stateDir, "metalman.sock"));
    app = buildManagementApp({
      log: silentLog,
      backend: inventory,
      events,
      identify: unixSocketIdentity,
      maxStreams: 2,
      streamBufferBytes: 4096,
    });
    await app.ready();
    socket.attach(app.routing);
    client = new ApiClient(socket.path, "tester");
  });
  after(async () => {
    await app.close();
    await socket.release();
    await inventory.close();
    await scratch.cleanup();
  });

  it("replays after Last-Event-ID, then delivers live events of that Machine only", async () => {
    const first = events.emit({ step: "dhcp.discover", result: "ok", machine: "node-01" });
    events.emit({ step: "dhcp.offer", result: "ok", machine: "node-01" });
    events.emit({ step: "dhcp.offer", result: "ok", machine: "node-02" });
    events.emit({ step: "dhcp.request", result: "ok", machine: "node-01" });
    const got: SseMessage[] = [];
    const abort = new AbortController();
    let live: () => void = () => {};
    const sawLive = new Promise<void>((resolve) => {
      live = resolve;
    });
    // The client sends since= in the query; a browser's EventSource sends Last-Event-ID instead.
    const raw = new Promise<string>((resolve, reject) => {
      const conn = connect({ path: socket.path });
      let text = "";
      conn.setEncoding("utf8");
      conn.on("data", (chunk: string) => {
        text += chunk;
        if (text.includes("dhcp.ack")) {
          conn.destroy();
          resolve(text);
        }
      });
      conn.on("error", reject);
      conn.write(
        `GET /api/v1/machines/node-01/events?follow=1 HTTP/1.1\r\nhost: x\r\nlast-event-id: ${first.seq}\r\n\r\n`,
      );
    });
    const streaming = client.stream(
      `/machines/node-01/events?follow=1&since=${first.seq}`,
      (message) => {
        got.push(message);
        if (message.data.includes("dhcp.ack")) live();
      },
      abort.signal,
    );
    await sleep(200);
    events.emit({ step: "dhcp.ack", result: "ok", machine: "node-02" });
    events.emit({ step: "dhcp.ack", result: "ok", machine: "node-01" });
    await sawLive;
    abort.abort();
    await streaming;
    const steps = got.map((m) => (JSON.parse(m.data) as { step: string; machine: string }).step);
    assert.deepEqual(steps, ["dhcp.offer", "dhcp.request", "dhcp.ack"]);
    assert.ok(got.every((m) => m.event === "machine-event"));
    assert.deepEqual(
      got.map((m) => Number(m.id)),
      got.map((m) => (JSON.parse(m.data) as { seq: number }).seq),
    );
    assert.ok(got.every((m) => (JSON.parse(m.data) as { machine: string }).machine === "node-01"));
    const text = await raw;
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /content-type: text\/event-stream/i);
    assert.equal((text.match(/^id: /gm) ?? []).length, 3, text);
  });

  it("answers a seq it cannot catch up with 410 before streaming", async () => {
    await assert.rejects(
      client.stream("/machines/node-01/events?follow=1&since=3", () => {}, new AbortController().signal),
      (err: unknown) => err instanceof ApiAnswerError && err.status === 410 && err.body.code === "EVENTS_GONE",
    );
  });

  it("drops a reader that stops reading, instead of buffering for it", async () => {
    const conn = connect({ path: socket.path });
    await new Promise<void>((resolve) => conn.once("connect", () => resolve()));
    conn.write("GET /api/v1/machines/node-02/events?follow=1 HTTP/1.1\r\nhost: x\r\n\r\n");
    await sleep(100);
    conn.pause();
    const closed = new Promise<void>((resolve) => conn.once("close", () => resolve()));
    conn.on("error", () => {});
    // Far more than the socket buffers hold: the server must give up on this reader.
    const pad = "x".repeat(1000);
    for (let i = 0; i < 5_000; i++)
      events.emit({ step: "dhcp.discover", result: "ok", machine: "node-02", detail: { pad } });
    conn.resume();
    conn.on("data", () => {});
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("the slow reader was not dropped")), 10_000);
    });
    try {
      await Promise.race([closed, limit]);
    } finally {
      clearTimeout(timer);
    }
  });

  it("caps the number of open streams, and ends open streams when the API closes", async () => {
    const aborts = [new AbortController(), new AbortController()];
    const ended: boolean[] = [false, false];
    const marker = events.emit({ step: "dhcp.inform", result: "ok", machine: "node-01" });
    const opened: Array<Promise<void>> = [];
    const streams = aborts.map((abort, i) => {
      let open: () => void = () => {};
      opened.push(
        new Promise<void>((resolve) => {
          open = resolve;
        }),
      );
      // Each stream replays the marker at once: receiving it proves the stream is open.
      const url = `/machines/node-01/events?follow=1&since=${marker.seq - 1}`;
      return client
        .stream(url, () => open(), abort.signal)
        .then(() => {
          ended[i] = true;
        });
    });
    await Promise.all(opened);
    await assert.rejects(
      client.stream("/machines/node-01/events?follow=1", () => {}, new AbortController().signal),
      (err: unknown) => err instanceof ApiAnswerError && err.status === 503,
    );
    const started = Date.now();
    await app.close();
    await Promise.all(streams);
    await socket.release(sleep(5000));
    assert.deepEqual(ended, [true, true]);
    assert.ok(Date.now() - started < 2000, `closing took ${Date.now() - started} ms`);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
