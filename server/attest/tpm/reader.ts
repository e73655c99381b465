import { TpmFormatError } from "./errors.js";

/**
 * Bounds-checked big-endian reader for TPM marshalled structures (Part 2 is all big-endian,
 * sizes are explicit). Every read names its field, so a short input says which member it hit.
 */
export class TpmReader {
  private pos = 0;
  constructor(
    private readonly buf: Buffer,
    /** Offset of `buf` inside the caller's outer input, so errors report absolute offsets. */
    private readonly base = 0,
  ) {}

  get offset(): number {
    return this.base + this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, field: string): void {
    if (this.remaining < n) {
      throw new TpmFormatError("truncated", field, this.offset, `needs ${n} bytes, ${this.remaining} left`);
    }
  }

  u16(field: string): number {
    this.need(2, field);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  bytes(n: number, field: string): Buffer {
    this.need(n, field);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** A TPM2B: u16be size, then that many bytes. Returns a copy, so decoded values never alias the input. */
  tpm2b(field: string, maxSize?: number): Buffer {
    const at = this.offset;
    const size = this.u16(`${field}.size`);
    if (maxSize !== undefined && size > maxSize) {
      throw new TpmFormatError("invalid", `${field}.size`, at, `${size} exceeds the maximum ${maxSize}`);
    }
    return Buffer.from(this.bytes(size, `${field}.buffer`));
  }

  /** Fails when anything is left: every structure here has an exact length. */
  end(field: string): void {
    if (this.remaining !== 0) {
      throw new TpmFormatError("trailing-bytes", field, this.offset, `${this.remaining} bytes after the structure`);
    }
  }
}

export function u16be(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}

export function u32be(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

/** Marshal a TPM2B: u16be size || bytes. */
export function tpm2b(data: Buffer): Buffer {
  if (data.length > 0xffff) throw new RangeError(`TPM2B of ${data.length} bytes does not fit a u16 size`);
  return Buffer.concat([u16be(data.length), data]);
}
