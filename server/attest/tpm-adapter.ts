import { decodeTpm2bPublic, makeCredential, objectName, type TpmPublic, tpmPublicToKeyObject } from "./tpm/index.js";
import type { TpmCredentialPort, TpmPublicKey } from "./tpm-port.js";

/** A parsed key as the policy sees it, with the decoded public area the TPM module needs. */
export interface DecodedTpmKey extends TpmPublicKey {
  readonly area: TpmPublic;
}

/** Binds the policy's port to the TPM module (server/attest/tpm/*): codec, Name, MakeCredential. */
export const tpmCredentials: TpmCredentialPort<DecodedTpmKey> = {
  parsePublic(tpm2bPublic: Buffer): DecodedTpmKey {
    const area = decodeTpm2bPublic(tpm2bPublic);
    return {
      area,
      publicKey: tpmPublicToKeyObject(area),
      name: objectName(area),
      algorithm: area.type === "rsa" ? `rsa${area.keyBits}` : `ecc-${area.curve.toLowerCase()}`,
    };
  },
  makeCredential(ek: DecodedTpmKey, name: Buffer, secret: Buffer) {
    return makeCredential({ ekPublic: ek.area, objectName: name, credential: secret });
  },
};
