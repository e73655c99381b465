/**
 * TPM 2.0 structures and credential protection for /attest (spec §7). Pure: no I/O, no state.
 * See docs/tpm-credential.md for the formats, algorithms and what is verified.
 */
export {
  ObjectAttr,
  TpmAlg,
  type TpmCurveName,
  type TpmHashName,
} from "./constants.js";
export { describeTpmPublic, samePublicKey, tpmPublicToKeyObject, tpmPublicToSpkiPem } from "./ek-key.js";
export {
  type EkTemplateOptions,
  ekPublicFromKey,
  TCG_EK_ATTRIBUTES,
  TCG_EK_AUTH_POLICY_SHA256,
} from "./ek-template.js";
export { TpmCredentialError, type TpmErrorReason, TpmFormatError } from "./errors.js";
export { kdfa, kdfe } from "./kdf.js";
export {
  activateCredentialInSoftware,
  credentialBlobFromSeed,
  type MakeCredentialInput,
  type MakeCredentialOptions,
  type MakeCredentialResult,
  makeCredential,
  parseTpm2ToolsCredentialFile,
  type SoftwareActivateInput,
  toTpm2ToolsCredentialFile,
} from "./make-credential.js";
export {
  checkObjectName,
  decodeTpm2bPublic,
  decodeTpmtPublic,
  encodeTpm2bPublic,
  encodeTpmtPublic,
  nameOfMarshalled,
  objectName,
  rsaExponent,
  type TpmEccPublic,
  type TpmEccPublicFields,
  type TpmKdfScheme,
  type TpmPublic,
  type TpmPublicFields,
  type TpmRsaPublic,
  type TpmRsaPublicFields,
  type TpmScheme,
  type TpmSymmetric,
  tpmPublic,
} from "./public.js";
