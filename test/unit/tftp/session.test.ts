import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { negotiate } from "../../../server/tftp/negotiate.js";
import { Opcode } from "../../../server/tftp/packets.js";
import { TftpSession } from "../../../server/tftp/session.js";
import { BufferBlockSource } from "../../../server/tftp/source.js";
import type { TransferSocket, TransferSocketHandlers } from "../../../server/tftp/transfer-socket.js";

/** A TransferSocket whose kernel send buffer is "full" for the sends listed in `refuse` (1-based). */
class FakeSocket implements TransferSocket {
  handlers: TransferSocketHandlers | undefined;
  readonly sent: Buffer[] = [];
  #calls = 0;
  constructor(private readonly refuse: ReadonlySet<number>) {}
  send(packet: Buffer): boolean {
    this.#calls++;
    if (this.refuse.has(this.#calls)) return false;
    this.sent.push(Buffer.from(packet));
    return true;
  }
  listen(handlers: TransferSocketHandlers | undefined): void {
    this.handlers = handlers;
  }
  async close(): Promise<void> {}
}

const blockOf = (packet: Buffer) => (packet[2] << 8) | packet[3];

describe("tftp session over a TransferSocket", () => {
  it("a send refused with a full buffer is resumed from the same block on onWritable", async () => {
    const body = Buffer.alloc(512 * 5 + 100, 9);
    const socket = new FakeSocket(new Set([3])); // sends: OACK, block 1, block 2 (refused), ...
    const session = new TftpSession({
      socket,
      peer: { address: "127.0.0.1", port: 9 },
      source: new BufferBlockSource(body),
      negotiated: negotiate([{ name: "windowsize", value: "8" }], body.length),
      defaultTimeoutMs: 60_000,
    });
    const done = session.run();
    assert.equal(socket.sent[0][1], Opcode.OACK);
    socket.handlers?.onAck(0);
    const dataBlocks = () => socket.sent.slice(1).map(blockOf);
    assert.deepEqual(dataBlocks(), [1], "stops at the refused block");
    socket.handlers?.onWritable();
    assert.deepEqual(dataBlocks(), [1, 2, 3, 4, 5, 6]);
    assert.ok(socket.sent.slice(1).every((p) => p[1] === Opcode.DATA));
    socket.handlers?.onAck(6);
    const outcome = await done;
    assert.equal(outcome.result, "ok");
    assert.equal(outcome.retransmits, 0, "the refused send is not counted as sent");
    assert.equal(outcome.bytesSent, body.length);
    assert.equal(socket.handlers, undefined, "the session stops listening when it ends");
  });

  it("ICMP port unreachable ends the transfer as aborted-by-client", async () => {
    const socket = new FakeSocket(new Set());
    const session = new TftpSession({
      socket,
      peer: { address: "127.0.0.1", port: 9 },
      source: new BufferBlockSource(Buffer.alloc(5000)),
      negotiated: negotiate([], 5000),
      defaultTimeoutMs: 60_000,
    });
    const done = session.run();
    socket.handlers?.onUnreachable();
    const outcome = await done;
    assert.equal(outcome.result, "aborted-by-client");
    assert.equal(outcome.endedIn, "data");
  });
});
