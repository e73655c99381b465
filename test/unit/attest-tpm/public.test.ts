import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import {
  checkObjectName,
  decodeTpm2bPublic,
  decodeTpmtPublic,
  describeTpmPublic,
  ekPublicFromKey,
  encodeTpm2bPublic,
  encodeTpmtPublic,
  objectName,
  samePublicKey,
  TpmFormatError,
  type TpmPublic,
  tpmPublic,
  tpmPublicToSpkiPem,
} from "../../../server/attest/tpm/index.js";
import * as v from "./vectors.js";

const hex = (s: string) => Buffer.from(s, "hex");

function formatError(fn: () => unknown, field: RegExp, reason?: string): TpmFormatError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TpmFormatError, `expected TpmFormatError, got ${String(err)}`);
    assert.match(err.field, field);
    if (reason) assert.equal(err.reason, reason);
    return err;
  }
  assert.fail("no error");
}

/** Patch bytes of a TPM2B_PUBLIC at an offset counted from the start of the TPMT_PUBLIC. */
function patched(tpm2b: Buffer, at: number, bytes: number[]): Buffer {
  const b = Buffer.from(tpm2b);
  Buffer.from(bytes).copy(b, 2 + at);
  return b;
}

describe("TPM2B_PUBLIC decode: real swtpm objects", () => {
  it("decodes the TCG RSA EK (template L-1) field by field, as spec §7.2 lists it", () => {
    const ek = decodeTpm2bPublic(hex(v.RSA_EK_PUB));
    assert.equal(ek.type, "rsa");
    assert.equal(ek.nameAlg, "sha256");
    assert.equal(ek.objectAttributes, 0x000300b2);
    assert.equal(ek.authPolicy.toString("hex"), "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa");
    assert.deepEqual(ek.symmetric, { algorithm: "aes", keyBits: 128, mode: "cfb" });
    assert.equal(ek.scheme, null);
    if (ek.type !== "rsa") return;
    assert.equal(ek.keyBits, 2048);
    assert.equal(ek.exponent, 0);
    assert.equal(ek.modulus.length, 256);
    assert.equal(ek.marshalled.length, 314);
    assert.ok(Buffer.from(v.RSA_EK_PUB, "hex").toString("base64").startsWith("AToAAQAL"));
  });

  it("decodes the ECC EK (template L-2), the SRK, a SHA-384 P-256 key, a P-384 and an RSA-3072 EK", () => {
    const ecc = decodeTpm2bPublic(hex(v.ECC_EK_PUB));
    assert.equal(ecc.type, "ecc");
    if (ecc.type === "ecc") {
      assert.equal(ecc.curve, "P-256");
      assert.equal(ecc.kdf, null);
      assert.equal(ecc.x.length, 32);
      assert.equal(ecc.y.length, 32);
    }
    const srk = decodeTpm2bPublic(hex(v.SRK_PUB));
    assert.equal(srk.objectAttributes, 0x00030472);
    assert.equal(srk.authPolicy.length, 0);
    assert.equal(hex(v.SRK_PUB).length, 284);
    const p384 = decodeTpm2bPublic(hex(v.ECC384_EK_PUB));
    assert.equal(p384.nameAlg, "sha384");
    assert.equal(p384.type === "ecc" && p384.curve, "P-384");
    assert.deepEqual(p384.symmetric, { algorithm: "aes", keyBits: 256, mode: "cfb" });
    const r3072 = decodeTpm2bPublic(hex(v.RSA3072_EK_PUB));
    assert.equal(r3072.type === "rsa" && r3072.keyBits, 3072);
    assert.equal(r3072.nameAlg, "sha384");
  });

  it("computes the Name exactly as tpm2_readpublic -n does (SHA-256 and SHA-384 nameAlg)", () => {
    for (const [pub, name] of [
      [v.RSA_EK_PUB, v.RSA_EK_NAME],
      [v.ECC_EK_PUB, v.ECC_EK_NAME],
      [v.SRK_PUB, v.SRK_NAME],
      [v.ECC_SRK384_PUB, v.ECC_SRK384_NAME],
    ]) {
      const got = objectName(decodeTpm2bPublic(hex(pub)));
      assert.equal(got.toString("hex"), name);
    }
    assert.equal(hex(v.ECC_SRK384_NAME).length, 50);
    assert.equal(checkObjectName(hex(v.ECC_SRK384_NAME)), "sha384");
  });

  it("re-encodes every real object to the identical bytes (canonical round trip)", () => {
    for (const pub of [v.RSA_EK_PUB, v.ECC_EK_PUB, v.SRK_PUB, v.ECC_SRK384_PUB, v.ECC384_EK_PUB, v.RSA3072_EK_PUB]) {
      const p = decodeTpm2bPublic(hex(pub));
      assert.equal(encodeTpm2bPublic(p).toString("hex"), pub);
      assert.equal(encodeTpmtPublic(p).toString("hex"), pub.slice(4));
      assert.deepEqual(decodeTpmtPublic(p.marshalled), p);
    }
  });

  it("gives the EK as the same SPKI PEM tpm2_readpublic -f pem writes (status.tpm.ekPublicKey)", () => {
    const ek = decodeTpm2bPublic(hex(v.RSA_EK_PUB));
    assert.equal(tpmPublicToSpkiPem(ek), v.RSA_EK_PEM);
    assert.ok(samePublicKey(v.RSA_EK_PEM, ek));
    const ecc = decodeTpm2bPublic(hex(v.ECC_EK_PUB));
    const pem = tpmPublicToSpkiPem(ecc);
    assert.match(
      pem,
      /^-----BEGIN PUBLIC KEY-----\n([A-Za-z0-9+/=]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END PUBLIC KEY-----\n$/,
    );
    assert.ok(samePublicKey(pem, ecc));
    assert.equal(samePublicKey(v.RSA_EK_PEM, ecc), false, "an RSA pin never matches an ECC EK");
    assert.equal(samePublicKey(pem, ek), false);
    // SPKI DER (what an EK certificate's public key exports to) and PEM in a Buffer work too.
    const der = createPublicKey(v.RSA_EK_PEM).export({ type: "spki", format: "der" });
    assert.ok(samePublicKey(der, ek));
    assert.ok(samePublicKey(Buffer.from(v.RSA_EK_PEM), ek));
    assert.equal(samePublicKey(der, ecc), false);
    assert.equal(describeTpmPublic(ek), "RSA-2048 nameAlg SHA-256 AES-128-CFB");
    assert.equal(describeTpmPublic(decodeTpm2bPublic(hex(v.ECC384_EK_PUB))), "ECC P-384 nameAlg SHA-384 AES-256-CFB");
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
    assert.equal(samePublicKey(other, ek), false, "another modulus is another EK");
    assert.throws(() => samePublicKey("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", ek));
  });
});

describe("TPM2B_PUBLIC decode: truncated and inconsistent structures", () => {
  it("every truncation of every real object fails with a typed error naming a field", () => {
    for (const pub of [v.RSA_EK_PUB, v.ECC_EK_PUB, v.SRK_PUB, v.ECC384_EK_PUB]) {
      const full = hex(pub);
      for (let n = 0; n < full.length; n++) {
        const e = formatError(() => decodeTpm2bPublic(full.subarray(0, n)), /^TPM2B_PUBLIC|^TPMT_PUBLIC/);
        assert.ok(e.reason === "truncated" || e.reason === "invalid", `${n}: ${e.message}`);
      }
      // A consistent outer size but a short inner structure names the inner field.
      const inner = hex(pub).subarray(2, 40);
      const e = formatError(() => decodeTpmtPublic(inner), /^TPMT_PUBLIC\./, "truncated");
      assert.ok(e.offset <= 40);
    }
  });

  it("a size prefix that disagrees with the content, and trailing bytes, are refused", () => {
    const full = hex(v.RSA_EK_PUB);
    formatError(
      () => decodeTpm2bPublic(Buffer.concat([full, Buffer.from([0])])),
      /^TPM2B_PUBLIC\.size$/,
      "trailing-bytes",
    );
    const inner = Buffer.concat([full.subarray(2), Buffer.from([0, 0])]);
    const framed = Buffer.concat([Buffer.from([inner.length >> 8, inner.length & 0xff]), inner]);
    formatError(() => decodeTpm2bPublic(framed), /^TPMT_PUBLIC$/, "trailing-bytes");
    formatError(() => decodeTpm2bPublic(Buffer.from([0, 0])), /^TPM2B_PUBLIC\.size$/, "invalid");
  });

  it("names the field of each inconsistency", () => {
    const ek = hex(v.RSA_EK_PUB);
    // layout after the 2-byte size: type 0, nameAlg 2, attrs 4, policy 8 (2+32), sym 42, scheme 48, bits 50, exp 52, mod 56
    formatError(() => decodeTpm2bPublic(patched(ek, 0, [0x00, 0x08])), /TPMT_PUBLIC\.type/, "unsupported");
    formatError(() => decodeTpm2bPublic(patched(ek, 0, [0x12, 0x34])), /TPMT_PUBLIC\.type/, "invalid");
    formatError(() => decodeTpm2bPublic(patched(ek, 2, [0x00, 0x04])), /TPMT_PUBLIC\.nameAlg/, "unsupported");
    formatError(() => decodeTpm2bPublic(patched(ek, 2, [0x00, 0x06])), /TPMT_PUBLIC\.nameAlg/, "invalid");
    formatError(() => decodeTpm2bPublic(patched(ek, 2, [0x00, 0x0c])), /TPMT_PUBLIC\.authPolicy/, "inconsistent");
    formatError(() => decodeTpm2bPublic(patched(ek, 4, [0x00, 0x03, 0x00, 0xb3])), /objectAttributes/, "invalid");
    formatError(() => decodeTpm2bPublic(patched(ek, 4, [0x00, 0x07, 0x00, 0xb2])), /objectAttributes/, "inconsistent");
    formatError(() => decodeTpm2bPublic(patched(ek, 42, [0x00, 0x10])), /./);
    formatError(() => decodeTpm2bPublic(patched(ek, 44, [0x00, 0x40])), /symmetric\.keyBits/, "invalid");
    formatError(() => decodeTpm2bPublic(patched(ek, 46, [0x00, 0x42])), /parameters\.symmetric$/, "inconsistent");
    formatError(() => decodeTpm2bPublic(patched(ek, 48, [0x00, 0x17])), /./);
    formatError(() => decodeTpm2bPublic(patched(ek, 50, [0x0c, 0x00])), /unique\.rsa/, "inconsistent");
    formatError(() => decodeTpm2bPublic(patched(ek, 50, [0x02, 0x00])), /rsaDetail\.keyBits/, "unsupported");
    formatError(() => decodeTpm2bPublic(patched(ek, 52, [0, 0, 0, 4])), /rsaDetail\.exponent/, "invalid");
    formatError(() => decodeTpm2bPublic(patched(ek, 58, [0x00])), /unique\.rsa/, "inconsistent");
    const ecc = hex(v.ECC_EK_PUB);
    // ECC: sym 42, scheme 48, curve 50, kdf 52, x 54 (2+32), y 88
    formatError(() => decodeTpm2bPublic(patched(ecc, 50, [0x00, 0x10])), /curveID/, "unsupported");
    formatError(() => decodeTpm2bPublic(patched(ecc, 56, [0x01])), /unique\.ecc$/, "inconsistent");
    formatError(() => decodeTpm2bPublic(patched(ecc, 52, [0x00, 0x06])), /eccDetail\.kdf/, "invalid");
  });

  it("an unrestricted key with a symmetric definition, or an EK with a signing scheme, is inconsistent", () => {
    const ek = decodeTpm2bPublic(hex(v.RSA_EK_PUB));
    assert.throws(() => tpmPublic({ ...ek, objectAttributes: 0x000200b2 }), /symmetric/);
    assert.throws(() => tpmPublic({ ...ek, scheme: { alg: 0x0014, hash: "sha256" } }), /scheme NULL/);
    const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    // A signing key (an AK's attributes) must not carry the EK's AES-CFB definition.
    assert.throws(() => ekPublicFromKey(publicKey, { objectAttributes: 0x00040072 }), /symmetric/);
  });

  it("checkObjectName refuses a handle, an unknown hash and a wrong digest length", () => {
    formatError(() => checkObjectName(Buffer.from([0x40, 0, 0, 7])), /objectName\.hashAlg/);
    formatError(() => checkObjectName(hex(v.SRK_NAME).subarray(0, 33)), /objectName\.digest/, "truncated");
    formatError(
      () => checkObjectName(Buffer.concat([hex(v.SRK_NAME), Buffer.from([1])])),
      /objectName\.digest/,
      "trailing-bytes",
    );
  });
});

describe("TPMT_PUBLIC encode (for tests and software EKs)", () => {
  it("round-trips generated RSA-2048/3072 and P-256/P-384 keys, and a non-default exponent", () => {
    const keys = [
      generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey,
      generateKeyPairSync("rsa", { modulusLength: 3072, publicExponent: 3 }).publicKey,
      generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey,
      generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey,
    ];
    for (const key of keys) {
      const p: TpmPublic = ekPublicFromKey(key, { nameAlg: "sha384", symBits: 256 });
      const again = decodeTpm2bPublic(encodeTpm2bPublic(p));
      assert.deepEqual(again, p);
      assert.ok(samePublicKey(key, again));
    }
  });
});
