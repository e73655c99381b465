import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { negotiate } from "../../../server/tftp/negotiate.js";
import { toNetascii } from "../../../server/tftp/netascii.js";
import {
  decode,
  encode,
  encodingLength,
  Opcode,
  optionValue,
  TftpDecodeError,
  type TftpPacket,
} from "../../../server/tftp/packets.js";

const samples: TftpPacket[] = [
  { opcode: Opcode.RRQ, filename: "grub/grub.cfg", mode: "octet", options: [] },
  {
    opcode: Opcode.RRQ,
    filename: "shimx64.efi",
    mode: "octet",
    options: [
      { name: "BlkSize", value: "1468" },
      { name: "tsize", value: "0" },
      { name: "x-vendor", value: "\x01\xff" },
    ],
  },
  { opcode: Opcode.WRQ, filename: "up.bin", mode: "netascii", options: [] },
  { opcode: Opcode.DATA, block: 65535, data: Buffer.from("hello") },
  { opcode: Opcode.DATA, block: 0, data: Buffer.alloc(0) },
  { opcode: Opcode.ACK, block: 0 },
  { opcode: Opcode.ACK, block: 4242 },
  { opcode: Opcode.ERROR, code: 1, message: "file not found" },
  { opcode: Opcode.OACK, options: [{ name: "blksize", value: "1468" }] },
];

describe("tftp packet codec", () => {
  it("round-trips every packet type and encodingLength matches", () => {
    for (const p of samples) {
      const wire = encode(p);
      assert.equal(wire.length, encodingLength(p));
      assert.deepEqual(decode(wire), p);
    }
  });

  it("parses mode and option names case-insensitively and keeps unknown options", () => {
    const wire = Buffer.from("\x00\x01f.bin\x00OcTeT\x00BLKSIZE\x001024\x00foo\x00bar\x00", "latin1");
    const p = decode(wire);
    assert.equal(p.opcode, Opcode.RRQ);
    if (p.opcode !== Opcode.RRQ) return;
    assert.equal(p.mode, "octet");
    assert.equal(optionValue(p.options, "blksize"), "1024");
    assert.deepEqual(p.options[1], { name: "foo", value: "bar" });
  });

  it("tolerates NUL padding after a request and a missing NUL after an ERROR message", () => {
    const p = decode(Buffer.from("\x00\x01a\x00octet\x00\x00", "latin1"));
    assert.equal(p.opcode === Opcode.RRQ && p.options.length, 0);
    assert.deepEqual(decode(Buffer.from("\x00\x05\x00\x08abort", "latin1")), {
      opcode: Opcode.ERROR,
      code: 8,
      message: "abort",
    });
  });

  it("rejects malformed packets with TftpDecodeError", () => {
    const bad = [
      "",
      "\x00",
      "\x00\x07",
      "\x00\x01file",
      "\x00\x01file\x00",
      "\x00\x01file\x00binary\x00", // unknown mode: still a decode error (with reason "unknown-mode")
      "\x00\x01f\x00octet\x00blksize\x00",
      "\x00\x01f\x00octet\x00\x00512\x00",
      "\x00\x03\x00",
      "\x00\x04\x00",
      "\x00\x06",
      "\x00\x06\x00",
    ];
    for (const s of bad) {
      assert.throws(() => decode(Buffer.from(s, "latin1")), TftpDecodeError, JSON.stringify(s));
    }
    assert.throws(() => decode(Buffer.alloc(4 + 65465, 0).fill(3, 1, 2)), TftpDecodeError);
  });

  it("is lenient like tftpd-hpa: NUL-padded requests and padded ACKs decode", () => {
    // Some PXE ROMs pad the RRQ with NULs, some clients pad the ACK to a minimum frame.
    const padded = decode(Buffer.from("\x00\x01pxelinux.0\x00octet\x00blksize\x001468\x00\x00\x00\x00", "latin1"));
    assert.deepEqual(padded, {
      opcode: Opcode.RRQ,
      filename: "pxelinux.0",
      mode: "octet",
      options: [{ name: "blksize", value: "1468" }],
    });
    const bare = decode(Buffer.from("\x00\x01f\x00octet\x00\x00\x00\x00", "latin1"));
    assert.deepEqual(bare, { opcode: Opcode.RRQ, filename: "f", mode: "octet", options: [] });
    const emptyValue = decode(Buffer.from("\x00\x01f\x00octet\x00x\x00\x00", "latin1"));
    assert.deepEqual(emptyValue, {
      opcode: Opcode.RRQ,
      filename: "f",
      mode: "octet",
      options: [{ name: "x", value: "" }],
    });
    assert.deepEqual(decode(Buffer.from("\x00\x04\x00\x07\x00\x00\x00\x00", "latin1")), {
      opcode: Opcode.ACK,
      block: 7,
    });
  });

  it("marks a request in an unknown mode so the server can answer ERROR 4", () => {
    assert.throws(
      () => decode(Buffer.from("\x00\x01f\x00binary\x00", "latin1")),
      (err: unknown) => err instanceof TftpDecodeError && err.reason === "unknown-mode",
    );
  });

  it("refuses to encode values that cannot be on the wire", () => {
    assert.throws(() => encode({ opcode: Opcode.ACK, block: 65536 }), RangeError);
    assert.throws(() => encode({ opcode: Opcode.RRQ, filename: "a\0b", mode: "octet", options: [] }), TypeError);
  });

  it("survives 100k random and mutated datagrams: only TftpDecodeError escapes", () => {
    const seeds = samples.map(encode);
    const pool = randomBytes(1 << 20); // one draw, sliced: randomBytes per datagram dominates otherwise
    let decoded = 0;
    let rejected = 0;
    for (let i = 0; i < 100_000; i++) {
      let buf: Buffer;
      if (i % 2 === 0) {
        const len = i % 64 === 0 ? 600 : (i * 7) % 40;
        const at = (i * 7919) % (pool.length - len);
        buf = Buffer.from(pool.subarray(at, at + len));
        if (buf.length >= 2 && i % 4 === 0) buf[0] = 0; // plausible opcodes more often
        if (buf.length >= 2 && i % 8 === 0) buf[1] = 1 + (i % 7);
      } else {
        buf = Buffer.from(seeds[i % seeds.length]);
        const flips = 1 + (i % 4);
        for (let f = 0; f < flips && buf.length > 0; f++) buf[(i * 31 + f * 17) % buf.length] = (i * 13 + f) & 0xff;
        if (i % 5 === 0) buf = buf.subarray(0, (i >> 3) % (buf.length + 1));
      }
      try {
        const p = decode(buf);
        decoded++;
        // Whatever decodes must re-encode without throwing.
        encode(p);
      } catch (err) {
        assert.ok(err instanceof TftpDecodeError, String(err));
        rejected++;
      }
    }
    assert.equal(decoded + rejected, 100_000);
    assert.ok(rejected > 0 && decoded > 0);
  });
});

describe("tftp option negotiation", () => {
  it("accepts known options, caps blksize and windowsize, answers tsize with the real size", () => {
    const n = negotiate(
      [
        { name: "BLKSIZE", value: "9000" },
        { name: "tsize", value: "0" },
        { name: "timeout", value: "3" },
        { name: "windowsize", value: "500" },
        { name: "unknown", value: "1" },
      ],
      123456,
      { maxBlockSize: 1468, maxWindowSize: 64 },
    );
    assert.equal(n.blksize, 1468);
    assert.equal(n.windowsize, 64);
    assert.equal(n.timeoutSeconds, 3);
    assert.deepEqual(n.oack, [
      { name: "blksize", value: "1468" },
      { name: "tsize", value: "123456" },
      { name: "timeout", value: "3" },
      { name: "windowsize", value: "64" },
    ]);
  });

  it("leaves out-of-range and non-numeric values out of the OACK", () => {
    const n = negotiate(
      [
        { name: "blksize", value: "7" },
        { name: "timeout", value: "0" },
        { name: "windowsize", value: "0" },
        { name: "tsize", value: "-1" },
      ],
      10,
    );
    assert.deepEqual(n.oack, []);
    assert.equal(n.blksize, 512);
    assert.equal(n.windowsize, 1);
    assert.equal(negotiate([{ name: "timeout", value: "256" }], 1).oack.length, 0);
    assert.equal(negotiate([{ name: "blksize", value: "0x200" }], 1).oack.length, 0);
  });

  it("only the first occurrence of an option counts", () => {
    const n = negotiate(
      [
        { name: "blksize", value: "1024" },
        { name: "BlkSize", value: "600" },
      ],
      1,
    );
    assert.equal(n.blksize, 1024);
    assert.equal(n.oack.length, 1);
  });
});

describe("netascii", () => {
  it("turns LF into CR LF and a bare CR into CR NUL", () => {
    assert.deepEqual(toNetascii(Buffer.from("a\nb\rc\r\n")), Buffer.from("a\r\nb\r\0c\r\0\r\n"));
    const plain = Buffer.from("no line ends");
    assert.equal(toNetascii(plain), plain);
  });
});
