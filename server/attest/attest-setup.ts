import { readFile } from "node:fs/promises";
import type { ServePxeConfig } from "../config/serve-pxe-config.js";
import type { SecretReader } from "../inventory/secrets.js";
import type { AttestServiceOptions } from "./attest-service.js";
import { parseTrustBundle } from "./ek-cert.js";
import { KubeadmSecretTokenSource, type TokenSource } from "./token-source.js";
import { tpmCredentials } from "./tpm-adapter.js";

/** What the netboot app needs to serve `/attest`; the app adds the backend, event bus, log and identity. */
export type AttestSetup = Omit<AttestServiceOptions, "backend" | "events" | "log">;

/**
 * `/attest` settings from `serve-pxe` flags, with the files they name read once at start
 * (a bad CA bundle stops the start with the flag's name, rather than refusing every Machine
 * later). Tokens: the given source (cluster mode), else the standalone kubeadm Secret source
 * over `secrets`; with neither, `/attest` answers 503 (and says so in an event).
 */
export async function attestSetup(
  config: ServePxeConfig,
  deps: { secrets?: SecretReader; tokens?: TokenSource },
): Promise<AttestSetup> {
  const read = async (file: string, flag: string) => {
    try {
      return await readFile(file, "utf8");
    } catch (error) {
      throw new Error(
        `--${flag}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
  };
  let trustBundle: AttestSetup["trustBundle"];
  if (config.tpmCaBundle !== undefined) {
    try {
      trustBundle = parseTrustBundle(await read(config.tpmCaBundle, "tpm-ca-bundle"));
    } catch (error) {
      throw new Error(`--tpm-ca-bundle: ${config.tpmCaBundle}: ${(error as Error).message}`);
    }
  }
  const clusterCa = config.clusterCaFile === undefined ? undefined : await read(config.clusterCaFile, "cluster-ca");
  const tokens =
    deps.tokens ??
    (deps.secrets
      ? new KubeadmSecretTokenSource({
          secrets: deps.secrets,
          defaultSecretName: config.bootstrapTokenSecret || undefined,
        })
      : undefined);
  return {
    tpm: tpmCredentials,
    tokens,
    clusterCa,
    trustBundle,
    verifyEkCert: config.verifyEkCert,
    requireEkCert: config.requireEkCert,
    expectWindowMs: config.attestWindowMs,
  };
}
