import type { KeyObject } from "node:crypto";

/**
 * What the attestation policy needs from the TPM module (server/attest/tpm/*, owned by the
 * marshalling work): parse a TPM2B_PUBLIC and wrap a secret for an EK. The policy codes against
 * this port so it stays readable and testable; `tpm-adapter.ts` binds it to the real module.
 */
export interface TpmPublicKey {
  /** The key as node:crypto sees it (RSA or EC): pinned, compared and matched with certificates. */
  readonly publicKey: KeyObject;
  /** TPM object Name: `uint16be(nameAlg) || H_nameAlg(TPMT_PUBLIC)`. */
  readonly name: Buffer;
  /** Short algorithm text for events and logs (`rsa2048`, `ecc-p256`). */
  readonly algorithm: string;
}

export interface WrappedCredential {
  /** On the wire: `uint16be(len(idObject)) || idObject` (TPM2B_ID_OBJECT). */
  credentialBlob: Buffer;
  /** On the wire: `uint16be(len(encSecret)) || encSecret` (TPM2B_ENCRYPTED_SECRET). */
  encryptedSecret: Buffer;
}

export interface TpmCredentialPort<K extends TpmPublicKey = TpmPublicKey> {
  /** Parses a TPM2B_PUBLIC (2-byte size + TPMT_PUBLIC). Throws with a reason on bad input. */
  parsePublic(tpm2bPublic: Buffer): K;
  /** TPM2_MakeCredential in software (spec §7.4): `secret` for the object `objectName`, protected by `ek`. */
  makeCredential(ek: K, objectName: Buffer, secret: Buffer): WrappedCredential;
}
