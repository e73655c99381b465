import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../util/atomic-file.js";
import { isWireGuardKey } from "./cidr.js";

/**
 * The appliance's WireGuard key pair. The private key is made here, kept 0600 in the state dir
 * (the data partition on the appliance) and never leaves the box: it is only ever handed to
 * `wg setconf` on stdin. Only the public key is published (docs/overlay.md).
 */
export interface OverlayKey {
  privateKey: string;
  publicKey: string;
}

/** PKCS#8 wrapping of a raw X25519 private key (RFC 8410): the fixed prefix, then the 32 bytes. */
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

export function publicKeyOf(privateKey: string): string {
  const raw = Buffer.from(privateKey, "base64");
  const key: KeyObject = createPrivateKey({
    key: Buffer.concat([X25519_PKCS8_PREFIX, raw]),
    format: "der",
    type: "pkcs8",
  });
  const jwk = createPublicKey(key).export({ format: "jwk" });
  if (typeof jwk.x !== "string") throw new Error("overlay: could not derive the public key");
  return Buffer.from(jwk.x, "base64url").toString("base64");
}

export function generateOverlayKey(): OverlayKey {
  const { privateKey } = generateKeyPairSync("x25519");
  const jwk = privateKey.export({ format: "jwk" });
  if (typeof jwk.d !== "string" || typeof jwk.x !== "string") throw new Error("overlay: key generation failed");
  return {
    privateKey: Buffer.from(jwk.d, "base64url").toString("base64"),
    publicKey: Buffer.from(jwk.x, "base64url").toString("base64"),
  };
}

/**
 * Reads the key file, or makes it when there is none. A key file that others can read, or that
 * does not hold a key, stops the overlay with an error naming the file: it is never replaced,
 * because a new key silently cuts the appliance off every gateway that knows the old one.
 */
export async function loadOrCreateOverlayKey(file: string): Promise<OverlayKey> {
  let text: string;
  try {
    const info = await stat(file);
    if ((info.mode & 0o077) !== 0) {
      throw new Error(
        `overlay: ${file} is readable by other users (mode ${(info.mode & 0o777).toString(8)}): chmod 600 it`,
      );
    }
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    const key = generateOverlayKey();
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, `${key.privateKey}\n`);
    return key;
  }
  const privateKey = text.trim();
  if (!isWireGuardKey(privateKey)) {
    throw new Error(`overlay: ${file} does not hold a WireGuard private key; move it away to make a new one`);
  }
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}
