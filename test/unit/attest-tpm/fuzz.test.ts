import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import {
  decodeTpm2bPublic,
  ekPublicFromKey,
  encodeTpm2bPublic,
  makeCredential,
  objectName,
  parseTpm2ToolsCredentialFile,
  samePublicKey,
  TpmCredentialError,
  TpmFormatError,
  tpmPublicToSpkiPem,
} from "../../../server/attest/tpm/index.js";
import { prng } from "../../support/prng.js";
import * as v from "./vectors.js";

function seeds(): Buffer[] {
  const out: Buffer[] = [
    v.RSA_EK_PUB,
    v.ECC_EK_PUB,
    v.SRK_PUB,
    v.ECC_SRK384_PUB,
    v.ECC384_EK_PUB,
    v.RSA3072_EK_PUB,
  ].map((h) => Buffer.from(h, "hex"));
  out.push(encodeTpm2bPublic(ekPublicFromKey(generateKeyPairSync("ec", { namedCurve: "P-521" }).publicKey)));
  return out;
}

function mutate(seed: Buffer, rnd: () => number): Buffer {
  const b = Buffer.from(seed);
  const pick = (n: number) => Math.floor(rnd() * n);
  const kind = pick(7);
  switch (kind) {
    case 0: // flip one bit
      b[pick(b.length)] ^= 1 << pick(8);
      return b;
    case 1: // overwrite a byte
      b[pick(b.length)] = pick(256);
      return b;
    case 2: // truncate
      return b.subarray(0, pick(b.length));
    case 3: // append junk
      return Buffer.concat([b, Buffer.from(Array.from({ length: 1 + pick(8) }, () => pick(256)))]);
    case 4: {
      // a small or boundary u16 somewhere (hits the TPM2B sizes, alg ids and keyBits)
      const at = pick(b.length - 1);
      const values = [0, 1, 0x20, 0x30, 0x100, 0x180, 0x800, 0xc00, 0xffff, 0x10, 0x23, 0x01, pick(0x10000)];
      b.writeUInt16BE(values[pick(values.length)], at);
      return b;
    }
    case 5: {
      // cut a window out and fix up the outer size, so the error is inside the structure
      const from = 2 + pick(b.length - 2);
      const len = 1 + pick(Math.min(16, b.length - from));
      const cut = Buffer.concat([b.subarray(0, from), b.subarray(from + len)]);
      cut.writeUInt16BE(cut.length - 2, 0);
      return cut;
    }
    default: {
      // several byte changes, outer size kept consistent
      for (let i = 0; i < 1 + pick(4); i++) b[2 + pick(b.length - 2)] = pick(256);
      return b;
    }
  }
}

describe("TPM marshalling fuzz (seeded, bounded)", () => {
  it("mutated TPM2B_PUBLIC: decode returns a canonical, usable key or throws TpmFormatError, nothing else", () => {
    const ITERATIONS = 4000;
    const rnd = prng(0x7e57_0009);
    const all = seeds();
    const name = objectName(decodeTpm2bPublic(Buffer.from(v.SRK_PUB, "hex")));
    let accepted = 0;
    let refused = 0;
    const reasons = new Map<string, number>();
    for (let i = 0; i < ITERATIONS; i++) {
      const input = mutate(all[i % all.length], rnd);
      let decoded: ReturnType<typeof decodeTpm2bPublic>;
      try {
        decoded = decodeTpm2bPublic(input);
      } catch (err) {
        assert.ok(err instanceof TpmFormatError, `iteration ${i}: ${String(err)} for ${input.toString("hex")}`);
        assert.ok(
          err.field.length > 0 && err.offset >= 0 && err.offset <= input.length,
          `iteration ${i}: ${err.message}`,
        );
        reasons.set(err.reason, (reasons.get(err.reason) ?? 0) + 1);
        refused++;
        continue;
      }
      accepted++;
      // Canonical: the accepted bytes are exactly what the fields encode to, so the Name is unambiguous.
      assert.ok(encodeTpm2bPublic(decoded).equals(input), `iteration ${i}: not canonical`);
      assert.equal(objectName(decoded).length, 2 + { sha256: 32, sha384: 48, sha512: 64, sha1: 20 }[decoded.nameAlg]);
      // Usable: a key node:crypto accepts, and one MakeCredential either uses or refuses with its own error.
      const pem = tpmPublicToSpkiPem(decoded);
      assert.ok(samePublicKey(pem, decoded), `iteration ${i}`);
      try {
        const c = makeCredential({ ekPublic: decoded, objectName: name, credential: Buffer.alloc(16, 1) });
        assert.ok(c.credentialBlob.length > 2 && c.encryptedSecret.length > 2);
      } catch (err) {
        assert.ok(err instanceof TpmCredentialError, `iteration ${i}: makeCredential threw ${String(err)}`);
      }
    }
    assert.ok(refused > ITERATIONS / 2, `most mutations must be refused (refused ${refused})`);
    assert.ok(accepted > 0, "some mutations (e.g. of the modulus) stay valid");
    for (const reason of ["truncated", "trailing-bytes", "invalid", "inconsistent", "unsupported"]) {
      assert.ok(
        (reasons.get(reason) ?? 0) > 0,
        `no mutation produced reason ${reason}: ${JSON.stringify([...reasons])}`,
      );
    }
  });

  it("mutated tpm2-tools credential files: parse or TpmFormatError", () => {
    const rnd = prng(0xc0de);
    const file = Buffer.from(v.TOOL_CRED_SOFT_RSA, "hex");
    for (let i = 0; i < 2000; i++) {
      const input = mutate(file, rnd);
      try {
        const c = parseTpm2ToolsCredentialFile(input);
        assert.equal(8 + c.credentialBlob.length + c.encryptedSecret.length, input.length);
      } catch (err) {
        assert.ok(err instanceof TpmFormatError, `iteration ${i}: ${String(err)}`);
      }
    }
  });
});
