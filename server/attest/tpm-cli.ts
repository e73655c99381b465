import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { parseOperatorEk } from "./repin.js";
import { submitRepin } from "./repin-requests.js";

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

type Out = { stdout: (s: string) => void; stderr: (s: string) => void };

export async function runTpmCli(argv: string[], env: NodeJS.ProcessEnv, out: Out): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    out.stderr(`metalman tpm: ${(error as Error).message}\n\n${TPM_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...args] = positionals;
  if (values.help || command === undefined || command === "help") {
    out.stdout(TPM_USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (command !== "repin" || args.length !== 1) {
    out.stderr(
      `metalman tpm: ${command === "repin" ? "repin needs MACHINE" : `unknown command "${command}"`}\n\n${TPM_USAGE}`,
    );
    return 2;
  }
  const base = path.resolve(env.HOME ? env.HOME : ".", ".unbounded", "metalman");
  const stateDir = path.resolve(values["state-dir"] ?? path.join(base, "state"));
  const waitMs = Math.max(0, Number(values.wait ?? "10")) * 1000;
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

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      "state-dir": { type: "string" },
      wait: { type: "string" },
      ek: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}
