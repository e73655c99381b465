import { readFileSync } from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { ServePxeConfig } from "../config/serve-pxe-config.js";
import type { BootEventBus } from "../events/boot-events.js";
import type { MachineBackend } from "../inventory/backend.js";
import type { SecretReader } from "../inventory/secrets.js";
import { type DockerConfig, parseDockerConfig } from "../oci/docker-config.js";
import { RegistryClient, type RegistryClientOptions } from "../oci/registry-client.js";
import { parseRegistriesConfig, type RegistriesConfig } from "../oci/registry-config.js";
import { DirImageStore } from "./dir-image-store.js";
import { ImageReconciler } from "./image-reconciler.js";
import { OciCache } from "./oci-cache.js";
import { OciImageStore } from "./oci-image-store.js";

export interface ImagesSetup {
  store: OciImageStore;
  reconciler: ImageReconciler;
  close(): Promise<void>;
}

/**
 * serve-pxe's images (docs/images.md): the `dir:` store, the OCI cache under --cache-dir, the
 * registry client with --registry-config / --registry-auth-file / --registry-ca-bundle /
 * --insecure-registry, and the reconciler that pulls what the Machines name. Bad files stop
 * the start with a message naming the flag.
 */
export async function imagesSetup(
  config: ServePxeConfig,
  deps: {
    backend: MachineBackend;
    secrets: SecretReader;
    baseDirOf: (name: string) => string | undefined;
    events: BootEventBus;
    metrics: Registry;
    log: Logger;
    /** Tests: client retry and timeout tuning. */
    client?: Partial<Pick<RegistryClientOptions, "retry" | "timeouts">>;
    retryMs?: number;
  },
): Promise<ImagesSetup> {
  const log = deps.log.child({ component: "images" });
  const registries: RegistriesConfig = {
    hosts: config.registryConfigFile
      ? parseRegistriesConfig(readFlagFile(config.registryConfigFile, "--registry-config"), "--registry-config", (p) =>
          path.resolve(path.dirname(config.registryConfigFile!), p),
        )
      : new Map(),
    insecure: new Set(config.insecureRegistries),
    ...(config.registryCaBundle ? { caBundle: config.registryCaBundle } : {}),
  };
  for (const file of [config.registryCaBundle, ...[...registries.hosts.values()].map((h) => h.caBundle)]) {
    if (file) readFlagFile(file, "CA bundle");
  }
  let dockerConfig: DockerConfig | undefined;
  if (config.registryAuthFile) {
    dockerConfig = parseDockerConfig(
      readFlagFile(config.registryAuthFile, "--registry-auth-file"),
      "--registry-auth-file",
    );
  }
  const cache = new OciCache(config.cacheDir, log);
  await cache.open();
  const client = new RegistryClient({ registries, log, ...deps.client });
  const reconciler = new ImageReconciler({
    backend: deps.backend,
    secrets: deps.secrets,
    client,
    cache,
    events: deps.events,
    metrics: deps.metrics,
    log,
    ...(dockerConfig ? { dockerConfig } : {}),
    refreshMs: config.imageRefreshIntervalMs,
    maxConcurrentPulls: config.imagePullConcurrency,
    budgetBytes: config.imageCacheBudgetBytes,
    ...(deps.retryMs !== undefined ? { retryMs: deps.retryMs } : {}),
  });
  const dir = new DirImageStore({
    baseDirOf: (machine) => deps.baseDirOf(machine.metadata.name),
    log,
    // dir: images only under --image-root (docs/security.md).
    imageRoots: config.imageRoots,
  });
  const store = new OciImageStore({ dir, reconciler, cache, log });
  reconciler.start();
  return {
    store,
    reconciler,
    close: async () => {
      await reconciler.stop();
      await client.close();
    },
  };
}

function readFlagFile(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`${what}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
