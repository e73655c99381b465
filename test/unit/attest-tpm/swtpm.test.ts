import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { after, before, it } from "node:test";
import {
  activateCredentialInSoftware,
  credentialBlobFromSeed,
  decodeTpm2bPublic,
  ekPublicFromKey,
  makeCredential,
  objectName,
  parseTpm2ToolsCredentialFile,
  TpmCredentialError,
  type TpmPublic,
  toTpm2ToolsCredentialFile,
  tpmPublicToSpkiPem,
} from "../../../server/attest/tpm/index.js";
import { runTool, Swtpm, swtpmSuite } from "./swtpm-peer.js";

/**
 * Real-peer proof of MakeCredential: a software TPM (swtpm) recovers exactly the credential our
 * TypeScript made, bound to the Name of its SRK / AK, for RSA and ECC EKs, as the upstream agent's
 * ActivateCredential would (spec §7.7); a credential made for a key that is not in that TPM does
 * not activate, and tpm2_makecredential's own output matches ours byte for byte given its seed.
 */

/** Restricted decryption primary in the endorsement hierarchy with password auth (no EK policy to satisfy). */
const EK_LIKE = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|decrypt";
const SRK_ATTRS = "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt";

swtpmSuite("MakeCredential activated by a real TPM (swtpm + tpm2-tools)", () => {
  let tpm: Swtpm;
  const pub: Record<string, TpmPublic> = {};

  /** A primary key in `hierarchy` (`e` endorsement, `o` owner), its public area and Name read back. */
  async function primary(name: string, hierarchy: "e" | "o", hash: string, alg: string, attrs: string) {
    const ctx = tpm.file(`${name}.ctx`);
    await tpm.tool(["tpm2_createprimary", "-C", hierarchy, "-g", hash, "-G", alg, "-a", attrs, "-c", ctx]);
    await tpm.tool(["tpm2_readpublic", "-c", ctx, "-o", tpm.file(`${name}.pub`), "-n", tpm.file(`${name}.name`)]);
  }

  /** A TCG default EK (template L-1 rsa, L-2 ecc), as the agent creates it; its Name (and more) read back. */
  async function createEk(name: string, alg: "rsa" | "ecc", readBack: readonly string[] = []) {
    const ctx = tpm.file(`${name}.ctx`);
    await tpm.tool(["tpm2_createek", "-c", ctx, "-G", alg, "-u", tpm.file(`${name}.pub`), "-f", "tss"]);
    await tpm.tool(["tpm2_readpublic", "-c", ctx, "-n", tpm.file(`${name}.name`), ...readBack]);
  }

  before(async () => {
    tpm = await Swtpm.start();
    const f = (n: string) => tpm.file(n);
    await createEk("ek-rsa", "rsa", ["-o", f("ek-rsa.pem"), "-f", "pem"]);
    await createEk("ek-ecc", "ecc");
    // Larger EK-like keys: P-384 and RSA-3072 with SHA-384 Names and AES-256.
    await primary("ek-p384", "e", "sha384", "ecc384:aes256cfb", EK_LIKE);
    await primary("ek-r3072", "e", "sha384", "rsa3072:aes256cfb", EK_LIKE);
    // The SRK of spec §7.7, and an AK under the RSA EK (tpm.sh's other target).
    await primary("srk", "o", "sha256", "rsa2048:null:aes128cfb", SRK_ATTRS);
    await primary("srk384", "o", "sha384", "ecc256:aes128cfb", SRK_ATTRS);
    await tpm.tool([
      "tpm2_createak",
      "-C",
      f("ek-rsa.ctx"),
      "-c",
      f("ak.ctx"),
      "-G",
      "rsa",
      "-g",
      "sha256",
      "-s",
      "rsassa",
      "-u",
      f("ak.pub"),
      "-f",
      "tss",
      "-n",
      f("ak.name"),
      "-r",
      f("ak.priv"),
    ]);
    await tpm.tryTool(["tpm2_flushcontext", "-s"]);
    for (const k of ["ek-rsa", "ek-ecc", "ek-p384", "ek-r3072", "srk", "srk384", "ak"]) {
      pub[k] = decodeTpm2bPublic(await tpm.read(`${k}.pub`));
    }
  });

  /** Writes our credential in tpm2-tools' file format and has the TPM activate it (undefined: refused). */
  async function activateOurs(
    made: ReturnType<typeof makeCredential>,
    fileName: string,
    ekName: string,
    target: string,
    policy: boolean,
  ) {
    const file = tpm.file(fileName);
    await writeFile(file, toTpm2ToolsCredentialFile(made));
    return tpm.activate(`${ekName}.ctx`, `${target}.ctx`, file, policy);
  }

  /** tpm2_makecredential -T none (no TPM: software) of `secretFile` for the Name `nameHex`; its file parsed. */
  async function toolCredential(key: readonly string[], secretFile: string, nameHex: string, outName: string) {
    const out = tpm.file(outName);
    const r = await runTool(["tpm2_makecredential", "-T", "none", ...key, "-s", secretFile, "-n", nameHex, "-o", out]);
    assert.equal(r.code, 0, r.stderr);
    return { file: out, credential: parseTpm2ToolsCredentialFile(await tpm.read(outName)) };
  }

  after(async () => {
    await tpm?.stop();
  });

  it("decodes every object the TPM made and computes the Names tpm2_readpublic -n reports, and the EK PEM", async () => {
    for (const k of Object.keys(pub)) {
      assert.equal(objectName(pub[k]).toString("hex"), (await tpm.read(`${k}.name`)).toString("hex"), k);
    }
    assert.equal(tpmPublicToSpkiPem(pub["ek-rsa"]), (await tpm.read("ek-rsa.pem")).toString());
    assert.equal(pub["ek-ecc"].type, "ecc");
    assert.equal(pub["ek-p384"].type === "ecc" && pub["ek-p384"].curve, "P-384");
    assert.equal(pub["ek-r3072"].type === "rsa" && pub["ek-r3072"].keyBits, 3072);
  });

  const cases: Array<[string, string, string, boolean, number]> = [
    ["RSA-2048 EK (L-1), SRK", "ek-rsa", "srk", true, 32],
    ["RSA-2048 EK (L-1), AK", "ek-rsa", "ak", true, 32],
    ["ECC P-256 EK (L-2), SRK", "ek-ecc", "srk", true, 32],
    ["ECC P-384 / SHA-384 / AES-256 EK, P-256 key with a SHA-384 Name", "ek-p384", "srk384", false, 48],
    ["RSA-3072 / SHA-384 / AES-256 EK, SRK", "ek-r3072", "srk", false, 48],
  ];
  for (const [label, ek, target, policy, size] of cases) {
    it(`tpm2_activatecredential recovers exactly our credential: ${label}`, async () => {
      const credential = randomBytes(size);
      const made = makeCredential({ ekPublic: pub[ek], objectName: objectName(pub[target]), credential });
      const got = await activateOurs(made, `cred-${ek}-${target}.bin`, ek, target, policy);
      assert.ok(got, "the TPM refused our credential");
      assert.equal(got.toString("hex"), credential.toString("hex"));
    });
  }

  it("a credential bound to another object's Name does not activate (the AK's Name, presented with the SRK)", async () => {
    const made = makeCredential({
      ekPublic: pub["ek-rsa"],
      objectName: objectName(pub.ak),
      credential: randomBytes(32),
    });
    assert.equal(await activateOurs(made, "cred-wrong-name.bin", "ek-rsa", "srk", true), undefined);
  });

  it("a software key that is not in the TPM: its credential does not activate there, and it cannot open the TPM's", async () => {
    for (const [ek, kind] of [
      ["ek-rsa", "rsa"],
      ["ek-ecc", "ec"],
    ] as const) {
      const soft =
        kind === "rsa"
          ? generateKeyPairSync("rsa", { modulusLength: 2048 })
          : generateKeyPairSync("ec", { namedCurve: "P-256" });
      const softEk = ekPublicFromKey(soft.publicKey); // same TCG template, different key
      const name = objectName(pub.srk);
      const forSoft = makeCredential({ ekPublic: softEk, objectName: name, credential: randomBytes(32) });
      assert.equal(
        await activateOurs(forSoft, `cred-soft-${kind}.bin`, ek, "srk", true),
        undefined,
        `${kind}: TPM opened a foreign credential`,
      );
      const forTpm = makeCredential({ ekPublic: pub[ek], objectName: name, credential: randomBytes(32) });
      assert.throws(
        () =>
          activateCredentialInSoftware({ ...forTpm, ekPublic: pub[ek], ekPrivate: soft.privateKey, objectName: name }),
        TpmCredentialError,
      );
    }
  });

  it("tpm2_makecredential -T none and our MakeCredential, same EK and Name: both activate to the same secret", async () => {
    const secret = randomBytes(32);
    await writeFile(tpm.file("secret.bin"), secret);
    const srkName = (await tpm.read("srk.name")).toString("hex");
    for (const ek of ["ek-rsa", "ek-ecc"]) {
      const made = await toolCredential(
        ["-u", tpm.file(`${ek}.pub`)],
        tpm.file("secret.bin"),
        srkName,
        `tool-${ek}.cred`,
      );
      const tool = made.credential;
      const ours = makeCredential({ ekPublic: pub[ek], objectName: objectName(pub.srk), credential: secret });
      assert.equal(ours.credentialBlob.length, tool.credentialBlob.length, ek);
      assert.equal(ours.encryptedSecret.length, tool.encryptedSecret.length, ek);
      assert.equal(
        (await tpm.activate(`${ek}.ctx`, "srk.ctx", made.file, true))?.toString("hex"),
        secret.toString("hex"),
      );
      assert.equal(
        (await activateOurs(ours, `ours-${ek}.cred`, ek, "srk", true))?.toString("hex"),
        secret.toString("hex"),
      );
    }
  });

  it("byte vectors, live: for a key we hold, tpm2_makecredential's credentialBlob equals ours given its seed (RSA and ECC)", async () => {
    const secret = randomBytes(32);
    await writeFile(tpm.file("vec-secret.bin"), secret);
    const name = objectName(pub.srk);
    for (const [kind, gen] of [
      ["rsa", () => generateKeyPairSync("rsa", { modulusLength: 2048 })],
      ["ecc", () => generateKeyPairSync("ec", { namedCurve: "P-256" })],
    ] as const) {
      const pair = gen();
      const pemFile = tpm.file(`vec-${kind}.pem`);
      await writeFile(pemFile, pair.publicKey.export({ type: "spki", format: "pem" }));
      const { credential: tool } = await toolCredential(
        ["-G", kind, "-u", pemFile],
        tpm.file("vec-secret.bin"),
        name.toString("hex"),
        `vec-${kind}.cred`,
      );
      const ek = ekPublicFromKey(
        createPublicKey(createPrivateKey(pair.privateKey.export({ type: "pkcs8", format: "pem" }))),
      );
      const opened = activateCredentialInSoftware({
        ...tool,
        ekPublic: ek,
        ekPrivate: pair.privateKey,
        objectName: name,
      });
      assert.equal(opened.credential.toString("hex"), secret.toString("hex"), kind);
      const blob = credentialBlobFromSeed({ ekPublic: ek, objectName: name, credential: secret }, opened.seed);
      assert.equal(blob.toString("hex"), tool.credentialBlob.toString("hex"), kind);
    }
  });
});
