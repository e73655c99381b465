import type { KeyObject } from "node:crypto";
import type { TpmCurveName, TpmHashName } from "./constants.js";
import { TpmCredentialError } from "./errors.js";
import { type TpmPublic, tpmPublic } from "./public.js";

/**
 * The TCG EK Credential Profile default ("low range") EK templates L-1 (RSA-2048) and L-2
 * (ECC P-256): what `tpm2_createek` creates and what `tpm2_makecredential -G rsa|ecc -u key.pem`
 * assumes for a PEM key. Used to wrap a software key as an EK public area for test vectors and
 * for tests that need an EK no TPM holds.
 */

/** PolicySecret(TPM_RH_ENDORSEMENT) digest, the authPolicy of templates L-1 and L-2 (SHA-256). */
export const TCG_EK_AUTH_POLICY_SHA256 = Buffer.from(
  "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa",
  "hex",
);

/** fixedTPM | fixedParent | sensitiveDataOrigin | adminWithPolicy | restricted | decrypt. */
export const TCG_EK_ATTRIBUTES = 0x000300b2;

export interface EkTemplateOptions {
  nameAlg?: TpmHashName;
  symBits?: 128 | 192 | 256;
  /** Defaults to the TCG policy for SHA-256, and to empty for another nameAlg. */
  authPolicy?: Buffer;
  objectAttributes?: number;
}

/** The EK public area a TPM would report for `key` under the default template (or the given variations). */
export function ekPublicFromKey(key: KeyObject, options: EkTemplateOptions = {}): TpmPublic {
  const jwk = key.export({ format: "jwk" });
  const nameAlg = options.nameAlg ?? "sha256";
  const common = {
    nameAlg,
    objectAttributes: options.objectAttributes ?? TCG_EK_ATTRIBUTES,
    authPolicy: options.authPolicy ?? (nameAlg === "sha256" ? TCG_EK_AUTH_POLICY_SHA256 : Buffer.alloc(0)),
    symmetric: { algorithm: "aes" as const, keyBits: options.symBits ?? 128, mode: "cfb" as const },
    scheme: null,
  };
  if (jwk.kty === "RSA") {
    const modulus = Buffer.from(jwk.n!, "base64url");
    const eBytes = Buffer.from(jwk.e!, "base64url");
    const e = eBytes.readUIntBE(0, eBytes.length);
    return tpmPublic({ ...common, type: "rsa", keyBits: modulus.length * 8, exponent: e === 65537 ? 0 : e, modulus });
  }
  if (jwk.kty === "EC") {
    return tpmPublic({
      ...common,
      type: "ecc",
      curve: jwk.crv as TpmCurveName,
      kdf: null,
      x: Buffer.from(jwk.x!, "base64url"),
      y: Buffer.from(jwk.y!, "base64url"),
    });
  }
  throw new TpmCredentialError("key", `a ${jwk.kty} key cannot be an EK`);
}
