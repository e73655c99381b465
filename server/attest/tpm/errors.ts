/**
 * The one error type of the TPM module. `field` names the structure member that was wrong
 * (e.g. "TPMT_PUBLIC.parameters.keyBits"), `offset` the byte offset into the decoded input where
 * that member starts, so a refused request can be logged precisely without dumping key bytes.
 */
export type TpmErrorReason =
  | "truncated" // the input ended inside a field
  | "trailing-bytes" // bytes left after the structure, or a size prefix that disagrees with its content
  | "unsupported" // a valid TPM value this appliance does not handle (e.g. a KEYEDHASH object)
  | "inconsistent" // fields that cannot belong together (modulus length != keyBits, point not on the curve)
  | "invalid"; // a value no TPM produces (reserved attribute bits, unknown algorithm id)

export class TpmFormatError extends Error {
  readonly code = "TPM_FORMAT";
  constructor(
    readonly reason: TpmErrorReason,
    readonly field: string,
    readonly offset: number,
    detail: string,
  ) {
    super(`${field} at byte ${offset}: ${detail}`);
    this.name = "TpmFormatError";
  }
}

/** A MakeCredential input that cannot be used (not a decryption key, credential too long, bad Name). */
export class TpmCredentialError extends Error {
  readonly code = "TPM_CREDENTIAL";
  constructor(
    readonly field: string,
    detail: string,
  ) {
    super(`${field}: ${detail}`);
    this.name = "TpmCredentialError";
  }
}
