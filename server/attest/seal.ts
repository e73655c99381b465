import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";

/**
 * Token sealing (spec §7.5): AES-256-GCM under the activated credential K, random 12-byte
 * nonce, no AAD; the ciphertext is followed by the 16-byte tag (Go's `Seal` layout).
 */
export function sealToken(
  key: Buffer,
  token: string,
  nonce: Buffer = randomBytes(12),
): { sealed: Buffer; nonce: Buffer } {
  if (key.length !== 32) throw new Error("sealToken: the key must be 32 bytes (AES-256)");
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  const body = Buffer.concat([cipher.update(token, "utf8"), cipher.final()]);
  return { sealed: Buffer.concat([body, cipher.getAuthTag()]), nonce };
}

/** The client's side (agent, tests): throws when the key or the bytes are wrong. */
export function openToken(key: Buffer, sealed: Buffer, nonce: Buffer): string {
  if (sealed.length < 16) throw new Error("openToken: shorter than the GCM tag");
  const decipher = createDecipheriv("aes-256-gcm", key, nonce);
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]).toString("utf8");
}

/** Upstream's "tokenID": the first 8 bytes of SHA-256(token), hex. The only form a token is logged in. */
export function tokenId(token: string): string {
  return createHash("sha256").update(token).digest("hex").slice(0, 16);
}
