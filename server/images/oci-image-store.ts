import path from "node:path";
import type { Logger } from "pino";
import type { Machine } from "../inventory/types.js";
import { type MetadataResult, readMetadataFile } from "./image-metadata.js";
import type { ImageReconciler } from "./image-reconciler.js";
import type { ImageLookup, ImageStore } from "./image-store.js";
import type { OciCache } from "./oci-cache.js";

const RETRY_AFTER_SECONDS = 5;
const MAX_METADATA = 1024;

/**
 * The image store of serve-pxe: `dir:` references go to the folder store, OCI references are
 * served from the cache the reconciler fills (never pulled here: a lookup happens per packet
 * and only reads memory). Until an image is in the cache the answer is "not ready" (503 with
 * Retry-After, TFTP "not ready", DHCP without boot options), with the pull's progress as reason.
 */
export class OciImageStore implements ImageStore {
  readonly #dir: ImageStore;
  readonly #reconciler: ImageReconciler;
  readonly #cache: OciCache;
  readonly #log: Logger;
  /** metadata.yaml per manifest digest: the tree never changes under a digest. */
  readonly #metadata = new Map<string, MetadataResult>();

  constructor(options: { dir: ImageStore; reconciler: ImageReconciler; cache: OciCache; log: Logger }) {
    this.#dir = options.dir;
    this.#reconciler = options.reconciler;
    this.#cache = options.cache;
    this.#log = options.log;
  }

  lookupForMachine(machine: Machine): ImageLookup {
    const ref = machine.spec.pxe?.image ?? "";
    if (ref === "" || ref.startsWith("dir:")) return this.#dir.lookupForMachine(machine);
    const served = this.#reconciler.served(machine);
    if (served.error !== undefined) return { state: "error", ref, reason: served.error };
    if (served.record) {
      const imageDir = this.#cache.imageDir(served.record.manifestDigest);
      const diskDir = path.join(imageDir, "disk");
      const metadata = this.#readMetadata(served.record.manifestDigest, diskDir);
      if (!metadata.ok) return { state: "error", ref, reason: metadata.reason };
      return { state: "ready", ref, diskDir, metadata: metadata.metadata, root: imageDir };
    }
    const status = served.entry;
    let reason = "image not pulled yet";
    if (status?.state === "pulling") {
      reason = status.totalBytes
        ? `image is being pulled (${status.bytes ?? 0} of ${status.totalBytes} bytes)`
        : "image is being pulled";
    } else if (status?.state === "failed") {
      reason = `image pull failed (retrying): ${status.reason ?? "unknown error"}`;
    }
    return { state: "not-ready", ref, reason, retryAfterSeconds: RETRY_AFTER_SECONDS };
  }

  #readMetadata(digest: string, diskDir: string): MetadataResult {
    const cached = this.#metadata.get(digest);
    if (cached) return cached;
    const result = readMetadataFile(path.join(diskDir, "metadata.yaml"));
    const missing = !result.ok && /ENOENT/.test(result.reason);
    const final: MetadataResult = missing ? { ok: true, metadata: {} } : result;
    if (!final.ok) this.#log.warn({ digest, reason: final.reason }, "image metadata.yaml is invalid");
    if (this.#metadata.size >= MAX_METADATA) this.#metadata.clear();
    this.#metadata.set(digest, final);
    return final;
  }
}
