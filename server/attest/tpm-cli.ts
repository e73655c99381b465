import { readFile } from "node:fs/promises";
import { type CliOut, parseCli, waitMsOf } from "../util/cli-args.js";
import { parseOperatorEk } from "./repin.js";
import { submitRepin } from "./repin-requests.js";

const OPTIONS = {
  wait: { type: "string" },
  ek: { type: "string" },
} as const;

export const TPM_USAGE = `metalman tpm: TPM attestation operator actions

Usage:
  metalman tpm repin MACHINE [--ek FILE]
        after a board swap or TPM clear: forget the Machine's pinned EK (status.tpm.ekPublicKey).
        Without --ek the next attestation pins the TPM it sees (trust on first use: run this just
        before the Machine boots); with --ek FILE (PEM public key of the new TPM's EK, e.g. from
        tpm2_createek -G rsa -u ek.pem -f pem on that board) that key is pinned at once.

Flags:
  --state-dir DIR   the serve-pxe --state-dir (default $HOME/.unbounded/metalman/state)
  --wait SECONDS    how long to wait for a running serve-pxe to apply it (default 10);
                    without one it is applied at its next start
`;

export async function runTpmCli(argv: string[], env: NodeJS.ProcessEnv, out: CliOut): Promise<number> {
  const parsed = parseCli("tpm", TPM_USAGE, OPTIONS, argv, env, out);
  if (typeof parsed === "number") return parsed;
  const { values, command, args, stateDir } = parsed;
  if (command !== "repin" || args.length !== 1) {
    out.stderr(
      `metalman tpm: ${command === "repin" ? "repin needs MACHINE" : `unknown command "${command}"`}\n\n${TPM_USAGE}`,
    );
    return 2;
  }
  const waitMs = waitMsOf(values.wait);
  try {
    let ek: string | undefined;
    if (values.ek !== undefined) {
      ek = await readFile(values.ek, "utf8");
      parseOperatorEk(ek);
    }
    const result = await submitRepin(stateDir, { action: "repin-tpm", machine: args[0]!, ek }, waitMs);
    if (result === undefined) {
      out.stdout(`request queued in ${stateDir}/attest/requests; metalman serve-pxe applies it at its next start\n`);
      return 3;
    }
    (result.ok ? out.stdout : out.stderr)(`${result.message}\n`);
    return result.ok ? 0 : 1;
  } catch (error) {
    out.stderr(`metalman tpm repin: ${(error as Error).message}\n`);
    return 2;
  }
}
