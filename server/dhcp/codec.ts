import { readIpv4, writeIpv4, ZERO_IPV4 } from "../util/ipv4.js";
import { type DhcpOptions, OptionCode } from "./options.js";

/**
 * BOOTP/DHCPv4 wire codec (RFC 951, RFC 2131 §2, RFC 2132 options, RFC 3396 long options).
 * Pure functions over Buffers. Decoded option values are views into the input buffer.
 */
export interface DhcpPacket {
  /** 1 = BOOTREQUEST, 2 = BOOTREPLY. */
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  /** Bit 15 (0x8000) is the broadcast flag. */
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** Always 16 bytes; the first `hlen` are the hardware address. */
  chaddr: Buffer;
  /** Server host name (64-byte field, NUL-terminated). Empty when the field carried options. */
  sname: string;
  /** Boot file name (128-byte field, NUL-terminated). Empty when the field carried options. */
  file: string;
  options: DhcpOptions;
  /**
   * Encode only: options carried in the `file` and/or `sname` fields (RFC 2132 §9.3 option
   * overload; the encoder writes option 52 itself). A field carrying options must be empty as
   * text. Decoding merges every area into `options` (RFC 3396) and leaves this unset.
   */
  overload?: { file?: DhcpOptions; sname?: DhcpOptions };
}

export type DhcpDecodeErrorReason = "short-packet" | "bad-cookie" | "option-overrun" | "bad-overload";

export class DhcpDecodeError extends Error {
  readonly code = "DHCP_DECODE";
  constructor(
    readonly reason: DhcpDecodeErrorReason,
    message: string,
  ) {
    super(message);
    this.name = "DhcpDecodeError";
  }
}

export const BROADCAST_FLAG = 0x8000;
export const DHCP_MAGIC_COOKIE = 0x63825363;

const SNAME_OFFSET = 44;
const SNAME_LENGTH = 64;
const FILE_OFFSET = 108;
const FILE_LENGTH = 128;
const COOKIE_OFFSET = 236;
const OPTIONS_OFFSET = 240;
/** RFC 951 packets are at least 300 bytes; some PXE ROMs drop anything shorter. */
const MIN_PACKET_LENGTH = 300;

// ------------------------------------------------------------------------------ decode

/** Decode or throw DhcpDecodeError (and nothing else). */
export function decode(buf: Buffer): DhcpPacket {
  const result = tryDecode(buf);
  if (!result.ok) throw new DhcpDecodeError(result.reason, result.message);
  return result.packet;
}

export interface DhcpDecodeFailure {
  ok: false;
  reason: DhcpDecodeErrorReason;
  message: string;
}

/**
 * Decode without throwing. Servers use this: hostile traffic is mostly malformed, and building
 * an Error (stack capture) per dropped datagram costs more than decoding a good one.
 */
export function tryDecode(buf: Buffer): { ok: true; packet: DhcpPacket } | DhcpDecodeFailure {
  if (!Buffer.isBuffer(buf)) return failure("short-packet", "not a buffer");
  if (buf.length < OPTIONS_OFFSET) {
    return failure("short-packet", `packet is ${buf.length} bytes, need at least ${OPTIONS_OFFSET}`);
  }
  if (buf.readUInt32BE(COOKIE_OFFSET) !== DHCP_MAGIC_COOKIE) return failure("bad-cookie", "missing DHCP magic cookie");
  // Per RFC 3396 all instances of one code are concatenated, in the order: options field,
  // then `file`, then `sname` (when option 52 says they carry options). One map, in order of
  // first appearance; a repeated code (rare) is concatenated when it appears.
  const options: DhcpOptions = new Map();
  let failed = scanOptions(buf, OPTIONS_OFFSET, buf.length, options, "options");
  if (failed) return failed;
  let sname = "";
  let file = "";
  const overloadValue = options.get(OptionCode.Overload);
  let overload = 0;
  if (overloadValue) {
    options.delete(OptionCode.Overload);
    if (overloadValue.length !== 1 || overloadValue[0] < 1 || overloadValue[0] > 3) {
      return failure("bad-overload", "option 52 must be one byte 1, 2 or 3");
    }
    overload = overloadValue[0];
  }
  if (overload & 1) failed = scanOptions(buf, FILE_OFFSET, FILE_OFFSET + FILE_LENGTH, options, "file");
  else file = readCString(buf, FILE_OFFSET, FILE_LENGTH);
  if (failed) return failed;
  if (overload & 2) failed = scanOptions(buf, SNAME_OFFSET, SNAME_OFFSET + SNAME_LENGTH, options, "sname");
  else sname = readCString(buf, SNAME_OFFSET, SNAME_LENGTH);
  if (failed) return failed;
  // Overload inside file/sname is meaningless (RFC 2131 §4.1): drop it rather than loop.
  options.delete(OptionCode.Overload);

  return {
    ok: true,
    packet: {
      op: buf[0],
      htype: buf[1],
      hlen: buf[2],
      hops: buf[3],
      xid: buf.readUInt32BE(4),
      secs: buf.readUInt16BE(8),
      flags: buf.readUInt16BE(10),
      ciaddr: readAddress(buf, 12),
      yiaddr: readAddress(buf, 16),
      siaddr: readAddress(buf, 20),
      giaddr: readAddress(buf, 24),
      chaddr: buf.subarray(28, 44),
      sname,
      file,
      options,
    },
  };
}

/** A header address; the common all-zero one without building a string. */
function readAddress(buf: Buffer, offset: number): string {
  return buf[offset] === 0 && buf[offset + 1] === 0 && buf[offset + 2] === 0 && buf[offset + 3] === 0
    ? ZERO_IPV4
    : readIpv4(buf, offset);
}

function failure(reason: DhcpDecodeErrorReason, message: string): DhcpDecodeFailure {
  return { ok: false, reason, message };
}

function scanOptions(
  buf: Buffer,
  start: number,
  end: number,
  options: DhcpOptions,
  area: string,
): DhcpDecodeFailure | undefined {
  let i = start;
  while (i < end) {
    const code = buf[i];
    if (code === OptionCode.End) return undefined;
    if (code === OptionCode.Pad) {
      i++;
      continue;
    }
    if (i + 1 >= end) return failure("option-overrun", `option ${code} in ${area} has no length byte`);
    const len = buf[i + 1];
    const valueEnd = i + 2 + len;
    if (valueEnd > end) {
      return failure("option-overrun", `option ${code} in ${area} overruns the field by ${valueEnd - end}`);
    }
    const value = buf.subarray(i + 2, valueEnd);
    const earlier = options.get(code);
    options.set(code, earlier ? Buffer.concat([earlier, value]) : value);
    i = valueEnd;
  }
  // A missing End option is tolerated: several embedded clients stop at the last option.
  return undefined;
}

function readCString(buf: Buffer, offset: number, length: number): string {
  const nul = buf.indexOf(0, offset);
  const end = nul < 0 || nul > offset + length ? offset + length : nul;
  return buf.toString("latin1", offset, end);
}

// ------------------------------------------------------------------------------ encode

/** Bytes `encode(packet)` will produce. */
export function encodingLength(packet: DhcpPacket): number {
  return Math.max(OPTIONS_OFFSET + optionsFieldLength(packet), MIN_PACKET_LENGTH);
}

/** Bytes of the options field (after the cookie), End and an overload option 52 included. */
export function optionsFieldLength(packet: DhcpPacket): number {
  let length = 1 + (overloadValue(packet) === 0 ? 0 : 3);
  for (const value of packet.options.values()) length += optionWireLength(value.length);
  return length;
}

/** Bytes one option takes on the wire, split per RFC 3396 when longer than 255. */
export function optionWireLength(valueLength: number): number {
  const chunks = valueLength === 0 ? 1 : Math.ceil(valueLength / 255);
  return valueLength + 2 * chunks;
}

/** Room for options in the BOOTP fields when overloaded (End included). */
export const FILE_FIELD_LENGTH = FILE_LENGTH;
export const SNAME_FIELD_LENGTH = SNAME_LENGTH;
/** Fixed header plus magic cookie: where the options field starts. */
export const DHCP_HEADER_LENGTH = OPTIONS_OFFSET;

function overloadValue(packet: DhcpPacket): number {
  const file = packet.overload?.file;
  const sname = packet.overload?.sname;
  return (file && file.size > 0 ? 1 : 0) | (sname && sname.size > 0 ? 2 : 0);
}

/**
 * Serialize a packet. Option 53 goes first (some PXE ROMs only look there), then the other
 * options in map order; values longer than 255 bytes are split into consecutive instances
 * (RFC 3396). Throws TypeError for values that cannot be encoded (bad address, field too long):
 * those are programming errors, not wire input.
 */
export function encode(packet: DhcpPacket): Buffer {
  const length = encodingLength(packet);
  const buf = Buffer.allocUnsafe(length);
  buf.fill(0, 0, OPTIONS_OFFSET);
  buf[0] = packet.op;
  buf[1] = packet.htype;
  buf[2] = packet.hlen;
  buf[3] = packet.hops;
  buf.writeUInt32BE(packet.xid >>> 0, 4);
  buf.writeUInt16BE(packet.secs & 0xffff, 8);
  buf.writeUInt16BE(packet.flags & 0xffff, 10);
  writeIpv4(buf, 12, packet.ciaddr);
  writeIpv4(buf, 16, packet.yiaddr);
  writeIpv4(buf, 20, packet.siaddr);
  writeIpv4(buf, 24, packet.giaddr);
  packet.chaddr.copy(buf, 28, 0, Math.min(16, packet.chaddr.length));
  const overload = overloadValue(packet);
  if (overload & 1) writeOptionArea(buf, FILE_OFFSET, FILE_LENGTH, packet.overload?.file, packet.file, "file");
  else writeField(buf, FILE_OFFSET, FILE_LENGTH, packet.file, "file");
  if (overload & 2) writeOptionArea(buf, SNAME_OFFSET, SNAME_LENGTH, packet.overload?.sname, packet.sname, "sname");
  else writeField(buf, SNAME_OFFSET, SNAME_LENGTH, packet.sname, "sname");
  buf.writeUInt32BE(DHCP_MAGIC_COOKIE, COOKIE_OFFSET);

  let pos = OPTIONS_OFFSET;
  const messageType = packet.options.get(OptionCode.MessageType);
  if (messageType) pos = writeOption(buf, pos, OptionCode.MessageType, messageType);
  // RFC 2131 §4.1: option 52 lives in the options field; right after 53 so readers see it early.
  if (overload !== 0) pos = writeOption(buf, pos, OptionCode.Overload, Buffer.from([overload]));
  pos = writeOptions(buf, pos, packet.options, overload !== 0);
  buf[pos++] = OptionCode.End;
  buf.fill(0, pos);
  return buf;
}

/** `ownOverload`: the encoder writes option 52 itself, so a caller's 52 would contradict it. */
function writeOptions(buf: Buffer, pos: number, options: DhcpOptions, ownOverload: boolean): number {
  for (const [code, value] of options) {
    if (code === OptionCode.MessageType) continue;
    if (!Number.isInteger(code) || code <= OptionCode.Pad || code >= OptionCode.End) {
      throw new TypeError(`option code ${code} cannot carry a value`);
    }
    if (ownOverload && code === OptionCode.Overload) {
      throw new TypeError(`option code ${code} cannot carry a value here`);
    }
    pos = writeOption(buf, pos, code, value);
  }
  return pos;
}

/** Options, End, then Pad (zero) to the end of a BOOTP field; the field's text must be empty. */
function writeOptionArea(
  buf: Buffer,
  offset: number,
  length: number,
  options: DhcpOptions | undefined,
  text: string,
  name: string,
): void {
  if (text) throw new TypeError(`${name} carries options (overload) and cannot also carry text`);
  let need = 1;
  for (const [code, value] of options ?? []) {
    if (code === OptionCode.MessageType) throw new TypeError("option 53 must stay in the options field");
    need += optionWireLength(value.length);
  }
  if (need > length) throw new TypeError(`options for ${name} need ${need} bytes, the field has ${length}`);
  const end = writeOptions(buf, offset, options ?? new Map(), true);
  buf[end] = OptionCode.End;
  buf.fill(0, end + 1, offset + length);
}

function writeOption(buf: Buffer, pos: number, code: number, value: Buffer): number {
  if (value.length === 0) {
    buf[pos] = code;
    buf[pos + 1] = 0;
    return pos + 2;
  }
  for (let offset = 0; offset < value.length; offset += 255) {
    const len = Math.min(255, value.length - offset);
    buf[pos] = code;
    buf[pos + 1] = len;
    value.copy(buf, pos + 2, offset, offset + len);
    pos += 2 + len;
  }
  return pos;
}

function writeField(buf: Buffer, offset: number, length: number, text: string, name: string): void {
  if (!text) return;
  const bytes = Buffer.byteLength(text, "latin1");
  // Keep room for the terminating NUL so C clients never read past the field.
  if (bytes >= length) throw new TypeError(`${name} is ${bytes} bytes, at most ${length - 1} fit`);
  buf.write(text, offset, bytes, "latin1");
}

// ------------------------------------------------------------------------------ helpers

/** Char codes of lower-case hex digits. */
const HEX_DIGITS = [48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 97, 98, 99, 100, 101, 102];

/** Lower-case `aa:bb:cc:dd:ee:ff` of the first `hlen` (at most 16) bytes of chaddr. */
export function hardwareAddress(packet: DhcpPacket): string {
  const n = Math.min(packet.hlen, 16, packet.chaddr.length);
  const c = packet.chaddr;
  if (n === 6) {
    // One flat string in one step (the MAC is a Map key right after; a string built by `+=`
    // is a rope that must be flattened before it can be hashed).
    return String.fromCharCode(
      HEX_DIGITS[c[0]! >> 4]!,
      HEX_DIGITS[c[0]! & 15]!,
      58,
      HEX_DIGITS[c[1]! >> 4]!,
      HEX_DIGITS[c[1]! & 15]!,
      58,
      HEX_DIGITS[c[2]! >> 4]!,
      HEX_DIGITS[c[2]! & 15]!,
      58,
      HEX_DIGITS[c[3]! >> 4]!,
      HEX_DIGITS[c[3]! & 15]!,
      58,
      HEX_DIGITS[c[4]! >> 4]!,
      HEX_DIGITS[c[4]! & 15]!,
      58,
      HEX_DIGITS[c[5]! >> 4]!,
      HEX_DIGITS[c[5]! & 15]!,
    );
  }
  let out = "";
  for (let i = 0; i < n; i++) {
    const b = c[i]!;
    out += (i === 0 ? "" : ":") + (b < 16 ? "0" : "") + b.toString(16);
  }
  return out;
}

export function messageType(packet: DhcpPacket): number | undefined {
  const value = packet.options.get(OptionCode.MessageType);
  return value && value.length === 1 ? value[0] : undefined;
}
