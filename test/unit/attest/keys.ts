import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { encodeTpm2bPublic, type TpmPublicFields } from "../../../server/attest/tpm/index.js";

/** Software keys in TPM shape: an RSA-2048 EK (TCG template L-1) and an SRK (spec §7.2). Not in a TPM. */
export interface SoftKey {
  tpm2b: Buffer;
  publicKey: KeyObject;
  privateKey: KeyObject;
}

const EK_POLICY = Buffer.from("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa", "hex");

export function rsaKey(kind: "ek" | "srk"): SoftKey {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = publicKey.export({ format: "jwk" });
  const fields: TpmPublicFields = {
    type: "rsa",
    nameAlg: "sha256",
    objectAttributes: kind === "ek" ? 0x000300b2 : 0x00030472,
    authPolicy: kind === "ek" ? EK_POLICY : Buffer.alloc(0),
    symmetric: { algorithm: "aes", keyBits: 128, mode: "cfb" },
    scheme: null,
    keyBits: 2048,
    exponent: 0,
    modulus: Buffer.from(jwk.n!, "base64url"),
  };
  return { tpm2b: encodeTpm2bPublic(fields), publicKey, privateKey };
}
