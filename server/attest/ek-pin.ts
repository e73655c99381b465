import { createHash, createPublicKey, type KeyObject } from "node:crypto";

/**
 * The EK pin in `status.tpm.ekPublicKey` (spec §7.3 step 5): PEM `PUBLIC KEY` (SPKI DER in
 * 64-character lines, trailing newline), as upstream stores it. Pins are compared as keys
 * (node's `KeyObject.equals`: modulus and exponent, or curve and point), never as PEM text, so
 * a pin re-wrapped or re-encoded by hand or by another tool still matches its key.
 */
export function ekPinPem(key: KeyObject): string {
  return key.export({ type: "spki", format: "pem" }).toString();
}

export type PinComparison =
  | { kind: "unpinned" }
  | { kind: "match" }
  | { kind: "mismatch" }
  | { kind: "unreadable"; message: string };

export function compareWithPin(pin: string | undefined, key: KeyObject): PinComparison {
  if (pin === undefined || pin.trim() === "") return { kind: "unpinned" };
  let pinned: KeyObject;
  try {
    pinned = createPublicKey({ key: pin, format: "pem" });
  } catch (error) {
    return { kind: "unreadable", message: (error as Error).message };
  }
  if (pinned.type !== "public") return { kind: "unreadable", message: "the pin is not a public key" };
  return pinned.equals(key) ? { kind: "match" } : { kind: "mismatch" };
}

/** SHA-256 of the SPKI DER, hex: how events and logs name an EK without printing it. */
export function ekFingerprint(key: KeyObject): string {
  return createHash("sha256")
    .update(key.export({ type: "spki", format: "der" }))
    .digest("hex");
}

/** Fingerprint of a stored pin, or undefined when it does not parse. */
export function pinFingerprint(pin: string | undefined): string | undefined {
  if (!pin) return undefined;
  try {
    return ekFingerprint(createPublicKey({ key: pin, format: "pem" }));
  } catch {
    return undefined;
  }
}
