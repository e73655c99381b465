import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { negotiate } from "../../../server/tftp/negotiate.js";
import { Opcode, type TftpOption, type TftpPacket } from "../../../server/tftp/packets.js";
import { TftpSession, type TftpSessionParams } from "../../../server/tftp/session.js";
import { FileBlockSource } from "../../../server/tftp/source.js";
import { loadUdpAddon, nativeTransferSocket, type UdpAddon } from "../../../server/tftp/transfer-socket.js";
import { RawPeer } from "./client.js";

const addon = loadUdpAddon();

/**
 * The lock-step data phase on the native worker thread (server/native/src/lockstep.c), driven by
 * a hand-made client on loopback: a real TftpSession on a real native socket and file.
 */
describe("tftp lock-step thread", { skip: addon === undefined ? "metalman_udp.node not built" : false }, () => {
  let dir: string;
  let body: Buffer;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "metalman-lockstep-"));
    body = randomBytes(512 * 20 + 33); // 21 blocks
    await writeFile(path.join(dir, "f.bin"), body);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  interface Served {
    file: string;
    size: number;
    options?: TftpOption[];
  }

  /** A session for `peer` on its own native socket, reading f.bin (or `served`) lock-step (no options). */
  async function session(
    peer: RawPeer,
    extra: Partial<TftpSessionParams> = {},
    served: Served = { file: "f.bin", size: body.length },
  ) {
    const negotiated = negotiate(served.options ?? [], served.size);
    const opened = await FileBlockSource.open(path.join(dir, served.file));
    const source = opened.configure(negotiated.blksize, 1);
    const socket = nativeTransferSocket({
      addon: addon as UdpAddon,
      localAddress: "127.0.0.1",
      localPort: 0,
      peerAddress: "127.0.0.1",
      peerPort: peer.socket.address().port,
      onOtherError: (err) => assert.fail(err),
    });
    const s = new TftpSession({
      socket,
      peer: { address: "127.0.0.1", port: peer.socket.address().port },
      source,
      negotiated,
      defaultTimeoutMs: 200,
      lockstepThreads: 64,
      ...extra,
    });
    const done = s.run();
    let closed: Promise<void> | undefined;
    // Closes the socket and the file once (a test may close them while the session runs).
    const cleanup = () =>
      (closed ??= (async () => {
        await socket.close();
        await source.close();
      })());
    return { s, done, cleanup };
  }

  type Session = Awaited<ReturnType<typeof session>>;

  /** One peer and its session for `run`; both closed after it. */
  async function withSession(
    extra: Partial<TftpSessionParams>,
    run: (peer: RawPeer, t: Session) => Promise<void>,
    served?: Served,
  ): Promise<void> {
    const peer = await RawPeer.open();
    const t = await session(peer, extra, served);
    try {
      await run(peer, t);
    } finally {
      await t.cleanup();
      await peer.close();
    }
  }

  const data = (p: { packet: TftpPacket }) => {
    assert.equal(p.packet.opcode, Opcode.DATA);
    return p.packet.opcode === Opcode.DATA ? p.packet : assert.fail();
  };

  it("sends the whole file, ignores duplicate ACKs (no Sorcerer's Apprentice resend)", async () => {
    await withSession({ defaultTimeoutMs: 5000, minRetransmitMs: 5000 }, async (peer, t) => {
      const got: Buffer[] = [];
      let first = await peer.next();
      const tid = first.from.port;
      for (let block = 1; ; block++) {
        const d = data(first);
        assert.equal(d.block, block);
        got.push(d.data);
        peer.send({ opcode: Opcode.ACK, block }, tid);
        if (d.data.length < 512) break;
        if (block === 3) {
          // Two duplicates of the ACK for 3 and an old ACK: only block 4 must come, once.
          peer.send({ opcode: Opcode.ACK, block: 3 }, tid);
          peer.send({ opcode: Opcode.ACK, block: 3 }, tid);
          peer.send({ opcode: Opcode.ACK, block: 1 }, tid);
          const next = await peer.next();
          assert.equal(data(next).block, 4);
          await assert.rejects(
            peer.next(150).then((x) => assert.fail(`extra ${JSON.stringify(x.packet).slice(0, 80)}`)),
            /no packet/,
            "no DATA resent for a duplicate ACK",
          );
          first = next;
          continue;
        }
        first = await peer.next();
      }
      assert.deepEqual(Buffer.concat(got), body);
      const outcome = await t.done;
      assert.equal(outcome.result, "ok");
      assert.equal(outcome.lockstepThread, true, "ran on the thread");
      assert.equal(outcome.retransmits, 0);
      assert.equal(outcome.dataPackets, 21);
      assert.equal(outcome.bytesSent, body.length);
      assert.equal(outcome.bytesAcked, body.length);
    });
  });

  it("retransmits an unacknowledged block after the timeout, then gives up with an ERROR", async () => {
    await withSession({ defaultTimeoutMs: 40, maxRetries: 2 }, async (peer, t) => {
      const blocks: number[] = [];
      for (let i = 0; i < 3; i++) blocks.push(data(await peer.next(1000)).block);
      assert.deepEqual(blocks, [1, 1, 1], "block 1 resent on each timeout");
      const last = await peer.next(1000);
      assert.equal(last.packet.opcode, Opcode.ERROR);
      const outcome = await t.done;
      assert.equal(outcome.result, "timeout");
      assert.equal(outcome.lockstepThread, true);
      assert.equal(outcome.retransmits, 2);
      assert.equal(outcome.bytesAcked, 0);
    });
  });

  it("recovers a lost block by retransmission and carries on", async () => {
    await withSession({ defaultTimeoutMs: 40 }, async (peer, t) => {
      let p = await peer.next();
      const tid = p.from.port;
      assert.equal(data(p).block, 1);
      p = await peer.next(1000); // "lost" the first copy: wait for the resend
      assert.equal(data(p).block, 1);
      for (let block = 1; ; block++) {
        const d = data(p);
        peer.send({ opcode: Opcode.ACK, block: d.block }, tid);
        if (d.data.length < 512) break;
        p = await peer.next();
        while (data(p).block === block) p = await peer.next(); // a late resend of the previous block
      }
      const outcome = await t.done;
      assert.equal(outcome.result, "ok");
      assert.equal(outcome.lockstepThread, true);
      assert.ok(outcome.retransmits >= 1);
    });
  });

  it("abort() stops the thread: the client gets an ERROR and no DATA after it", async () => {
    await withSession({ defaultTimeoutMs: 5000, minRetransmitMs: 5000 }, async (peer, t) => {
      const p = await peer.next();
      peer.send({ opcode: Opcode.ACK, block: 1 }, p.from.port);
      assert.equal(data(await peer.next()).block, 2);
      const started = performance.now();
      t.s.abort("server shutting down");
      // The thread sleeps in recv with a 5 s timeout: abort must wake it, not wait it out.
      assert.ok(performance.now() - started < 500, "abort joins the thread at once");
      const outcome = await t.done;
      assert.equal(outcome.result, "aborted");
      assert.equal(outcome.lockstepThread, true);
      assert.equal(outcome.bytesAcked, 512);
      for (;;) {
        const q = await peer.next(500);
        if (q.packet.opcode === Opcode.ERROR) break;
        assert.equal(data(q).block, 2, "only resends queued before the abort");
      }
      await assert.rejects(peer.next(150), /no packet/, "nothing after the ERROR");
    });
  });

  it("closing the socket while the thread runs joins it (no crash, no further DATA)", async () => {
    await withSession({ defaultTimeoutMs: 20, maxRetries: 1000 }, async (peer, t) => {
      await peer.next();
      await t.cleanup(); // the server's finally closes the socket; the session never hears of it
      while (
        await peer.next(100).then(
          () => true,
          () => false,
        )
      ) {} // drain resends already sent
      await assert.rejects(peer.next(150), /no packet/);
    });
  });

  it("rolls block numbers over past 65535 (blksize 8: 70,000 blocks) and the copy is byte-identical", async () => {
    const big = randomBytes(8 * 70_000 + 3);
    await writeFile(path.join(dir, "big.bin"), big);
    const served = { file: "big.bin", size: big.length, options: [{ name: "blksize", value: "8" }] };
    await withSession(
      { defaultTimeoutMs: 5000, minRetransmitMs: 5000 },
      async (peer, t) => {
        const oack = await peer.next();
        assert.equal(oack.packet.opcode, Opcode.OACK);
        const tid = oack.from.port;
        peer.send({ opcode: Opcode.ACK, block: 0 }, tid);
        const got: Buffer[] = [];
        for (let n = 1; ; n++) {
          const d = data(await peer.next());
          assert.equal(d.block, n % 65536, "wire block number wraps to 0");
          got.push(d.data);
          peer.send({ opcode: Opcode.ACK, block: d.block }, tid);
          if (d.data.length < 8) break;
        }
        assert.deepEqual(Buffer.concat(got), big);
        const outcome = await t.done;
        assert.equal(outcome.result, "ok");
        assert.equal(outcome.lockstepThread, true);
        assert.equal(outcome.dataPackets, 70_001);
        assert.equal(outcome.bytesAcked, big.length);
      },
      served,
    );
  });

  it("beyond the thread cap a transfer takes the event-loop path", async () => {
    const peers = [await RawPeer.open(), await RawPeer.open()];
    const a = await session(peers[0], { lockstepThreads: 1, defaultTimeoutMs: 5000 });
    const b = await session(peers[1], { lockstepThreads: 1, defaultTimeoutMs: 5000 });
    try {
      for (const [i, t] of [a, b].entries()) {
        let p = await peers[i].next();
        const tid = p.from.port;
        for (;;) {
          const d = data(p);
          peers[i].send({ opcode: Opcode.ACK, block: d.block }, tid);
          if (d.data.length < 512) break;
          p = await peers[i].next();
        }
        assert.equal((await t.done).result, "ok");
      }
      assert.equal((await a.done).lockstepThread, true);
      assert.equal((await b.done).lockstepThread, false, "the second one fell back");
    } finally {
      await a.cleanup();
      await b.cleanup();
      await Promise.all(peers.map((p) => p.close()));
    }
  });
});
