import { BLKSIZE_MAX, TFTP_MODES, type TftpMode } from "./options.js";

/**
 * TFTP wire codec (RFC 1350 packets, RFC 2347 options and OACK). Pure functions over Buffers.
 *
 * Strings are decoded as latin1 so every byte survives a decode/encode round trip unchanged
 * (TFTP says "netascii", real clients send whatever bytes they like); callers that want text
 * re-interpret them (the server decodes file names as UTF-8).
 */

export const Opcode = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/** RFC 1350 error codes plus RFC 2347's 8. */
export const TftpErrorCode = {
  notDefined: 0,
  fileNotFound: 1,
  accessViolation: 2,
  diskFull: 3,
  illegalOperation: 4,
  unknownTransferId: 5,
  fileExists: 6,
  noSuchUser: 7,
  optionNegotiationRefused: 8,
} as const;

/** One option as sent: `name` keeps the sender's case; compare with `optionValue` (case-insensitive). */
export interface TftpOption {
  name: string;
  value: string;
}

export interface RequestPacket {
  opcode: typeof Opcode.RRQ | typeof Opcode.WRQ;
  filename: string;
  /** Lower-cased; the wire field is case-insensitive. */
  mode: TftpMode;
  /** Every option, known or not, in wire order. */
  options: TftpOption[];
}

export interface DataPacket {
  opcode: typeof Opcode.DATA;
  /** 0..65535 (wraps). */
  block: number;
  data: Buffer;
}

export interface AckPacket {
  opcode: typeof Opcode.ACK;
  block: number;
}

export interface ErrorPacket {
  opcode: typeof Opcode.ERROR;
  code: number;
  message: string;
}

export interface OackPacket {
  opcode: typeof Opcode.OACK;
  options: TftpOption[];
}

export type TftpPacket = RequestPacket | DataPacket | AckPacket | ErrorPacket | OackPacket;

/** Malformed input: thrown by `decode` only (never by a server, which counts and drops it). */
export class TftpDecodeError extends Error {
  override readonly name = "TftpDecodeError";
  readonly code = "TFTP_DECODE";
  constructor(
    message: string,
    /** The opcode when the first two bytes were readable. */
    readonly opcode?: number,
    /** Set for a well-formed request in a mode we do not know (answered with ERROR 4, not dropped). */
    readonly reason?: "unknown-mode",
  ) {
    super(message);
  }
}

/** First value of option `name`, compared case-insensitively (RFC 2347). */
export function optionValue(options: readonly TftpOption[], name: string): string | undefined {
  const wanted = name.toLowerCase();
  return options.find((o) => o.name.toLowerCase() === wanted)?.value;
}

/** Splits `buf[start..]` into NUL-terminated latin1 strings; the buffer must end with NUL. */
function nulStrings(buf: Buffer, start: number, opcode: number): string[] {
  if (buf.length <= start || buf[buf.length - 1] !== 0) {
    throw new TftpDecodeError("string field not NUL-terminated", opcode);
  }
  const out: string[] = [];
  let from = start;
  while (from < buf.length) {
    const end = buf.indexOf(0, from);
    out.push(buf.toString("latin1", from, end));
    from = end + 1;
  }
  return out;
}

function optionPairs(fields: string[], opcode: number): TftpOption[] {
  // Some PXE ROMs pad requests with extra NULs: trailing empty fields are padding, not options
  // (an option whose value is empty keeps its name: "name\0\0" stays one pair).
  const rest = [...fields];
  while (rest.length > 0 && rest[rest.length - 1] === "" && (rest.length % 2 === 1 || rest[rest.length - 2] === "")) {
    rest.pop();
  }
  if (rest.length % 2 === 1) throw new TftpDecodeError("option without a value", opcode);
  const options: TftpOption[] = [];
  for (let i = 0; i < rest.length; i += 2) {
    if (rest[i] === "") throw new TftpDecodeError("empty option name", opcode);
    options.push({ name: rest[i], value: rest[i + 1] });
  }
  return options;
}

function isMode(mode: string): mode is TftpMode {
  return (TFTP_MODES as readonly string[]).includes(mode);
}

/** Decodes one datagram. Throws `TftpDecodeError` for anything malformed. */
export function decode(buf: Buffer): TftpPacket {
  if (buf.length < 2) throw new TftpDecodeError("packet shorter than an opcode");
  const opcode = buf.readUInt16BE(0);
  switch (opcode) {
    case Opcode.RRQ:
    case Opcode.WRQ: {
      const fields = nulStrings(buf, 2, opcode);
      if (fields.length < 2) throw new TftpDecodeError("request without a mode", opcode);
      const mode = fields[1].toLowerCase();
      if (!isMode(mode)) throw new TftpDecodeError("unknown transfer mode", opcode, "unknown-mode");
      return { opcode, filename: fields[0], mode, options: optionPairs(fields.slice(2), opcode) };
    }
    case Opcode.DATA: {
      if (buf.length < 4) throw new TftpDecodeError("DATA shorter than its header", opcode);
      if (buf.length - 4 > BLKSIZE_MAX) throw new TftpDecodeError("DATA larger than the largest blksize", opcode);
      return { opcode, block: buf.readUInt16BE(2), data: Buffer.from(buf.subarray(4)) };
    }
    case Opcode.ACK: {
      // Lenient like tftpd-hpa: some clients pad ACKs; the block number is all that counts.
      if (buf.length < 4) throw new TftpDecodeError("ACK shorter than 4 bytes", opcode);
      return { opcode, block: buf.readUInt16BE(2) };
    }
    case Opcode.ERROR: {
      if (buf.length < 4) throw new TftpDecodeError("ERROR shorter than its header", opcode);
      // Lenient: several firmwares omit the final NUL of the message; take up to the first NUL.
      const end = buf.indexOf(0, 4);
      const message = buf.toString("latin1", 4, end === -1 ? buf.length : end);
      return { opcode, code: buf.readUInt16BE(2), message };
    }
    case Opcode.OACK: {
      const options = optionPairs(nulStrings(buf, 2, opcode), opcode);
      if (options.length === 0) throw new TftpDecodeError("OACK without options", opcode);
      return { opcode, options };
    }
    default:
      throw new TftpDecodeError(`unknown opcode ${opcode}`, opcode);
  }
}

function checkString(s: string, what: string): void {
  if (s.includes("\0")) throw new TypeError(`TFTP ${what} must not contain NUL`);
}

function checkBlock(block: number): void {
  if (!Number.isInteger(block) || block < 0 || block > 0xffff) throw new RangeError(`TFTP block ${block} out of range`);
}

function optionsLength(options: readonly TftpOption[]): number {
  let n = 0;
  for (const o of options) n += Buffer.byteLength(o.name, "latin1") + Buffer.byteLength(o.value, "latin1") + 2;
  return n;
}

/** Bytes `encode(packet)` will produce. */
export function encodingLength(packet: TftpPacket): number {
  switch (packet.opcode) {
    case Opcode.RRQ:
    case Opcode.WRQ:
      return (
        2 +
        Buffer.byteLength(packet.filename, "latin1") +
        1 +
        Buffer.byteLength(packet.mode, "latin1") +
        1 +
        optionsLength(packet.options)
      );
    case Opcode.DATA:
      return 4 + packet.data.length;
    case Opcode.ACK:
      return 4;
    case Opcode.ERROR:
      return 4 + Buffer.byteLength(packet.message, "latin1") + 1;
    case Opcode.OACK:
      return 2 + optionsLength(packet.options);
  }
}

function writeString(buf: Buffer, at: number, s: string): number {
  const n = buf.write(s, at, "latin1");
  buf[at + n] = 0;
  return at + n + 1;
}

function writeOptions(buf: Buffer, at: number, options: readonly TftpOption[]): number {
  let pos = at;
  for (const o of options) {
    checkString(o.name, "option name");
    checkString(o.value, "option value");
    pos = writeString(buf, pos, o.name);
    pos = writeString(buf, pos, o.value);
  }
  return pos;
}

/** Encodes a packet into a fresh Buffer. Throws TypeError/RangeError for values that cannot be encoded. */
export function encode(packet: TftpPacket): Buffer {
  const buf = Buffer.alloc(encodingLength(packet));
  buf.writeUInt16BE(packet.opcode, 0);
  switch (packet.opcode) {
    case Opcode.RRQ:
    case Opcode.WRQ: {
      checkString(packet.filename, "file name");
      let pos = writeString(buf, 2, packet.filename);
      pos = writeString(buf, pos, packet.mode);
      writeOptions(buf, pos, packet.options);
      break;
    }
    case Opcode.DATA:
      checkBlock(packet.block);
      if (packet.data.length > BLKSIZE_MAX) throw new RangeError("TFTP DATA larger than the largest blksize");
      buf.writeUInt16BE(packet.block, 2);
      packet.data.copy(buf, 4);
      break;
    case Opcode.ACK:
      checkBlock(packet.block);
      buf.writeUInt16BE(packet.block, 2);
      break;
    case Opcode.ERROR:
      checkBlock(packet.code);
      checkString(packet.message, "error message");
      buf.writeUInt16BE(packet.code, 2);
      writeString(buf, 4, packet.message);
      break;
    case Opcode.OACK:
      writeOptions(buf, 2, packet.options);
      break;
  }
  return buf;
}
