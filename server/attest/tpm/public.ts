import { createHash, ECDH } from "node:crypto";
import {
  ALG_BY_HASH,
  CURVE_BY_ID,
  HASH_BY_ALG,
  hashSize,
  ID_BY_CURVE,
  NAME_ALGS,
  ObjectAttr,
  OPENSSL_CURVE,
  RESERVED_OBJECT_ATTRS,
  TpmAlg,
  type TpmCurveName,
  type TpmHashName,
} from "./constants.js";
import { TpmFormatError } from "./errors.js";
import { TpmReader, tpm2b, u16be, u32be } from "./reader.js";

/**
 * TPMT_PUBLIC / TPM2B_PUBLIC (TPM 2.0 Part 2 §12.2) for RSA and ECC objects: what an agent sends
 * as `ekPub` / `srkPub`, and what `tpm2_createek -u`, `tpm2_readpublic -f tss` write.
 *
 * Decoding is strict and canonical: every size must match, nothing may trail, and every value
 * must be one a TPM would accept for that kind of key. That makes decode(encode(x)) == x and
 * encode(decode(b)) == b, so the Name computed over the received bytes is the Name of the
 * decoded fields (no re-marshalling ambiguity, spec §7.4 step 1).
 */

export type TpmSymMode = "cfb" | "ctr" | "ofb" | "cbc" | "ecb";

/** TPMT_SYM_DEF_OBJECT when not NULL. Only AES is supported (the TCG EK/SRK templates use it). */
export interface TpmSymmetric {
  algorithm: "aes";
  keyBits: 128 | 192 | 256;
  mode: TpmSymMode;
}

/** TPMT_RSA_SCHEME / TPMT_ECC_SCHEME when not NULL: the algorithm id and its hash (RSAES has none; ECDAA has a count). */
export interface TpmScheme {
  alg: number;
  hash?: TpmHashName;
  count?: number;
}

/** TPMT_KDF_SCHEME when not NULL (ECC keys). */
export interface TpmKdfScheme {
  alg: number;
  hash: TpmHashName;
}

interface TpmPublicCommon {
  nameAlg: TpmHashName;
  /** TPMA_OBJECT bits (see ObjectAttr). */
  objectAttributes: number;
  /** Empty, or a digest of nameAlg's size. */
  authPolicy: Buffer;
  /** The object's symmetric definition: non-NULL (AES-CFB) exactly for restricted decryption keys (EK, SRK). */
  symmetric: TpmSymmetric | null;
  scheme: TpmScheme | null;
}

export interface TpmRsaPublicFields extends TpmPublicCommon {
  type: "rsa";
  keyBits: number;
  /** As marshalled: 0 means the default 65537 (use rsaExponent()). */
  exponent: number;
  /** Big-endian modulus, exactly keyBits / 8 bytes. */
  modulus: Buffer;
}

export interface TpmEccPublicFields extends TpmPublicCommon {
  type: "ecc";
  curve: TpmCurveName;
  kdf: TpmKdfScheme | null;
  /** Affine coordinates, big-endian, as marshalled (at most the field size). */
  x: Buffer;
  y: Buffer;
}

export type TpmPublicFields = TpmRsaPublicFields | TpmEccPublicFields;

/** A decoded (or built) public area, with the exact TPMT_PUBLIC bytes its Name is computed over. */
export type TpmPublic = TpmPublicFields & { readonly marshalled: Buffer };
export type TpmRsaPublic = TpmRsaPublicFields & { readonly marshalled: Buffer };
export type TpmEccPublic = TpmEccPublicFields & { readonly marshalled: Buffer };

const RSA_KEY_BITS: ReadonlySet<number> = new Set([1024, 2048, 3072, 4096]);
/** TPM2B_PUBLIC_KEY_RSA / TPMS_ECC_PARAMETER buffer limits (MAX_RSA_KEY_BYTES, MAX_ECC_KEY_BYTES of a 4096/521 TPM). */
const MAX_RSA_BYTES = 512;
const MAX_ECC_BYTES = 66;

const SYM_MODES: ReadonlyMap<number, TpmSymMode> = new Map([
  [TpmAlg.CFB, "cfb"],
  [TpmAlg.CTR, "ctr"],
  [TpmAlg.OFB, "ofb"],
  [TpmAlg.CBC, "cbc"],
  [TpmAlg.ECB, "ecb"],
]);
const SYM_MODE_IDS: Readonly<Record<TpmSymMode, number>> = { cfb: 0x43, ctr: 0x40, ofb: 0x41, cbc: 0x42, ecb: 0x44 };

/** Scheme algorithms per key type, and whether their details carry a hash. */
const RSA_SCHEMES: ReadonlyMap<number, "hash" | "empty"> = new Map([
  [TpmAlg.RSASSA, "hash"],
  [TpmAlg.RSAPSS, "hash"],
  [TpmAlg.OAEP, "hash"],
  [TpmAlg.RSAES, "empty"],
]);
const ECC_SCHEMES: ReadonlyMap<number, "hash" | "hash+count"> = new Map([
  [TpmAlg.ECDSA, "hash"],
  [TpmAlg.ECDH, "hash"],
  [TpmAlg.SM2, "hash"],
  [TpmAlg.ECSCHNORR, "hash"],
  [TpmAlg.ECMQV, "hash"],
  [TpmAlg.ECDAA, "hash+count"],
]);
const KDF_SCHEMES: ReadonlySet<number> = new Set([
  TpmAlg.MGF1,
  TpmAlg.KDF1_SP800_56A,
  TpmAlg.KDF2,
  TpmAlg.KDF1_SP800_108,
]);

// ---------------------------------------------------------------- decode

/** Decode a TPM2B_PUBLIC (u16be size || TPMT_PUBLIC); the size must cover the rest of `buf` exactly. */
export function decodeTpm2bPublic(buf: Buffer): TpmPublic {
  const r = new TpmReader(buf);
  const size = r.u16("TPM2B_PUBLIC.size");
  if (size === 0) throw new TpmFormatError("invalid", "TPM2B_PUBLIC.size", 0, "empty public area");
  if (size !== r.remaining) {
    const reason = size > r.remaining ? "truncated" : "trailing-bytes";
    throw new TpmFormatError(reason, "TPM2B_PUBLIC.size", 0, `size says ${size} bytes, ${r.remaining} follow`);
  }
  return decodeTpmtPublic(r.bytes(size, "TPM2B_PUBLIC.publicArea"), 2);
}

/** Decode a bare TPMT_PUBLIC that fills `buf` exactly. `base` is only for error offsets. */
export function decodeTpmtPublic(buf: Buffer, base = 0): TpmPublic {
  const r = new TpmReader(buf, base);
  const typeAt = r.offset;
  const type = r.u16("TPMT_PUBLIC.type");
  if (type !== TpmAlg.RSA && type !== TpmAlg.ECC) {
    const known = type === TpmAlg.KEYEDHASH || type === TpmAlg.SYMCIPHER;
    throw new TpmFormatError(
      known ? "unsupported" : "invalid",
      "TPMT_PUBLIC.type",
      typeAt,
      `0x${hex4(type)} is not RSA (0x0001) or ECC (0x0023)`,
    );
  }
  const nameAlg = readNameAlg(r);
  const attrsAt = r.offset;
  const objectAttributes = r.u32("TPMT_PUBLIC.objectAttributes");
  checkAttributes(objectAttributes, attrsAt);
  const policyAt = r.offset;
  const authPolicy = r.tpm2b("TPMT_PUBLIC.authPolicy", 64);
  if (authPolicy.length !== 0 && authPolicy.length !== hashSize(nameAlg)) {
    throw new TpmFormatError(
      "inconsistent",
      "TPMT_PUBLIC.authPolicy",
      policyAt,
      `${authPolicy.length} bytes, but nameAlg ${nameAlg} digests are ${hashSize(nameAlg)}`,
    );
  }
  const symAt = r.offset;
  const symmetric = readSymmetric(r);
  checkSymmetricForAttributes(symmetric, objectAttributes, symAt);
  let fields: TpmPublicFields;
  if (type === TpmAlg.RSA) {
    const schemeAt = r.offset;
    const scheme = readScheme(r, "TPMT_PUBLIC.parameters.rsaDetail.scheme", RSA_SCHEMES);
    checkSchemeForAttributes(scheme, objectAttributes, schemeAt, "rsaDetail");
    const bitsAt = r.offset;
    const keyBits = r.u16("TPMT_PUBLIC.parameters.rsaDetail.keyBits");
    if (!RSA_KEY_BITS.has(keyBits)) {
      throw new TpmFormatError("unsupported", "TPMT_PUBLIC.parameters.rsaDetail.keyBits", bitsAt, `${keyBits} bits`);
    }
    const expAt = r.offset;
    const exponent = r.u32("TPMT_PUBLIC.parameters.rsaDetail.exponent");
    if (exponent !== 0 && (exponent < 3 || exponent % 2 === 0)) {
      throw new TpmFormatError("invalid", "TPMT_PUBLIC.parameters.rsaDetail.exponent", expAt, `${exponent}`);
    }
    const modAt = r.offset;
    const modulus = r.tpm2b("TPMT_PUBLIC.unique.rsa", MAX_RSA_BYTES);
    if (modulus.length === keyBits / 8 && (modulus[modulus.length - 1] & 1) === 0) {
      throw new TpmFormatError("inconsistent", "TPMT_PUBLIC.unique.rsa", modAt, "an even modulus is not an RSA key");
    }
    if (modulus.length !== keyBits / 8 || (modulus[0] & 0x80) === 0) {
      throw new TpmFormatError(
        "inconsistent",
        "TPMT_PUBLIC.unique.rsa",
        modAt,
        `a ${modulus.length}-byte modulus${modulus.length > 0 && (modulus[0] & 0x80) === 0 ? " with its top bit clear" : ""} for keyBits ${keyBits}`,
      );
    }
    fields = { type: "rsa", nameAlg, objectAttributes, authPolicy, symmetric, scheme, keyBits, exponent, modulus };
  } else {
    const schemeAt = r.offset;
    const scheme = readScheme(r, "TPMT_PUBLIC.parameters.eccDetail.scheme", ECC_SCHEMES);
    checkSchemeForAttributes(scheme, objectAttributes, schemeAt, "eccDetail");
    const curveAt = r.offset;
    const curveId = r.u16("TPMT_PUBLIC.parameters.eccDetail.curveID");
    const curveInfo = CURVE_BY_ID.get(curveId);
    if (!curveInfo) {
      throw new TpmFormatError(
        "unsupported",
        "TPMT_PUBLIC.parameters.eccDetail.curveID",
        curveAt,
        `curve 0x${hex4(curveId)} is not NIST P-256/P-384/P-521`,
      );
    }
    const kdf = readKdf(r);
    const xAt = r.offset;
    const x = r.tpm2b("TPMT_PUBLIC.unique.ecc.x", MAX_ECC_BYTES);
    const yAt = r.offset;
    const y = r.tpm2b("TPMT_PUBLIC.unique.ecc.y", MAX_ECC_BYTES);
    for (const [coord, at, name] of [
      [x, xAt, "x"],
      [y, yAt, "y"],
    ] as const) {
      if (coord.length === 0 || coord.length > curveInfo.size) {
        throw new TpmFormatError(
          "inconsistent",
          `TPMT_PUBLIC.unique.ecc.${name}`,
          at,
          `${coord.length} bytes for ${curveInfo.name} (field size ${curveInfo.size})`,
        );
      }
    }
    fields = {
      type: "ecc",
      nameAlg,
      objectAttributes,
      authPolicy,
      symmetric,
      scheme,
      curve: curveInfo.name,
      kdf,
      x,
      y,
    };
    if (!pointOnCurve(fields)) {
      throw new TpmFormatError("inconsistent", "TPMT_PUBLIC.unique.ecc", xAt, `not a point on ${curveInfo.name}`);
    }
  }
  r.end("TPMT_PUBLIC");
  return withMarshalled(fields, Buffer.from(buf));
}

function readNameAlg(r: TpmReader): TpmHashName {
  const at = r.offset;
  const id = r.u16("TPMT_PUBLIC.nameAlg");
  const hash = HASH_BY_ALG.get(id);
  if (!hash) throw new TpmFormatError("invalid", "TPMT_PUBLIC.nameAlg", at, `0x${hex4(id)} is not a hash algorithm`);
  if (!NAME_ALGS.has(hash.name)) {
    throw new TpmFormatError("unsupported", "TPMT_PUBLIC.nameAlg", at, `${hash.name} (use SHA-256 or stronger)`);
  }
  return hash.name;
}

function readHash(r: TpmReader, field: string): TpmHashName {
  const at = r.offset;
  const id = r.u16(field);
  const hash = HASH_BY_ALG.get(id);
  if (!hash) throw new TpmFormatError("invalid", field, at, `0x${hex4(id)} is not a hash algorithm`);
  return hash.name;
}

function checkAttributes(attrs: number, at: number): void {
  if ((attrs & RESERVED_OBJECT_ATTRS) !== 0) {
    throw new TpmFormatError(
      "invalid",
      "TPMT_PUBLIC.objectAttributes",
      at,
      `reserved bits set (0x${((attrs & RESERVED_OBJECT_ATTRS) >>> 0).toString(16)})`,
    );
  }
  const restricted = (attrs & ObjectAttr.restricted) !== 0;
  if (restricted && (attrs & ObjectAttr.decrypt) !== 0 && (attrs & ObjectAttr.sign) !== 0) {
    throw new TpmFormatError(
      "inconsistent",
      "TPMT_PUBLIC.objectAttributes",
      at,
      "a restricted key cannot both sign and decrypt",
    );
  }
}

function readSymmetric(r: TpmReader): TpmSymmetric | null {
  const at = r.offset;
  const alg = r.u16("TPMT_PUBLIC.parameters.symmetric.algorithm");
  if (alg === TpmAlg.NULL) return null;
  if (alg !== TpmAlg.AES) {
    throw new TpmFormatError(
      "unsupported",
      "TPMT_PUBLIC.parameters.symmetric.algorithm",
      at,
      `0x${hex4(alg)} (only AES is supported)`,
    );
  }
  const bitsAt = r.offset;
  const keyBits = r.u16("TPMT_PUBLIC.parameters.symmetric.keyBits");
  if (keyBits !== 128 && keyBits !== 192 && keyBits !== 256) {
    throw new TpmFormatError("invalid", "TPMT_PUBLIC.parameters.symmetric.keyBits", bitsAt, `AES-${keyBits}`);
  }
  const modeAt = r.offset;
  const modeId = r.u16("TPMT_PUBLIC.parameters.symmetric.mode");
  const mode = SYM_MODES.get(modeId);
  if (!mode) {
    throw new TpmFormatError("invalid", "TPMT_PUBLIC.parameters.symmetric.mode", modeAt, `0x${hex4(modeId)}`);
  }
  return { algorithm: "aes", keyBits, mode };
}

/** Part 2 §12.2.3.7: a restricted decryption key (a parent: EK, SRK) needs a CFB symmetric; any other key has NULL. */
function checkSymmetricForAttributes(sym: TpmSymmetric | null, attrs: number, at: number): void {
  const parent = (attrs & ObjectAttr.restricted) !== 0 && (attrs & ObjectAttr.decrypt) !== 0;
  if (parent && (sym === null || sym.mode !== "cfb")) {
    throw new TpmFormatError(
      "inconsistent",
      "TPMT_PUBLIC.parameters.symmetric",
      at,
      "a restricted decryption key needs an AES-CFB symmetric definition",
    );
  }
  if (!parent && sym !== null) {
    throw new TpmFormatError(
      "inconsistent",
      "TPMT_PUBLIC.parameters.symmetric",
      at,
      "only a restricted decryption key has a symmetric definition",
    );
  }
}

function checkSchemeForAttributes(scheme: TpmScheme | null, attrs: number, at: number, detail: string): void {
  const parent = (attrs & ObjectAttr.restricted) !== 0 && (attrs & ObjectAttr.decrypt) !== 0;
  if (parent && scheme !== null) {
    throw new TpmFormatError(
      "inconsistent",
      `TPMT_PUBLIC.parameters.${detail}.scheme`,
      at,
      "a restricted decryption key has scheme NULL",
    );
  }
}

function readScheme(r: TpmReader, field: string, allowed: ReadonlyMap<number, string>): TpmScheme | null {
  const at = r.offset;
  const alg = r.u16(field);
  if (alg === TpmAlg.NULL) return null;
  const details = allowed.get(alg);
  if (!details) throw new TpmFormatError("invalid", field, at, `0x${hex4(alg)} is not a scheme for this key type`);
  if (details === "empty") return { alg };
  const hash = readHash(r, `${field}.details.hashAlg`);
  if (details === "hash+count") return { alg, hash, count: r.u16(`${field}.details.count`) };
  return { alg, hash };
}

function readKdf(r: TpmReader): TpmKdfScheme | null {
  const field = "TPMT_PUBLIC.parameters.eccDetail.kdf";
  const at = r.offset;
  const alg = r.u16(field);
  if (alg === TpmAlg.NULL) return null;
  if (!KDF_SCHEMES.has(alg)) throw new TpmFormatError("invalid", field, at, `0x${hex4(alg)} is not a KDF`);
  return { alg, hash: readHash(r, `${field}.details.hashAlg`) };
}

function pointOnCurve(p: TpmEccPublicFields): boolean {
  try {
    // OpenSSL's EC_POINT_oct2point refuses a point that is not on the curve.
    ECDH.convertKey(uncompressedPoint(p), OPENSSL_CURVE[p.curve]);
    return true;
  } catch {
    return false;
  }
}

/** SEC 1 uncompressed encoding 04 || x || y, coordinates padded to the curve's field size. */
export function uncompressedPoint(p: { curve: TpmCurveName; x: Buffer; y: Buffer }): Buffer {
  const size = curveSize(p.curve);
  return Buffer.concat([Buffer.from([4]), leftPad(p.x, size), leftPad(p.y, size)]);
}

// ---------------------------------------------------------------- encode

/** Marshal a TPMT_PUBLIC. Validates by decoding the result, so nothing can be built that decode would refuse. */
export function encodeTpmtPublic(p: TpmPublicFields): Buffer {
  const parts: Buffer[] = [
    u16be(p.type === "rsa" ? TpmAlg.RSA : TpmAlg.ECC),
    u16be(ALG_BY_HASH[p.nameAlg]),
    u32be(p.objectAttributes),
    tpm2b(p.authPolicy),
  ];
  parts.push(
    p.symmetric === null
      ? u16be(TpmAlg.NULL)
      : Buffer.concat([u16be(TpmAlg.AES), u16be(p.symmetric.keyBits), u16be(SYM_MODE_IDS[p.symmetric.mode])]),
  );
  parts.push(encodeScheme(p.scheme));
  if (p.type === "rsa") {
    parts.push(u16be(p.keyBits), u32be(p.exponent), tpm2b(p.modulus));
  } else {
    parts.push(u16be(ID_BY_CURVE[p.curve]));
    parts.push(p.kdf === null ? u16be(TpmAlg.NULL) : Buffer.concat([u16be(p.kdf.alg), u16be(ALG_BY_HASH[p.kdf.hash])]));
    parts.push(tpm2b(p.x), tpm2b(p.y));
  }
  return Buffer.concat(parts);
}

function encodeScheme(s: TpmScheme | null): Buffer {
  if (s === null) return u16be(TpmAlg.NULL);
  const parts = [u16be(s.alg)];
  if (s.hash !== undefined) parts.push(u16be(ALG_BY_HASH[s.hash]));
  if (s.count !== undefined) parts.push(u16be(s.count));
  return Buffer.concat(parts);
}

/** Marshal a TPM2B_PUBLIC (what `tpm2_readpublic -f tss` writes and the agent sends). */
export function encodeTpm2bPublic(p: TpmPublicFields): Buffer {
  return tpm2b(encodeTpmtPublic(p));
}

/** Build a TpmPublic from fields (throws TpmFormatError when a TPM would refuse them). */
export function tpmPublic(fields: TpmPublicFields): TpmPublic {
  return decodeTpmtPublic(encodeTpmtPublic(fields));
}

// ---------------------------------------------------------------- Name

/** Object Name (Part 1 §16): nameAlg (u16be) || H_nameAlg(TPMT_PUBLIC bytes). 34 bytes for SHA-256. */
export function objectName(p: TpmPublic): Buffer {
  return nameOfMarshalled(p.nameAlg, p.marshalled);
}

export function nameOfMarshalled(nameAlg: TpmHashName, tpmtPublic: Buffer): Buffer {
  return Buffer.concat([u16be(ALG_BY_HASH[nameAlg]), createHash(nameAlg).update(tpmtPublic).digest()]);
}

/**
 * Check that `name` has the shape of an object Name (a known hash alg id, then a digest of that
 * size) and return its hash. A handle-style Name (4 bytes, for permanent entities) is refused:
 * a credential is only ever bound to a loaded key.
 */
export function checkObjectName(name: Buffer, field = "objectName"): TpmHashName {
  const r = new TpmReader(name);
  const alg = r.u16(`${field}.hashAlg`);
  const hash = HASH_BY_ALG.get(alg);
  if (!hash) throw new TpmFormatError("invalid", `${field}.hashAlg`, 0, `0x${hex4(alg)} is not a hash algorithm`);
  if (r.remaining !== hash.size) {
    throw new TpmFormatError(
      r.remaining < hash.size ? "truncated" : "trailing-bytes",
      `${field}.digest`,
      2,
      `${r.remaining} bytes, a ${hash.name} Name has ${hash.size}`,
    );
  }
  return hash.name;
}

// ---------------------------------------------------------------- helpers

/** The RSA public exponent a TPM means (0 marshalled = 65537). */
export function rsaExponent(p: TpmRsaPublicFields): number {
  return p.exponent === 0 ? 65537 : p.exponent;
}

/** Field size in bytes of an ECC key's curve (32 for P-256). */
export function curveSize(curve: TpmCurveName): number {
  return CURVE_BY_ID.get(ID_BY_CURVE[curve])!.size;
}

export function leftPad(b: Buffer, size: number): Buffer {
  if (b.length >= size) return b;
  return Buffer.concat([Buffer.alloc(size - b.length), b]);
}

function withMarshalled(fields: TpmPublicFields, marshalled: Buffer): TpmPublic {
  return Object.freeze({ ...fields, marshalled }) as TpmPublic;
}

function hex4(v: number): string {
  return v.toString(16).padStart(4, "0");
}
