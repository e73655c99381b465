/**
 * TPM 2.0 constants used by the marshalling and MakeCredential code (TPM 2.0 Library Part 2,
 * "Structures": TPM_ALG_ID table, TPM_ECC_CURVE table, TPMA_OBJECT bits). Only the values this
 * appliance reads or writes are listed; an unknown value decodes to an error, not a guess.
 */

/** TPM_ALG_ID values (Part 2 §6.3). */
export const TpmAlg = {
  RSA: 0x0001,
  SHA1: 0x0004,
  HMAC: 0x0005,
  AES: 0x0006,
  KEYEDHASH: 0x0008,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAES: 0x0015,
  RSAPSS: 0x0016,
  OAEP: 0x0017,
  ECDSA: 0x0018,
  ECDH: 0x0019,
  ECDAA: 0x001a,
  SM2: 0x001b,
  ECSCHNORR: 0x001c,
  ECMQV: 0x001d,
  KDF1_SP800_56A: 0x0020,
  KDF2: 0x0021,
  KDF1_SP800_108: 0x0022,
  MGF1: 0x0007,
  ECC: 0x0023,
  SYMCIPHER: 0x0025,
  CTR: 0x0040,
  OFB: 0x0041,
  CBC: 0x0042,
  CFB: 0x0043,
  ECB: 0x0044,
} as const;

/** Hash algorithms accepted as a nameAlg or a scheme hash, with their node:crypto name and digest size. */
export type TpmHashName = "sha1" | "sha256" | "sha384" | "sha512";

export const HASH_BY_ALG: ReadonlyMap<number, { name: TpmHashName; size: number }> = new Map([
  [TpmAlg.SHA1, { name: "sha1", size: 20 }],
  [TpmAlg.SHA256, { name: "sha256", size: 32 }],
  [TpmAlg.SHA384, { name: "sha384", size: 48 }],
  [TpmAlg.SHA512, { name: "sha512", size: 64 }],
]);

export const ALG_BY_HASH: Readonly<Record<TpmHashName, number>> = {
  sha1: TpmAlg.SHA1,
  sha256: TpmAlg.SHA256,
  sha384: TpmAlg.SHA384,
  sha512: TpmAlg.SHA512,
};

/**
 * nameAlg values we accept for an object. SHA-1 is refused: a SHA-1 Name gives no collision
 * resistance, and no TCG EK or SRK template uses it.
 */
export const NAME_ALGS: ReadonlySet<TpmHashName> = new Set(["sha256", "sha384", "sha512"]);

export function hashSize(hash: TpmHashName): number {
  return HASH_BY_ALG.get(ALG_BY_HASH[hash])!.size;
}

/** TPM_ECC_CURVE values (Part 2 §6.4) for the curves we support, with their JWK name and field size. */
export type TpmCurveName = "P-256" | "P-384" | "P-521";

export const CURVE_BY_ID: ReadonlyMap<number, { name: TpmCurveName; size: number }> = new Map([
  [0x0003, { name: "P-256", size: 32 }],
  [0x0004, { name: "P-384", size: 48 }],
  [0x0005, { name: "P-521", size: 66 }],
]);

/** OpenSSL names of the curves, for node:crypto's ECDH class (much cheaper than a KeyObject per use). */
export const OPENSSL_CURVE: Readonly<Record<TpmCurveName, string>> = {
  "P-256": "prime256v1",
  "P-384": "secp384r1",
  "P-521": "secp521r1",
};

export const ID_BY_CURVE: Readonly<Record<TpmCurveName, number>> = {
  "P-256": 0x0003,
  "P-384": 0x0004,
  "P-521": 0x0005,
};

/** TPMA_OBJECT bits (Part 2 §8.3). */
export const ObjectAttr = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
  x509sign: 1 << 19,
} as const;

/** TPMA_OBJECT bits that Part 2 marks reserved: a set bit means the structure is not a TPM's. */
export const RESERVED_OBJECT_ATTRS = ((1 << 0) | (1 << 3) | (0b11 << 8) | (0b1111 << 12) | (0xfff << 20)) >>> 0;

/** The tpm2-tools credential file header (tpm2_makecredential -o, tpm2_activatecredential -i). */
export const CREDENTIAL_FILE_MAGIC = 0xbadcc0de;
export const CREDENTIAL_FILE_VERSION = 1;
