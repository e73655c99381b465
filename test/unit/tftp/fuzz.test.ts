import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { encode, Opcode, type TftpPacket } from "../../../server/tftp/packets.js";
import { RawPeer, tftpGet } from "./client.js";
import { metricValue, rendered, SOCKET_KINDS, settled, socketSuite, startServer } from "./fixtures.js";

/** Deterministic generator so a failure can be replayed. */
function* datagrams(count: number): Generator<Buffer> {
  const seeds: TftpPacket[] = [
    { opcode: Opcode.RRQ, filename: "fuzz.bin", mode: "octet", options: [{ name: "blksize", value: "1468" }] },
    { opcode: Opcode.RRQ, filename: "fuzz/x", mode: "netascii", options: [{ name: "tsize", value: "0" }] },
    { opcode: Opcode.WRQ, filename: "fuzz.bin", mode: "octet", options: [] },
    { opcode: Opcode.ACK, block: 1 },
    { opcode: Opcode.DATA, block: 1, data: Buffer.from("xyz") },
    { opcode: Opcode.ERROR, code: 0, message: "x" },
    { opcode: Opcode.OACK, options: [{ name: "tsize", value: "1" }] },
  ];
  const wire = seeds.map(encode);
  for (let i = 0; i < count; i++) {
    if (i % 3 === 0) {
      yield randomBytes(i % 97);
      continue;
    }
    const buf = Buffer.from(wire[i % wire.length]);
    for (let f = 0; f < 1 + (i % 3); f++) buf[(i * 7 + f * 13) % buf.length] = (i * 31 + f) & 0xff;
    yield i % 5 === 0 ? buf.subarray(0, i % (buf.length + 1)) : buf;
  }
}

for (const kind of SOCKET_KINDS) {
  const nativeSockets = kind === "native";

  describe(`tftp server under garbage (${kind} sockets)`, socketSuite(kind), () => {
    it("20k random/mutated datagrams: nothing escapes, malformed counted and logged once, service still works", async () => {
      const body = randomBytes(100_000);
      const t = await startServer({ "good.bin": rendered(body) }, { nativeSockets });
      const fuzzer = await RawPeer.open();
      try {
        let sent = 0;
        const batch: Buffer[] = [];
        for (const d of datagrams(20_000)) {
          batch.push(d);
          if (batch.length === 200) {
            await Promise.all(
              batch.map(
                (b) => new Promise<void>((resolve) => fuzzer.socket.send(b, t.port, "127.0.0.1", () => resolve())),
              ),
            );
            sent += batch.length;
            batch.length = 0;
            await new Promise((r) => setTimeout(r, 2)); // let the server drain its socket buffer
          }
        }
        assert.equal(sent, 20_000);
        await settled(t.server);

        const malformed = await metricValue(t.metrics, "metalman_tftp_malformed_packets_total");
        assert.ok(malformed > 1000, `malformed counter ${malformed}`);
        const malformedLogs = t.logLines.filter((l) => l.includes("dropped malformed"));
        assert.equal(malformedLogs.length, 1, "logged once per source per minute");

        const r = await tftpGet({
          host: "127.0.0.1",
          port: t.port,
          filename: "good.bin",
          options: { blksize: "1468", windowsize: "16" },
        });
        assert.equal(r.outcome, "ok");
        assert.deepEqual(r.data, body);
      } finally {
        await fuzzer.close();
        await t.server.close();
      }
    });
  });
}
