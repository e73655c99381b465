import { createHash, createHmac } from "node:crypto";
import type { TpmHashName } from "./constants.js";
import { u32be } from "./reader.js";

/**
 * The two TPM key derivation functions (TPM 2.0 Part 1 §11.4.10).
 *
 * Labels are given without their terminating NUL; both functions append it, because the TPM
 * treats a label as a NUL-terminated string ("STORAGE\0", "INTEGRITY\0", "IDENTITY\0").
 */

const MAX_BITS = 8 * 1024 * 8; // no caller needs more than a few hundred bits; bound the loop anyway

function truncate(out: Buffer, bits: number): Buffer {
  const bytes = Math.ceil(bits / 8);
  const key = Buffer.from(out.subarray(0, bytes));
  // Part 1 §11.4.10.2: when bits is not a multiple of 8 the unused top bits of the first byte are zero.
  if (bits % 8 !== 0) key[0] &= 0xff >> (8 - (bits % 8));
  return key;
}

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits <= 0 || bits > MAX_BITS) throw new RangeError(`KDF: bad bit count ${bits}`);
}

/**
 * KDFa (SP800-108 counter mode with HMAC):
 * HMAC_hash(key, u32be(i) || label || 0x00 || contextU || contextV || u32be(bits)), i = 1, 2, ...
 */
export function kdfa(
  hash: TpmHashName,
  key: Buffer,
  label: string,
  contextU: Buffer,
  contextV: Buffer,
  bits: number,
): Buffer {
  checkBits(bits);
  const fixed = Buffer.concat([Buffer.from(label, "latin1"), Buffer.from([0]), contextU, contextV, u32be(bits)]);
  const blocks: Buffer[] = [];
  let have = 0;
  for (let i = 1; have * 8 < bits; i++) {
    const block = createHmac(hash, key).update(u32be(i)).update(fixed).digest();
    blocks.push(block);
    have += block.length;
  }
  return truncate(Buffer.concat(blocks), bits);
}

/**
 * KDFe (SP800-56A concatenation KDF, used after ECDH):
 * H(u32be(i) || Z || label || 0x00 || partyUInfo || partyVInfo), i = 1, 2, ...
 */
export function kdfe(
  hash: TpmHashName,
  z: Buffer,
  label: string,
  partyU: Buffer,
  partyV: Buffer,
  bits: number,
): Buffer {
  checkBits(bits);
  const other = Buffer.concat([Buffer.from(label, "latin1"), Buffer.from([0]), partyU, partyV]);
  const blocks: Buffer[] = [];
  let have = 0;
  for (let i = 1; have * 8 < bits; i++) {
    const block = createHash(hash).update(u32be(i)).update(z).update(other).digest();
    blocks.push(block);
    have += block.length;
  }
  return truncate(Buffer.concat(blocks), bits);
}
