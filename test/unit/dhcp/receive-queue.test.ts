import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { encode } from "../../../server/dhcp/codec.js";
import { BoundedFifo, classify, PriorityReceiveQueue, peekMessageType } from "../../../server/dhcp/receive-queue.js";
import { request } from "./fakes.js";

describe("receive queue (overload policy)", () => {
  it("finds option 53 without decoding, and never throws on garbage", () => {
    assert.equal(peekMessageType(encode(request({ type: 1 }))), 1);
    assert.equal(peekMessageType(encode(request({ type: 3, options: [[60, Buffer.from("PXEClient")]] }))), 3);
    assert.equal(classify(encode(request({ type: 3 }))), "started");
    assert.equal(classify(encode(request({ type: 7 }))), "started");
    assert.equal(classify(encode(request({ type: 1 }))), "new");
    assert.equal(classify(Buffer.from("not dhcp")), "new");
    const truncated = encode(request({ type: 3 })).subarray(0, 242);
    assert.equal(peekMessageType(truncated), undefined);
    for (let i = 0; i < 2000; i++) {
      const junk = randomBytes(240 + (i % 80));
      junk.writeUInt32BE(0x63825363, 236);
      const type = peekMessageType(junk);
      assert.ok(type === undefined || (type >= 0 && type <= 255));
    }
  });

  it("bounded FIFO evicts the oldest; the priority queue drains started exchanges first", () => {
    const fifo = new BoundedFifo<number>(3);
    assert.equal(fifo.push(1), undefined);
    fifo.push(2);
    fifo.push(3);
    assert.equal(fifo.push(4), 1);
    assert.deepEqual([fifo.shift(), fifo.shift(), fifo.shift(), fifo.shift()], [2, 3, 4, undefined]);

    const queue = new PriorityReceiveQueue<string>({ startedLimit: 2, newLimit: 2 });
    queue.push("d1", "new");
    queue.push("r1", "started");
    queue.push("d2", "new");
    assert.deepEqual(queue.push("d3", "new"), { item: "d1", cls: "new" });
    queue.push("r2", "started");
    const order: string[] = [];
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) order.push(next);
    assert.deepEqual(order, ["r1", "r2", "d2", "d3"]);
  });
});
