import {
  constants,
  createCipheriv,
  createDecipheriv,
  createECDH,
  createHmac,
  createPublicKey,
  diffieHellman,
  type KeyObject,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import { CREDENTIAL_FILE_MAGIC, CREDENTIAL_FILE_VERSION, hashSize, ObjectAttr, OPENSSL_CURVE } from "./constants.js";
import { tpmPublicToKeyObject } from "./ek-key.js";
import { TpmCredentialError, TpmFormatError } from "./errors.js";
import { kdfa, kdfe } from "./kdf.js";
import { checkObjectName, curveSize, leftPad, type TpmEccPublic, type TpmPublic, uncompressedPoint } from "./public.js";
import { TpmReader, tpm2b, u32be } from "./reader.js";

/**
 * TPM2_MakeCredential in software (TPM 2.0 Part 1 §24 "Credential Protection", Part 3 §12.6),
 * what `tpm2_makecredential -T none` and go-tpm's credactivation do:
 *
 *   seed          random (RSA EK) or KDFe(ECDH(ephemeral, EK)) (ECC EK), digest size of EK nameAlg
 *   encSecret     RSA-OAEP(EK, seed, hash = nameAlg, label "IDENTITY\0")  or  the ephemeral point
 *   symKey        KDFa(nameAlg, seed, "STORAGE", Name, "", EK symmetric keyBits)
 *   encIdentity   AES-CFB(symKey, IV 0, u16be(len) || credential)
 *   hmacKey       KDFa(nameAlg, seed, "INTEGRITY", "", "", digest bits)
 *   outerHMAC     HMAC_nameAlg(hmacKey, encIdentity || Name)
 *   credentialBlob  = TPM2B_ID_OBJECT       = u16be size || TPM2B_DIGEST(outerHMAC) || encIdentity
 *   encryptedSecret = TPM2B_ENCRYPTED_SECRET = u16be size || encSecret
 *
 * Only the TPM holding the EK's private part can recover the seed, and it releases the
 * credential only when the object with that Name is loaded next to it (TPM2_ActivateCredential).
 */

export interface MakeCredentialInput {
  /** The EK (or any restricted decryption key) the credential is encrypted to. */
  ekPublic: TpmPublic;
  /** Name of the object the credential is bound to (objectName(srk)): nameAlg || digest. */
  objectName: Buffer;
  /** The secret released by ActivateCredential: 1..digest-size-of-EK-nameAlg bytes (32 for SHA-256). */
  credential: Buffer;
}

export interface MakeCredentialOptions {
  /** RSA EKs only, for test vectors: the seed instead of random bytes (digest size of the EK nameAlg). */
  seed?: Buffer;
  /** ECC EKs only, for test vectors: the ephemeral private key (on the EK's curve) instead of a fresh one. */
  ephemeral?: KeyObject;
}

export interface MakeCredentialResult {
  /** TPM2B_ID_OBJECT, size-prefixed: the `credentialBlob` of /attest (70 bytes for RSA-2048/SHA-256/AES-128). */
  credentialBlob: Buffer;
  /** TPM2B_ENCRYPTED_SECRET, size-prefixed: the `encryptedSecret` of /attest (258 bytes for RSA-2048). */
  encryptedSecret: Buffer;
}

const LABEL_IDENTITY = "IDENTITY";
const LABEL_STORAGE = "STORAGE";
const LABEL_INTEGRITY = "INTEGRITY";

/** Throws TpmCredentialError when the EK cannot protect a credential or the inputs are malformed. */
export function makeCredential(input: MakeCredentialInput, options: MakeCredentialOptions = {}): MakeCredentialResult {
  const ek = input.ekPublic;
  const sym = checkEk(ek);
  checkName(input.objectName);
  const digestSize = hashSize(ek.nameAlg);
  if (input.credential.length === 0 || input.credential.length > digestSize) {
    throw new TpmCredentialError(
      "credential",
      `${input.credential.length} bytes; an EK with nameAlg ${ek.nameAlg} protects 1..${digestSize}`,
    );
  }
  const { seed, encSecret } = ek.type === "rsa" ? rsaSeed(ek, options) : eccSeed(ek, options);
  return {
    credentialBlob: idObjectFromSeed(ek, sym.keyBits, seed, input.objectName, input.credential),
    encryptedSecret: tpm2b(encSecret),
  };
}

/**
 * The deterministic half of MakeCredential: the TPM2B_ID_OBJECT for a given seed. For test
 * vectors only (a seed recovered from another implementation's output must give its exact bytes);
 * the server always goes through makeCredential().
 */
export function credentialBlobFromSeed(input: MakeCredentialInput, seed: Buffer): Buffer {
  const sym = checkEk(input.ekPublic);
  checkName(input.objectName);
  return idObjectFromSeed(input.ekPublic, sym.keyBits, seed, input.objectName, input.credential);
}

function idObjectFromSeed(ek: TpmPublic, keyBits: number, seed: Buffer, name: Buffer, credential: Buffer): Buffer {
  const encIdentity = wrapIdentity(ek, keyBits, seed, name, credential);
  const outerHmac = integrity(ek, seed, encIdentity, name);
  return tpm2b(Buffer.concat([tpm2b(outerHmac), encIdentity]));
}

function checkEk(ek: TpmPublic): { keyBits: number } {
  const attrs = ek.objectAttributes;
  if ((attrs & ObjectAttr.decrypt) === 0 || (attrs & ObjectAttr.restricted) === 0 || ek.symmetric === null) {
    throw new TpmCredentialError("ekPublic", "not a restricted decryption key with a symmetric definition");
  }
  if (ek.symmetric.mode !== "cfb") throw new TpmCredentialError("ekPublic.symmetric", "mode is not CFB");
  return ek.symmetric;
}

function checkName(name: Buffer): void {
  try {
    checkObjectName(name);
  } catch (err) {
    if (err instanceof TpmFormatError) throw new TpmCredentialError("objectName", err.message);
    throw err;
  }
}

function rsaSeed(ek: TpmPublic & { type: "rsa" }, options: MakeCredentialOptions): { seed: Buffer; encSecret: Buffer } {
  if (options.ephemeral) throw new TpmCredentialError("ephemeral", "only for an ECC EK");
  const size = hashSize(ek.nameAlg);
  const seed = options.seed ?? randomBytes(size);
  if (seed.length !== size)
    throw new TpmCredentialError("seed", `${seed.length} bytes, nameAlg ${ek.nameAlg} needs ${size}`);
  let encSecret: Buffer;
  try {
    encSecret = publicEncrypt(
      {
        key: tpmPublicToKeyObject(ek),
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: ek.nameAlg, // node uses the same hash for MGF1
        oaepLabel: identityLabel(),
      },
      seed,
    );
  } catch (err) {
    // A well-formed but bogus modulus (one no TPM generates) is the client's fault, not ours.
    throw new TpmCredentialError("ekPublic", `RSA-OAEP with this key failed (${(err as Error).message})`);
  }
  return { seed, encSecret };
}

function eccSeed(ek: TpmEccPublic, options: MakeCredentialOptions): { seed: Buffer; encSecret: Buffer } {
  if (options.seed) throw new TpmCredentialError("seed", "an ECC EK derives the seed from ECDH; inject `ephemeral`");
  const ecdh = createECDH(OPENSSL_CURVE[ek.curve]);
  if (options.ephemeral) {
    const eph = options.ephemeral.type === "private" ? options.ephemeral.export({ format: "jwk" }) : undefined;
    if (eph?.kty !== "EC" || eph.crv !== ek.curve || !eph.d) {
      throw new TpmCredentialError("ephemeral", `must be an EC private key on ${ek.curve}`);
    }
    ecdh.setPrivateKey(Buffer.from(eph.d, "base64url"));
  } else {
    ecdh.generateKeys();
  }
  const size = curveSize(ek.curve);
  const ephPoint = ecdh.getPublicKey(); // 04 || x || y, each at the field size
  const ephX = ephPoint.subarray(1, 1 + size);
  const ephY = ephPoint.subarray(1 + size);
  let z: Buffer;
  try {
    z = ecdh.computeSecret(uncompressedPoint(ek));
  } catch (err) {
    throw new TpmCredentialError("ekPublic", `ECDH with this point failed (${(err as Error).message})`);
  }
  const seed = eccSeedFromZ(ek, z, ephX);
  // TPMS_ECC_POINT of the ephemeral public key.
  const encSecret = Buffer.concat([tpm2b(ephX), tpm2b(ephY)]);
  return { seed, encSecret };
}

/** Part 1 Annex C.6.1: seed = KDFe(nameAlg, Z, "IDENTITY", ephemeral.x, EK.x, digest bits). */
function eccSeedFromZ(ek: TpmEccPublic, z: Buffer, ephX: Buffer): Buffer {
  const size = curveSize(ek.curve);
  return kdfe(
    ek.nameAlg,
    leftPad(z, size),
    LABEL_IDENTITY,
    leftPad(ephX, size),
    leftPad(ek.x, size),
    8 * hashSize(ek.nameAlg),
  );
}

function identityLabel(): Buffer {
  return Buffer.from(`${LABEL_IDENTITY}\0`, "latin1");
}

function cipherName(keyBits: number): string {
  return `aes-${keyBits}-cfb`;
}

function wrapIdentity(ek: TpmPublic, keyBits: number, seed: Buffer, name: Buffer, credential: Buffer): Buffer {
  const symKey = kdfa(ek.nameAlg, seed, LABEL_STORAGE, name, Buffer.alloc(0), keyBits);
  const c = createCipheriv(cipherName(keyBits), symKey, Buffer.alloc(16));
  return Buffer.concat([c.update(tpm2b(credential)), c.final()]);
}

function integrity(ek: TpmPublic, seed: Buffer, encIdentity: Buffer, name: Buffer): Buffer {
  const hmacKey = kdfa(ek.nameAlg, seed, LABEL_INTEGRITY, Buffer.alloc(0), Buffer.alloc(0), 8 * hashSize(ek.nameAlg));
  return createHmac(ek.nameAlg, hmacKey).update(encIdentity).update(name).digest();
}

// ---------------------------------------------------------------- tpm2-tools credential file

/** tpm2-tools credential file (tpm2_makecredential -o / tpm2_activatecredential -i): magic, version, blob, secret. */
export function toTpm2ToolsCredentialFile(c: MakeCredentialResult): Buffer {
  return Buffer.concat([
    u32be(CREDENTIAL_FILE_MAGIC),
    u32be(CREDENTIAL_FILE_VERSION),
    c.credentialBlob,
    c.encryptedSecret,
  ]);
}

/** Parse a tpm2-tools credential file back into its two TPM2B blobs (each still size-prefixed). */
export function parseTpm2ToolsCredentialFile(file: Buffer): MakeCredentialResult {
  const r = new TpmReader(file);
  const magic = r.u32("credentialFile.magic");
  if (magic !== CREDENTIAL_FILE_MAGIC) {
    throw new TpmFormatError("invalid", "credentialFile.magic", 0, `0x${magic.toString(16)}, expected 0xbadcc0de`);
  }
  const version = r.u32("credentialFile.version");
  if (version !== CREDENTIAL_FILE_VERSION)
    throw new TpmFormatError("unsupported", "credentialFile.version", 4, `${version}`);
  const blob = r.tpm2b("credentialFile.credentialBlob");
  const secret = r.tpm2b("credentialFile.encryptedSecret");
  r.end("credentialFile");
  return { credentialBlob: tpm2b(blob), encryptedSecret: tpm2b(secret) };
}

// ---------------------------------------------------------------- software activation

export interface SoftwareActivateInput extends MakeCredentialResult {
  ekPublic: TpmPublic;
  /** The EK's private key. A real EK never leaves its TPM: this exists for test vectors and tooling only. */
  ekPrivate: KeyObject;
  objectName: Buffer;
}

/**
 * TPM2_ActivateCredential done in software with a known private key: recover the seed, check
 * outerHMAC over encIdentity || Name (so a wrong Name or key fails here, as it does in a TPM),
 * then decrypt. The server never calls this; tests use it to read any MakeCredential output.
 * Throws TpmCredentialError when the credential does not open.
 */
export function activateCredentialInSoftware(input: SoftwareActivateInput): { credential: Buffer; seed: Buffer } {
  const ek = input.ekPublic;
  const sym = checkEk(ek);
  checkName(input.objectName);
  const idObject = unwrap2b(input.credentialBlob, "credentialBlob");
  const encSecret = unwrap2b(input.encryptedSecret, "encryptedSecret");
  let seed: Buffer;
  try {
    if (ek.type === "rsa") {
      seed = privateDecrypt(
        {
          key: input.ekPrivate,
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: ek.nameAlg,
          oaepLabel: identityLabel(),
        },
        encSecret,
      );
    } else {
      const r = new TpmReader(encSecret);
      const x = r.tpm2b("encryptedSecret.x");
      const y = r.tpm2b("encryptedSecret.y");
      r.end("encryptedSecret");
      const size = curveSize(ek.curve);
      const point = createPublicKey({
        key: {
          kty: "EC",
          crv: ek.curve,
          x: leftPad(x, size).toString("base64url"),
          y: leftPad(y, size).toString("base64url"),
        },
        format: "jwk",
      });
      seed = eccSeedFromZ(ek, diffieHellman({ privateKey: input.ekPrivate, publicKey: point }), x);
    }
  } catch (err) {
    throw new TpmCredentialError("encryptedSecret", `seed not recovered (${(err as Error).message})`);
  }
  const r = new TpmReader(idObject);
  let outerHmac: Buffer;
  try {
    outerHmac = r.tpm2b("credentialBlob.integrityHMAC");
  } catch (err) {
    throw new TpmCredentialError("credentialBlob", (err as Error).message);
  }
  const encIdentity = r.bytes(r.remaining, "credentialBlob.encIdentity");
  const want = integrity(ek, seed, encIdentity, input.objectName);
  if (outerHmac.length !== want.length || !timingSafeEqual(outerHmac, want)) {
    throw new TpmCredentialError("credentialBlob.integrityHMAC", "mismatch (wrong key, wrong Name, or tampered)");
  }
  const symKey = kdfa(ek.nameAlg, seed, LABEL_STORAGE, input.objectName, Buffer.alloc(0), sym.keyBits);
  const d = createDecipheriv(cipherName(sym.keyBits), symKey, Buffer.alloc(16));
  const plain = Buffer.concat([d.update(encIdentity), d.final()]);
  const pr = new TpmReader(plain);
  try {
    const credential = pr.tpm2b("encIdentity.credential");
    pr.end("encIdentity");
    return { credential, seed };
  } catch (err) {
    throw new TpmCredentialError("credentialBlob.encIdentity", (err as Error).message);
  }
}

function unwrap2b(b: Buffer, field: string): Buffer {
  try {
    const r = new TpmReader(b);
    const inner = r.tpm2b(field);
    r.end(field);
    return inner;
  } catch (err) {
    throw new TpmCredentialError(field, (err as Error).message);
  }
}
