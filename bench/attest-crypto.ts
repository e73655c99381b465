/**
 * MakeCredential throughput: the appliance's TypeScript (node:crypto) against tpm2-tools' software
 * implementation (`tpm2_makecredential -T none`), for an RSA-2048 EK (TCG template L-1) and a
 * P-256 EK (L-2), same EK bytes, same SRK Name, same 32-byte credential.
 *
 * One "op" is the cryptographic work of one /attest: decode the EK and SRK TPM2B_PUBLIC, compute
 * the SRK Name, MakeCredential, write the tpm2-tools credential file layout. The tool's op is one
 * process run (it has no library mode), which includes its start-up: that is the honest cost of
 * using it from a server, and the ratio says so. Both run one op at a time on one core.
 *
 * Usage: node dist/bench/attest-crypto.js [--seconds S]   (default 2 s per measurement)
 * Prints one line per measurement and a ratio line per EK type.
 */
import { execFile, spawnSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  decodeTpm2bPublic,
  ekPublicFromKey,
  encodeTpm2bPublic,
  makeCredential,
  objectName,
  toTpm2ToolsCredentialFile,
} from "../server/attest/tpm/index.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const seconds = Number(arg("--seconds", "2"));
if (!(seconds > 0 && seconds <= 60)) throw new Error("--seconds must be in (0, 60]");

function srkPublicBytes(): Buffer {
  // An SRK-shaped key (spec §7.2): RSA-2048, SHA-256, restricted decrypt, AES-128-CFB, empty policy.
  const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return encodeTpm2bPublic(ekPublicFromKey(publicKey, { objectAttributes: 0x00030472, authPolicy: Buffer.alloc(0) }));
}

function oursPerSecond(ekBytes: Buffer, srkBytes: Buffer, credential: Buffer): { ops: number; perSec: number } {
  const deadline = performance.now() + seconds * 1000;
  const t0 = performance.now();
  let ops = 0;
  let sink = 0;
  while (performance.now() < deadline) {
    const ek = decodeTpm2bPublic(ekBytes);
    const name = objectName(decodeTpm2bPublic(srkBytes));
    sink += toTpm2ToolsCredentialFile(makeCredential({ ekPublic: ek, objectName: name, credential })).length;
    ops++;
  }
  if (sink === 0) throw new Error("no output");
  return { ops, perSec: ops / ((performance.now() - t0) / 1000) };
}

function runTool(argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(argv[0], argv.slice(1), { timeout: 10_000 }, (err) => (err ? reject(err) : resolve()));
  });
}

async function toolPerSecond(dir: string, ekFile: string, nameHex: string): Promise<{ ops: number; perSec: number }> {
  const out = path.join(dir, "tool.cred");
  const argv = [
    "tpm2_makecredential",
    "-T",
    "none",
    "-u",
    ekFile,
    "-s",
    path.join(dir, "secret.bin"),
    "-n",
    nameHex,
    "-o",
    out,
  ];
  const deadline = performance.now() + seconds * 1000;
  const t0 = performance.now();
  let ops = 0;
  while (performance.now() < deadline) {
    await runTool(argv);
    ops++;
  }
  return { ops, perSec: ops / ((performance.now() - t0) / 1000) };
}

async function main(): Promise<void> {
  const haveTool = spawnSync("sh", ["-c", "command -v tpm2_makecredential"], { stdio: "ignore" }).status === 0;
  const dir = await mkdtemp(path.join(os.tmpdir(), "metalman-bench-attest-"));
  try {
    const credential = randomBytes(32);
    await writeFile(path.join(dir, "secret.bin"), credential);
    const srkBytes = srkPublicBytes();
    const nameHex = objectName(decodeTpm2bPublic(srkBytes)).toString("hex");
    console.log(`attest-crypto: ${seconds} s per measurement, node ${process.version}, one op at a time`);
    for (const [label, key] of [
      ["RSA-2048", generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey],
      ["P-256", generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey],
    ] as const) {
      const ekBytes = encodeTpm2bPublic(ekPublicFromKey(key));
      const ekFile = path.join(dir, `ek-${label}.pub`);
      await writeFile(ekFile, ekBytes);
      const ours = oursPerSecond(ekBytes, srkBytes, credential);
      console.log(
        `  ${label.padEnd(8)} metalman (node:crypto)        ${ours.perSec.toFixed(0).padStart(7)} /s  (${ours.ops} ops)`,
      );
      if (!haveTool) {
        console.log(`  ${label.padEnd(8)} tpm2_makecredential -T none   missing (apt-get install tpm2-tools)`);
        continue;
      }
      const tool = await toolPerSecond(dir, ekFile, nameHex);
      console.log(
        `  ${label.padEnd(8)} tpm2_makecredential -T none   ${tool.perSec.toFixed(0).padStart(7)} /s  (${tool.ops} runs)`,
      );
      console.log(
        `  ${label.padEnd(8)} ratio metalman / tpm2-tools    ${(ours.perSec / tool.perSec).toFixed(1).padStart(7)} x`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
