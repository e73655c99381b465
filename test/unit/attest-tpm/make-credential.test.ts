import assert from "node:assert/strict";
import { constants, createPrivateKey, createPublicKey, generateKeyPairSync, privateDecrypt } from "node:crypto";
import { describe, it } from "node:test";
import {
  activateCredentialInSoftware,
  credentialBlobFromSeed,
  decodeTpm2bPublic,
  ekPublicFromKey,
  kdfa,
  kdfe,
  makeCredential,
  objectName,
  parseTpm2ToolsCredentialFile,
  TpmCredentialError,
  type TpmPublic,
  toTpm2ToolsCredentialFile,
} from "../../../server/attest/tpm/index.js";
import * as v from "./vectors.js";

const hex = (s: string) => Buffer.from(s, "hex");
const srkName = hex(v.SRK_NAME);
const secret = hex(v.SECRET);

function credentialError(fn: () => unknown, field: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof TpmCredentialError && field.test(err.field));
}

describe("KDFa / KDFe", () => {
  it("KDFa matches the lab's independent Python implementation (tpm-cred.py kdfa)", () => {
    const key = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    const name = Buffer.concat([Buffer.from([0, 0x0b]), Buffer.alloc(32)]);
    assert.equal(
      kdfa("sha256", key, "STORAGE", name, Buffer.alloc(0), 128).toString("hex"),
      "4535165c7f0dc2bd1abef241c5893af0",
    );
    assert.equal(
      kdfa("sha256", key, "INTEGRITY", Buffer.alloc(0), Buffer.alloc(0), 256).toString("hex"),
      "bacf689f634ece301e1f1b15b072d9c87db6a69585db42b1a0cb8f73ebe2692e",
    );
    // Several HMAC rounds, a bit count that is not a multiple of the digest.
    assert.equal(
      kdfa("sha384", key, "STORAGE", Buffer.from("abc"), Buffer.from("def"), 520).toString("hex"),
      "705f598944089cffe95ba4b0bd5b3b68e3cf94fe3c1b0c941b398d647531fb091d842be665ded8464506548d1bd3b6327706f6e7d801a980c60d8bf39310e67e1b",
    );
  });

  it("masks the unused top bits when the bit count is not a multiple of 8, and bounds its input", () => {
    const k = kdfa("sha256", Buffer.alloc(32, 1), "X", Buffer.alloc(0), Buffer.alloc(0), 12);
    assert.equal(k.length, 2);
    assert.equal(k[0] & 0xf0, 0);
    assert.equal(kdfe("sha256", Buffer.alloc(32, 1), "X", Buffer.alloc(0), Buffer.alloc(0), 12)[0] & 0xf0, 0);
    assert.throws(() => kdfa("sha256", Buffer.alloc(1), "X", Buffer.alloc(0), Buffer.alloc(0), 0), RangeError);
    assert.throws(() => kdfe("sha256", Buffer.alloc(1), "X", Buffer.alloc(0), Buffer.alloc(0), 1e9), RangeError);
  });
});

describe("MakeCredential: byte vectors from tpm2_makecredential -T none", () => {
  it("RSA-2048 EK: the tool's credential opens with our code, and with its seed we produce its exact credentialBlob", () => {
    const priv = createPrivateKey(v.SOFT_RSA_KEY);
    const ek = ekPublicFromKey(createPublicKey(priv));
    const tool = parseTpm2ToolsCredentialFile(hex(v.TOOL_CRED_SOFT_RSA));
    const opened = activateCredentialInSoftware({ ...tool, ekPublic: ek, ekPrivate: priv, objectName: srkName });
    assert.ok(opened.credential.equals(secret));
    // Inject the tool's seed: the deterministic part is byte-identical.
    const ours = makeCredential({ ekPublic: ek, objectName: srkName, credential: secret }, { seed: opened.seed });
    assert.equal(ours.credentialBlob.toString("hex"), tool.credentialBlob.toString("hex"));
    assert.equal(
      credentialBlobFromSeed({ ekPublic: ek, objectName: srkName, credential: secret }, opened.seed).toString("hex"),
      tool.credentialBlob.toString("hex"),
    );
    // OAEP is randomized: our encryptedSecret differs in bytes but carries the same seed, with the IDENTITY label.
    assert.equal(ours.encryptedSecret.length, tool.encryptedSecret.length);
    const seed = privateDecrypt(
      {
        key: priv,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: "sha256",
        oaepLabel: Buffer.from("IDENTITY\0"),
      },
      ours.encryptedSecret.subarray(2),
    );
    assert.ok(seed.equals(opened.seed));
    // Same file layout as the tool: 8-byte header, 70-byte blob, 258-byte secret (spec §7.3, README-vm).
    const file = toTpm2ToolsCredentialFile(ours);
    assert.equal(file.length, 336);
    assert.equal(file.subarray(0, 8).toString("hex"), "badcc0de00000001");
    assert.equal(file.subarray(0, 8 + 70).toString("hex"), hex(v.TOOL_CRED_SOFT_RSA).subarray(0, 78).toString("hex"));
    assert.ok(ours.credentialBlob.toString("base64").startsWith("AEQAI"));
    assert.ok(ours.encryptedSecret.toString("base64").startsWith("AQ")); // 01 00: "AQA".."AQD"
  });

  it("ECC P-256 EK: the tool's ECDH/KDFe seed is the one we derive, and its credentialBlob is byte-identical", () => {
    const priv = createPrivateKey(v.SOFT_EC_KEY);
    const ek = ekPublicFromKey(createPublicKey(priv));
    const tool = parseTpm2ToolsCredentialFile(hex(v.TOOL_CRED_SOFT_ECC));
    const opened = activateCredentialInSoftware({ ...tool, ekPublic: ek, ekPrivate: priv, objectName: srkName });
    assert.ok(opened.credential.equals(secret));
    const blob = credentialBlobFromSeed({ ekPublic: ek, objectName: srkName, credential: secret }, opened.seed);
    assert.equal(blob.toString("hex"), tool.credentialBlob.toString("hex"));
    // encryptedSecret = TPM2B(TPMS_ECC_POINT): u16 68 | u16 32 | x | u16 32 | y.
    assert.equal(tool.encryptedSecret.length, 70);
    const ours = makeCredential({ ekPublic: ek, objectName: srkName, credential: secret });
    assert.equal(ours.encryptedSecret.length, 70);
    assert.equal(ours.encryptedSecret.subarray(0, 4).toString("hex"), "00440020");
    assert.equal(ours.credentialBlob.length, tool.credentialBlob.length);
  });

  it("ECC with an injected ephemeral key is deterministic and carries that ephemeral point", () => {
    const { privateKey: ekPriv, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const ek = ekPublicFromKey(publicKey);
    const ephemeral = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const a = makeCredential({ ekPublic: ek, objectName: srkName, credential: secret }, { ephemeral });
    const b = makeCredential({ ekPublic: ek, objectName: srkName, credential: secret }, { ephemeral });
    assert.ok(a.credentialBlob.equals(b.credentialBlob) && a.encryptedSecret.equals(b.encryptedSecret));
    const jwk = ephemeral.export({ format: "jwk" });
    assert.equal(a.encryptedSecret.subarray(4, 36).toString("base64url"), jwk.x);
    assert.ok(
      activateCredentialInSoftware({ ...a, ekPublic: ek, ekPrivate: ekPriv, objectName: srkName }).credential.equals(
        secret,
      ),
    );
  });
});

describe("MakeCredential: every supported EK shape opens only with the right key and Name", () => {
  const shapes: Array<{
    label: string;
    key: "rsa" | "ec";
    size: number | string;
    nameAlg: "sha256" | "sha384" | "sha512";
    symBits: 128 | 256;
  }> = [
    { label: "RSA-2048 / SHA-256 / AES-128", key: "rsa", size: 2048, nameAlg: "sha256", symBits: 128 },
    { label: "RSA-3072 / SHA-384 / AES-256", key: "rsa", size: 3072, nameAlg: "sha384", symBits: 256 },
    { label: "P-256 / SHA-256 / AES-128", key: "ec", size: "P-256", nameAlg: "sha256", symBits: 128 },
    { label: "P-384 / SHA-384 / AES-256", key: "ec", size: "P-384", nameAlg: "sha384", symBits: 256 },
    {
      label: "P-521 / SHA-512 / AES-256 (software only: no lab TPM makes one)",
      key: "ec",
      size: "P-521",
      nameAlg: "sha512",
      symBits: 256,
    },
  ];
  for (const s of shapes) {
    it(s.label, () => {
      const pair =
        s.key === "rsa"
          ? generateKeyPairSync("rsa", { modulusLength: s.size as number })
          : generateKeyPairSync("ec", { namedCurve: s.size as string });
      const ek: TpmPublic = ekPublicFromKey(pair.publicKey, { nameAlg: s.nameAlg, symBits: s.symBits });
      const digest = { sha256: 32, sha384: 48, sha512: 64 }[s.nameAlg];
      const credential = Buffer.alloc(digest, 0xa5);
      const name = s.nameAlg === "sha384" ? hex(v.ECC_SRK384_NAME) : srkName;
      const c = makeCredential({ ekPublic: ek, objectName: name, credential });
      assert.equal(c.credentialBlob.length, 2 + 2 + digest + 2 + credential.length);
      const got = activateCredentialInSoftware({ ...c, ekPublic: ek, ekPrivate: pair.privateKey, objectName: name });
      assert.ok(got.credential.equals(credential));
      assert.equal(got.seed.length, digest);
      // Bound to the Name: another object's Name fails the integrity check, as in a TPM.
      const otherName = Buffer.from(name);
      otherName[otherName.length - 1] ^= 1;
      credentialError(
        () => activateCredentialInSoftware({ ...c, ekPublic: ek, ekPrivate: pair.privateKey, objectName: otherName }),
        /integrityHMAC/,
      );
      // A software key that is not the EK cannot open it.
      const stranger =
        s.key === "rsa"
          ? generateKeyPairSync("rsa", { modulusLength: s.size as number }).privateKey
          : generateKeyPairSync("ec", { namedCurve: s.size as string }).privateKey;
      credentialError(
        () => activateCredentialInSoftware({ ...c, ekPublic: ek, ekPrivate: stranger, objectName: name }),
        /encryptedSecret|integrityHMAC/,
      );
      // Tampering with encIdentity is detected.
      const tampered = Buffer.from(c.credentialBlob);
      tampered[tampered.length - 1] ^= 0x80;
      credentialError(
        () =>
          activateCredentialInSoftware({
            ...c,
            credentialBlob: tampered,
            ekPublic: ek,
            ekPrivate: pair.privateKey,
            objectName: name,
          }),
        /integrityHMAC/,
      );
      // Fresh randomness each call.
      const again = makeCredential({ ekPublic: ek, objectName: name, credential });
      assert.ok(!again.encryptedSecret.equals(c.encryptedSecret));
    });
  }
});

describe("MakeCredential: refused inputs", () => {
  const ek = decodeTpm2bPublic(hex(v.RSA_EK_PUB));
  const ecc = decodeTpm2bPublic(hex(v.ECC_EK_PUB));
  const input = { ekPublic: ek, objectName: srkName, credential: secret };

  it("a credential longer than the EK nameAlg digest, or empty", () => {
    credentialError(() => makeCredential({ ...input, credential: Buffer.alloc(33) }), /^credential$/);
    credentialError(() => makeCredential({ ...input, credential: Buffer.alloc(0) }), /^credential$/);
  });

  it("a malformed Name", () => {
    credentialError(() => makeCredential({ ...input, objectName: srkName.subarray(0, 20) }), /^objectName$/);
    credentialError(() => makeCredential({ ...input, objectName: Buffer.from([0x40, 0, 0, 1]) }), /^objectName$/);
  });

  it("an EK that is not a restricted decryption key (an AK or SRK-less signing key)", () => {
    const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const signing = ekPublicFromKey(publicKey);
    const ak = { ...signing, objectAttributes: 0x00050072, symmetric: null } as TpmPublic;
    credentialError(() => makeCredential({ ...input, ekPublic: ak }), /^ekPublic$/);
  });

  it("injected randomness of the wrong kind or size", () => {
    credentialError(() => makeCredential(input, { seed: Buffer.alloc(16) }), /^seed$/);
    credentialError(() => makeCredential({ ...input, ekPublic: ecc }, { seed: Buffer.alloc(32) }), /^seed$/);
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey;
    credentialError(() => makeCredential({ ...input, ekPublic: ecc }, { ephemeral: p384 }), /^ephemeral$/);
    credentialError(() => makeCredential(input, { ephemeral: p384 }), /^ephemeral$/);
  });

  it("a Name of the right shape but with a SHA-384 EK accepts 48-byte credentials (Part 3: limit = EK digest)", () => {
    const ek384 = decodeTpm2bPublic(hex(v.ECC384_EK_PUB));
    const c = makeCredential({ ekPublic: ek384, objectName: objectName(ek384), credential: Buffer.alloc(48, 1) });
    assert.equal(c.credentialBlob.length, 2 + 2 + 48 + 2 + 48);
    credentialError(
      () => makeCredential({ ekPublic: ek384, objectName: srkName, credential: Buffer.alloc(49) }),
      /^credential$/,
    );
  });
});
