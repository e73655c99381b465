import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DhcpDecodeError, decode, encode, encodingLength, hardwareAddress } from "../../../server/dhcp/codec.js";
import {
  describeOption,
  readClientArchList,
  readClientMachineId,
  readRelayAgentInfo,
  readUserClasses,
  userClassOption,
} from "../../../server/dhcp/options.js";
import { isSubnetMask, parseIpv4 } from "../../../server/util/ipv4.js";
import { request } from "./fakes.js";

function decodeError(buf: Buffer): DhcpDecodeError {
  try {
    decode(buf);
  } catch (err) {
    assert.ok(err instanceof DhcpDecodeError, `expected DhcpDecodeError, got ${err}`);
    return err;
  }
  assert.fail("decode did not throw");
}

/** Header + cookie followed by raw option bytes. */
function rawPacket(optionBytes: number[], patch?: (buf: Buffer) => void): Buffer {
  const buf = Buffer.alloc(240 + optionBytes.length);
  buf[0] = 1;
  buf[1] = 1;
  buf[2] = 6;
  buf.writeUInt32BE(0x63825363, 236);
  Buffer.from(optionBytes).copy(buf, 240);
  patch?.(buf);
  return buf;
}

describe("dhcp codec", () => {
  it("round-trips header fields, known and unknown options", () => {
    const packet = request({
      mac: "aa:bb:cc:dd:ee:0f",
      flags: 0x8000,
      ciaddr: "10.0.0.5",
      giaddr: "10.0.1.1",
      xid: 0xdeadbeef,
      options: [
        [200, Buffer.from([1, 2, 3])],
        [80, Buffer.alloc(0)],
        [60, Buffer.from("PXEClient")],
      ],
    });
    packet.sname = "server.example";
    packet.file = "shimx64.efi";
    packet.secs = 7;
    packet.hops = 2;
    const wire = encode(packet);
    assert.equal(wire.length, encodingLength(packet));
    assert.equal(wire.length, 300, "short packets are padded to the BOOTP minimum");
    const back = decode(wire);
    assert.equal(back.xid, 0xdeadbeef);
    assert.equal(back.flags, 0x8000);
    assert.equal(back.ciaddr, "10.0.0.5");
    assert.equal(back.giaddr, "10.0.1.1");
    assert.equal(back.secs, 7);
    assert.equal(back.hops, 2);
    assert.equal(back.sname, "server.example");
    assert.equal(back.file, "shimx64.efi");
    assert.equal(hardwareAddress(back), "aa:bb:cc:dd:ee:0f");
    assert.deepEqual([...back.options.keys()], [53, 200, 80, 60]);
    assert.deepEqual(back.options.get(200), Buffer.from([1, 2, 3]));
    assert.equal(back.options.get(80)?.length, 0);
    assert.deepEqual(encode(back), wire, "decode→encode is byte-identical");
  });

  it("writes option 53 first whatever the map order", () => {
    const packet = request({ options: [[1, Buffer.from([255, 255, 255, 0])]] });
    packet.options.delete(53);
    packet.options.set(53, Buffer.from([2]));
    const wire = encode(packet);
    assert.deepEqual([...wire.subarray(240, 243)], [53, 1, 2]);
  });

  it("splits options longer than 255 bytes and concatenates them on decode (RFC 3396)", () => {
    const long = Buffer.from(Array.from({ length: 600 }, (_, i) => i % 251));
    const packet = request({ options: [[43, long]] });
    const wire = encode(packet);
    // 53 (3 bytes), then 43 as 255 + 255 + 90.
    assert.equal(wire[243], 43);
    assert.equal(wire[244], 255);
    assert.equal(wire[243 + 257], 43);
    assert.equal(wire[243 + 257 + 1], 255);
    assert.equal(wire[243 + 514 + 1], 90);
    assert.equal(wire.length, encodingLength(packet));
    assert.deepEqual(decode(wire).options.get(43), long);
  });

  it("concatenates repeated instances of one option in order", () => {
    const buf = rawPacket([53, 1, 1, 77, 2, 0x61, 0x62, 77, 1, 0x63, 255]);
    assert.equal(decode(buf).options.get(77)?.toString(), "abc");
  });

  it("reads options from file and sname when option 52 says so (3 = both)", () => {
    const buf = rawPacket([53, 1, 1, 52, 1, 3, 12, 2, 0x68, 0x31, 255], (b) => {
      // file (offset 108): option 12 continued, then a vendor class.
      Buffer.from([12, 1, 0x32, 60, 3, 0x50, 0x58, 0x45, 255]).copy(b, 108);
      // sname (offset 44): option 200, padding before it.
      Buffer.from([0, 0, 200, 1, 9, 255]).copy(b, 44);
    });
    const p = decode(buf);
    assert.equal(p.options.get(12)?.toString(), "h12", "options field first, then file");
    assert.equal(p.options.get(60)?.toString(), "PXE");
    assert.deepEqual(p.options.get(200), Buffer.from([9]));
    assert.equal(p.options.has(52), false, "overload is consumed by decode");
    assert.equal(p.file, "");
    assert.equal(p.sname, "");
  });

  it("keeps file as a name when option 52 = 2 (sname only)", () => {
    const buf = rawPacket([53, 1, 1, 52, 1, 2, 255], (b) => {
      b.write("pxelinux.0", 108, "latin1");
      Buffer.from([66, 3, 0x61, 0x62, 0x63, 255]).copy(b, 44);
    });
    const p = decode(buf);
    assert.equal(p.file, "pxelinux.0");
    assert.equal(p.options.get(66)?.toString(), "abc");
  });

  it("encodes option overload: 52 right after 53, options and End in file then sname, decoded back merged", () => {
    const p = request({ options: [[6, Buffer.from([10, 0, 0, 53])]] });
    p.overload = {
      file: new Map([[12, Buffer.from("host-in-file")]]),
      sname: new Map([[15, Buffer.from("example.org")]]),
    };
    const wire = encode(p);
    assert.deepEqual([...wire.subarray(240, 246)], [53, 1, 1, 52, 1, 3]);
    assert.deepEqual([...wire.subarray(108, 110)], [12, 12]);
    assert.equal(wire[108 + 14], 255, "End after the file options");
    assert.deepEqual([...wire.subarray(44, 46)], [15, 11]);
    assert.equal(encodingLength(p), wire.length);
    const back = decode(wire);
    assert.equal(back.file, "");
    assert.equal(back.sname, "");
    assert.equal(back.options.get(12)?.toString(), "host-in-file");
    assert.equal(back.options.get(15)?.toString(), "example.org");
    assert.deepEqual(back.options.get(6), Buffer.from([10, 0, 0, 53]));
    // A field cannot carry both text and options; options must fit the field.
    assert.throws(() => encode({ ...p, file: "x" }), TypeError);
    assert.throws(() => encode({ ...p, overload: { file: new Map([[12, Buffer.alloc(127)]]) } }), TypeError);
  });

  it("tolerates a missing End option and skips pads", () => {
    const p = decode(rawPacket([0, 0, 53, 1, 3, 0, 61, 2, 1, 2]));
    assert.deepEqual([...p.options.keys()], [53, 61]);
  });

  it("throws DhcpDecodeError with a reason on malformed input", () => {
    assert.equal(decodeError(Buffer.alloc(239)).reason, "short-packet");
    assert.equal(decodeError(Buffer.alloc(0)).reason, "short-packet");
    assert.equal(decodeError(Buffer.alloc(300)).reason, "bad-cookie");
    assert.equal(decodeError(rawPacket([53, 1, 1, 60])).reason, "option-overrun");
    assert.equal(decodeError(rawPacket([53, 1, 1, 60, 10, 1, 2])).reason, "option-overrun");
    assert.equal(decodeError(rawPacket([53, 1, 1, 52, 1, 7, 255])).reason, "bad-overload");
    const overrunInFile = rawPacket([53, 1, 1, 52, 1, 1, 255], (b) => {
      b[108 + 126] = 60;
      b[108 + 127] = 5;
    });
    assert.equal(decodeError(overrunInFile).reason, "option-overrun");
  });

  it("refuses to encode values that do not fit", () => {
    const p = request();
    p.file = "x".repeat(128);
    assert.throws(() => encode(p), TypeError);
    const q = request();
    q.yiaddr = "10.0.0.256";
    assert.throws(() => encode(q), TypeError);
  });
});

describe("dhcp option values", () => {
  it("reads user class in RFC 3004 form and iPXE's raw form", () => {
    assert.deepEqual(readUserClasses(Buffer.from("iPXE")), ["iPXE"]);
    assert.deepEqual(readUserClasses(userClassOption(["iPXE", "foo"])), ["iPXE", "foo"]);
    assert.deepEqual(readUserClasses(Buffer.from([4, 0x69, 0x50, 0x58, 0x45])), ["iPXE"]);
    assert.equal(readUserClasses(Buffer.alloc(0)), undefined);
  });

  it("reads client arch lists, relay agent info and machine ids", () => {
    assert.deepEqual(readClientArchList(Buffer.from([0, 7, 0, 0x10])), [7, 16]);
    assert.equal(readClientArchList(Buffer.from([0])), undefined);
    assert.deepEqual(
      readRelayAgentInfo(Buffer.from([1, 2, 0xaa, 0xbb, 2, 0]))?.map((s) => [s.code, s.data.toString("hex")]),
      [
        [1, "aabb"],
        [2, ""],
      ],
    );
    assert.equal(readRelayAgentInfo(Buffer.from([1, 5, 0])), undefined);
    const uuid = Buffer.concat([Buffer.from([0]), Buffer.from("00112233445566778899aabbccddeeff", "hex")]);
    assert.equal(readClientMachineId(uuid), "00112233-4455-6677-8899-aabbccddeeff");
    assert.equal(describeOption(93, Buffer.from([0, 7])).value?.toString(), "7");
    assert.equal(describeOption(250, Buffer.from([1])).value, "01");
  });

  it("parses IPv4 strictly", () => {
    assert.equal(parseIpv4("10.0.0.1"), 0x0a000001);
    assert.equal(parseIpv4("255.255.255.255"), 0xffffffff);
    for (const bad of ["", "10.0.0", "10.0.0.1.2", "10.0.0.256", "010.0.0.1", " 10.0.0.1", "a.b.c.d", "10..0.1"]) {
      assert.equal(parseIpv4(bad), undefined, bad);
    }
    assert.equal(isSubnetMask("255.255.255.0"), true);
    assert.equal(isSubnetMask("255.0.255.0"), false);
    assert.equal(isSubnetMask("0.0.0.0"), true);
  });
});
