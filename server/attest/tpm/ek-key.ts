import { createPublicKey, type KeyObject } from "node:crypto";
import { TpmCredentialError } from "./errors.js";
import { curveSize, leftPad, rsaExponent, type TpmPublic } from "./public.js";

/**
 * Bridges between a TPM public area and node:crypto / PEM: status.tpm.ekPublicKey is stored as a
 * PEM "PUBLIC KEY" (SPKI DER, 64-character lines, trailing newline; spec §2.2, §7.3 step 5), and a
 * later attest compares the stored key with the one sent, structurally.
 */

function exponentBytes(e: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(e);
  let i = 0;
  while (i < 3 && b[i] === 0) i++;
  return b.subarray(i);
}

/** The public key of an RSA or ECC TPM object as a node:crypto KeyObject. */
export function tpmPublicToKeyObject(p: TpmPublic): KeyObject {
  if (p.type === "rsa") {
    return createPublicKey({
      key: {
        kty: "RSA",
        n: p.modulus.toString("base64url"),
        e: exponentBytes(rsaExponent(p)).toString("base64url"),
      },
      format: "jwk",
    });
  }
  const size = curveSize(p.curve);
  return createPublicKey({
    key: {
      kty: "EC",
      crv: p.curve,
      x: leftPad(p.x, size).toString("base64url"),
      y: leftPad(p.y, size).toString("base64url"),
    },
    format: "jwk",
  });
}

/** PEM "PUBLIC KEY" (SPKI) of a TPM object's public key, as stored in status.tpm.ekPublicKey. */
export function tpmPublicToSpkiPem(p: TpmPublic): string {
  return tpmPublicToKeyObject(p).export({ type: "spki", format: "pem" }).toString();
}

function parsePublicKey(stored: string | Buffer | KeyObject): KeyObject {
  if (typeof stored === "string") return createPublicKey(stored);
  if (!Buffer.isBuffer(stored)) return stored;
  // A Buffer is SPKI DER (an X.509 certificate's subjectPublicKeyInfo, e.g. from @peculiar/x509), or PEM text.
  try {
    return createPublicKey({ key: stored, format: "der", type: "spki" });
  } catch {
    return createPublicKey(stored);
  }
}

/**
 * True when `stored` (PEM text, SPKI DER or PEM in a Buffer, or a KeyObject) is the same key as
 * the TPM public area `p`: same type and, for RSA, same modulus and exponent; for EC, same curve
 * and point. Other TPMT_PUBLIC fields (attributes, policy) are not part of the key and are not
 * compared. Throws TpmCredentialError when `stored` cannot be parsed as a public key.
 */
export function samePublicKey(stored: string | Buffer | KeyObject, p: TpmPublic): boolean {
  let key: KeyObject;
  try {
    key = parsePublicKey(stored);
  } catch (err) {
    throw new TpmCredentialError("storedPublicKey", `not a PEM/SPKI public key (${(err as Error).message})`);
  }
  if (key.type !== "public" && key.type !== "private") return false;
  const a = key.export({ format: "jwk" });
  const b = tpmPublicToKeyObject(p).export({ format: "jwk" });
  if (a.kty !== b.kty) return false;
  if (b.kty === "RSA") return a.n === b.n && a.e === b.e;
  return a.crv === b.crv && a.x === b.x && a.y === b.y;
}

/** One line for logs, events and the console: "RSA-2048 nameAlg SHA-256 AES-128-CFB" / "ECC P-256 ...". */
export function describeTpmPublic(p: TpmPublic): string {
  const key = p.type === "rsa" ? `RSA-${p.keyBits}` : `ECC ${p.curve}`;
  const sym = p.symmetric ? ` AES-${p.symmetric.keyBits}-${p.symmetric.mode.toUpperCase()}` : "";
  return `${key} nameAlg ${p.nameAlg.toUpperCase().replace("SHA", "SHA-")}${sym}`;
}
