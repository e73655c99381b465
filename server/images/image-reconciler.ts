import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import type { BootEventBus, BootResult } from "../events/boot-events.js";
import type { MachineBackend } from "../inventory/backend.js";
import type { SecretReader } from "../inventory/secrets.js";
import type { Machine } from "../inventory/types.js";
import { credentialsFor, type DockerConfig, parseDockerConfig } from "../oci/docker-config.js";
import { OciError } from "../oci/errors.js";
import { formatReference, type ImageReference, parseReference } from "../oci/reference.js";
import type { CredentialLookup, RegistryClient } from "../oci/registry-client.js";
import type { GcResult, ImageCatalog, ImageState, ImageStatus } from "./image-catalog.js";
import { type PullProgress, pullImage, resolveImage } from "./image-pull.js";
import type { UnpackLimits } from "./layer-unpack.js";
import { type OciCache, type RefRecord, refKey } from "./oci-cache.js";

export const DIR_PREFIX = "dir:";

export interface ImageReconcilerOptions {
  backend: MachineBackend;
  secrets: SecretReader;
  client: RegistryClient;
  cache: OciCache;
  events: BootEventBus;
  metrics: Registry;
  log: Logger;
  /** Credentials of `--registry-auth-file` (a docker config.json), for Machines without a pullSecretRef. */
  dockerConfig?: DockerConfig;
  /** How often a served tag is re-resolved (default 5 min, as upstream). */
  refreshMs?: number;
  /** Delay after a failed resolve or pull (default 30 s, as upstream). */
  retryMs?: number;
  /** Image pulls at once (default 2; each pull's blobs share the client's blob limit). */
  maxConcurrentPulls?: number;
  /** Unreferenced images are deleted, oldest first, while the cache is above this (0 = no budget). */
  budgetBytes?: number;
  limits?: UnpackLimits;
  /** Interval of the scheduler tick (default 1 s). */
  tickMs?: number;
  now?: () => number;
}

interface Pulling {
  digest?: string;
  bytes: number;
  totalBytes: number;
}

interface Entry {
  key: string;
  /** As the first Machine spelled it. */
  refText: string;
  canonical: string;
  parsed: ImageReference;
  architecture: string;
  machines: Set<string>;
  pullSecret?: { name: string; namespace: string };
  pulling?: Pulling;
  /** Whether a check has finished at least once (else: not-ready). */
  tried: boolean;
  reason?: string;
  nextCheckAt: number;
  lastProgressAt: number;
  controller?: AbortController;
}

const DEFAULT_LIMITS: UnpackLimits = { maxBytes: 64 * 1024 ** 3, maxEntries: 1_000_000 };
const PROGRESS_EVENT_MS = 2_000;

/**
 * Keeps the images the Machines name in the cache (spec §6.1, done better): every Machine
 * change re-reads which references are in use; each (reference, architecture) is resolved at
 * once, then every `refreshMs`, and pulled when its digest is not in the cache. A moved tag is
 * pulled while the old digest keeps serving, and switches only when the new tree is complete.
 * The reference → digest map is persisted (OciCache), so a restart serves the cache even with
 * the registry down. Pull progress goes on the event stream (`image.pull`, one event per Machine
 * using the image), into metrics, and into the log.
 */
export class ImageReconciler implements ImageCatalog {
  readonly #o: ImageReconcilerOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #refreshMs: number;
  readonly #retryMs: number;
  readonly #maxPulls: number;
  #active = 0;
  #timer: NodeJS.Timeout | undefined;
  #unwatch: (() => void) | undefined;
  #syncQueued = false;
  #stopped = false;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #targets = new Map<string, Target | null>();
  readonly #metrics: {
    pulls: Counter<"result">;
    downloaded: Counter;
    progress: Gauge<"ref" | "architecture">;
    size: Gauge<"ref" | "architecture">;
  };

  constructor(options: ImageReconcilerOptions) {
    this.#o = options;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    this.#refreshMs = options.refreshMs ?? 300_000;
    this.#retryMs = options.retryMs ?? 30_000;
    this.#maxPulls = options.maxConcurrentPulls ?? 2;
    const reg = options.metrics;
    const states: ImageState[] = ["ready", "pulling", "failed", "not-ready"];
    this.#metrics = {
      pulls: new Counter({
        name: "metalman_image_pulls_total",
        help: "Image pulls finished, by result (ok, cached = digest already unpacked, error)",
        labelNames: ["result"],
        registers: [reg],
      }),
      downloaded: new Counter({
        name: "metalman_image_download_bytes_total",
        help: "Layer bytes downloaded from registries",
        registers: [reg],
      }),
      progress: new Gauge({
        name: "metalman_image_pull_bytes",
        help: "Layer bytes on disk of the pull in flight",
        labelNames: ["ref", "architecture"],
        registers: [reg],
      }),
      size: new Gauge({
        name: "metalman_image_pull_total_bytes",
        help: "Layer bytes of the pull in flight in total",
        labelNames: ["ref", "architecture"],
        registers: [reg],
      }),
    };
    const self = this;
    new Gauge({
      name: "metalman_images",
      help: "Images used by Machines, by state",
      labelNames: ["state"],
      registers: [reg],
      collect() {
        const list = self.list();
        for (const state of states) this.set({ state }, list.filter((i) => i.state === state).length);
      },
    });
    new Gauge({
      name: "metalman_image_cache_bytes",
      help: "Bytes of the unpacked images in --cache-dir",
      registers: [reg],
      collect() {
        this.set(self.#o.cache.totalBytes());
      },
    });
  }

  start(): void {
    this.#sync();
    this.#unwatch = this.#o.backend.watch(() => this.#queueSync());
    this.#timer = setInterval(() => this.#tick(), this.#o.tickMs ?? 1000);
    this.#timer.unref();
    this.#tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unwatch?.();
    clearInterval(this.#timer);
    for (const entry of this.#entries.values()) entry.controller?.abort();
    await Promise.allSettled([...this.#inFlight]);
  }

  // ------------------------------------------------------------------ what Machines use

  #queueSync(): void {
    if (this.#syncQueued) return;
    this.#syncQueued = true;
    // Many watch events in one tick (a reload) are one sync.
    setImmediate(() => {
      this.#syncQueued = false;
      if (!this.#stopped) {
        this.#sync();
        this.#tick();
      }
    });
  }

  #sync(): void {
    const seen = new Set<string>();
    for (const entry of this.#entries.values()) {
      entry.machines.clear();
      entry.pullSecret = undefined;
    }
    for (const machine of this.#o.backend.list()) {
      const target = imageTarget(machine);
      // An unparsable reference is reported by lookups (the schema already refuses most).
      if (!target || "error" in target) continue;
      let entry = this.#entries.get(target.key);
      if (!entry) {
        entry = {
          key: target.key,
          refText: target.refText,
          canonical: target.canonical,
          parsed: target.parsed,
          architecture: target.architecture,
          machines: new Set(),
          tried: false,
          nextCheckAt: this.#now(),
          lastProgressAt: 0,
        };
        this.#entries.set(target.key, entry);
      }
      entry.machines.add(machine.metadata.name);
      if (machine.spec.pxe?.pullSecretRef) entry.pullSecret = machine.spec.pxe.pullSecretRef;
      seen.add(target.key);
    }
    for (const [key, entry] of this.#entries) {
      if (seen.has(key)) continue;
      // No Machine uses it any more: stop pulling it (its cache stays until a GC).
      entry.controller?.abort();
      this.#entries.delete(key);
    }
  }

  #tick(): void {
    if (this.#stopped) return;
    const now = this.#now();
    const due = [...this.#entries.values()]
      .filter((e) => !e.pulling && e.nextCheckAt <= now)
      .sort((a, b) => a.nextCheckAt - b.nextCheckAt);
    for (const entry of due) {
      if (this.#active >= this.#maxPulls) break;
      this.#active++;
      const running = this.#check(entry).finally(() => {
        this.#active--;
        this.#inFlight.delete(running);
        // The next one may start at once.
        if (!this.#stopped) setImmediate(() => this.#tick());
      });
      this.#inFlight.add(running);
    }
  }

  // ------------------------------------------------------------------ one check

  async #check(entry: Entry): Promise<void> {
    const { cache, client } = this.#o;
    const controller = new AbortController();
    entry.controller = controller;
    entry.pulling = { bytes: 0, totalBytes: 0 };
    const started = this.#now();
    const served = cache.ref(entry.canonical, entry.architecture);
    let pulled = false;
    try {
      const credentials = await this.#credentials(entry);
      const resolved = await resolveImage(client, entry.parsed, entry.architecture, credentials, controller.signal);
      const manifestDigest = resolved.image.digest;
      if (served && served.manifestDigest === manifestDigest && (await cache.hasImage(manifestDigest))) {
        // Unchanged: confirmed (the index digest may differ while this platform's image did not).
        if (served.digest !== resolved.top.digest) {
          await cache.setRef({ ...served, digest: resolved.top.digest, resolvedAt: new Date().toISOString() });
        } else {
          served.resolvedAt = new Date().toISOString();
        }
        this.#finish(entry, undefined, this.#refreshMs);
        return;
      }
      entry.pulling.digest = resolved.top.digest;
      const moved = served ? { from: served.digest } : {};
      this.#log.info(
        { ref: entry.refText, architecture: entry.architecture, digest: resolved.top.digest, ...moved },
        "pulling image",
      );
      this.#emit(entry, "started", undefined, { digest: resolved.top.digest, ...moved });
      const result = await pullImage({
        client,
        cache,
        ref: entry.parsed,
        refText: entry.canonical,
        architecture: entry.architecture,
        credentials,
        limits: this.#o.limits ?? DEFAULT_LIMITS,
        resolved,
        signal: controller.signal,
        onProgress: (progress) => this.#progress(entry, progress),
      });
      pulled = true;
      await cache.setRef({
        ref: entry.canonical,
        architecture: entry.architecture,
        digest: result.digest,
        manifestDigest: result.manifestDigest,
        resolvedAt: new Date().toISOString(),
      });
      if (!result.cached) this.#metrics.downloaded.inc(result.downloadBytes);
      this.#metrics.pulls.inc({ result: result.cached ? "cached" : "ok" });
      const ms = this.#now() - started;
      this.#log.info(
        {
          ref: entry.refText,
          architecture: entry.architecture,
          digest: result.digest,
          bytes: result.downloadBytes,
          ms,
          ...moved,
        },
        "image pulled",
      );
      this.#emit(entry, "ok", undefined, {
        digest: result.digest,
        bytes: result.downloadBytes,
        totalBytes: result.downloadBytes,
        unpackedBytes: result.bytes,
        ms,
        cached: result.cached,
        ...moved,
      });
      this.#finish(entry, undefined, this.#refreshMs);
      await this.#collect(false).catch((err: unknown) =>
        this.#log.warn({ err: (err as Error).message }, "image cache collection failed"),
      );
    } catch (err) {
      if (this.#stopped || controller.signal.aborted) {
        this.#finish(entry, entry.reason, this.#retryMs);
        return;
      }
      const reason = err instanceof OciError ? err.message : `${(err as Error).message}`;
      if (!pulled) this.#metrics.pulls.inc({ result: "error" });
      const servedNow = cache.ref(entry.canonical, entry.architecture);
      this.#log.warn(
        { ref: entry.refText, architecture: entry.architecture, reason, serving: servedNow?.digest },
        servedNow ? "image refresh failed; the cached digest keeps serving" : "image pull failed",
      );
      this.#emit(entry, "error", err instanceof OciError ? err.code.toLowerCase() : "pull-failed", {
        error: reason,
        ...(servedNow ? { serving: servedNow.digest } : {}),
      });
      this.#finish(entry, reason, this.#retryMs);
    } finally {
      entry.controller = undefined;
      this.#metrics.progress.remove({ ref: entry.refText, architecture: entry.architecture });
      this.#metrics.size.remove({ ref: entry.refText, architecture: entry.architecture });
    }
  }

  #finish(entry: Entry, reason: string | undefined, delayMs: number): void {
    entry.pulling = undefined;
    entry.tried = true;
    entry.reason = reason;
    entry.nextCheckAt = this.#now() + delayMs;
  }

  #progress(entry: Entry, progress: PullProgress): void {
    if (!entry.pulling) return;
    entry.pulling.bytes = progress.bytes;
    entry.pulling.totalBytes = progress.totalBytes;
    const labels = { ref: entry.refText, architecture: entry.architecture };
    this.#metrics.progress.set(labels, progress.bytes);
    this.#metrics.size.set(labels, progress.totalBytes);
    const now = this.#now();
    // Nothing to tell before the manifest gave the size.
    if (progress.totalBytes === 0 || now - entry.lastProgressAt < PROGRESS_EVENT_MS) return;
    entry.lastProgressAt = now;
    this.#emit(entry, "progress", undefined, {
      digest: entry.pulling.digest,
      bytes: progress.bytes,
      totalBytes: progress.totalBytes,
      phase: progress.phase,
    });
  }

  #emit(
    entry: Entry,
    result: BootResult,
    reason: string | undefined,
    detail: Record<string, string | number | boolean | undefined>,
  ): void {
    for (const machine of [...entry.machines].sort()) {
      this.#o.events.emit({
        step: "image.pull",
        result,
        machine,
        ...(reason ? { reason } : {}),
        detail: { ref: entry.refText, architecture: entry.architecture, ...detail },
      });
    }
  }

  /** A Machine's pull secret (a dockerconfigjson Secret) first, then --registry-auth-file. */
  async #credentials(entry: Entry): Promise<CredentialLookup> {
    let fromSecret: DockerConfig | undefined;
    const ref = entry.pullSecret;
    if (ref) {
      const value = await this.#o.secrets.secretValue({
        name: ref.name,
        namespace: ref.namespace,
        key: ".dockerconfigjson",
      });
      if (value === undefined) {
        throw new OciError(
          `pull secret ${ref.namespace}/${ref.name} (key .dockerconfigjson) not found`,
          "UNAUTHORIZED",
        );
      }
      fromSecret = parseDockerConfig(value.toString("utf8"), `pull secret ${ref.namespace}/${ref.name}`);
      value.fill(0);
    }
    const global = this.#o.dockerConfig;
    return (host) => credentialsFor(fromSecret, host) ?? credentialsFor(global, host);
  }

  // ------------------------------------------------------------------ serving

  /** The cached tree for a Machine's image, or why there is none. Cheap: memory only. */
  served(machine: Machine): { record?: RefRecord; entry?: ImageStatus; error?: string } {
    // Called per packet: the parsed reference is remembered (bounded; references are few).
    const cacheKey = `${machine.spec.pxe?.image ?? ""}|${machine.spec.pxe?.architecture ?? ""}`;
    let target = this.#targets.get(cacheKey);
    if (target === undefined) {
      target = imageTarget(machine) ?? null;
      if (this.#targets.size >= 4096) this.#targets.clear();
      this.#targets.set(cacheKey, target);
    }
    if (!target) return { error: "not an OCI reference" };
    if ("error" in target) return { error: target.error };
    const record = this.#o.cache.ref(target.canonical, target.architecture);
    const entry = this.#entries.get(target.key);
    const image = record ? this.#o.cache.image(record.manifestDigest) : undefined;
    return {
      ...(record && image ? { record } : {}),
      ...(entry ? { entry: this.#status(entry) } : {}),
    };
  }

  // ------------------------------------------------------------------ catalogue

  list(): ImageStatus[] {
    return [...this.#entries.values()]
      .map((entry) => this.#status(entry))
      .sort((a, b) => a.ref.localeCompare(b.ref) || a.architecture.localeCompare(b.architecture));
  }

  #status(entry: Entry): ImageStatus {
    const record = this.#o.cache.ref(entry.canonical, entry.architecture);
    const image = record ? this.#o.cache.image(record.manifestDigest) : undefined;
    const serving = record !== undefined && image !== undefined;
    let state: ImageState;
    if (serving) state = "ready";
    else if (entry.pulling) state = "pulling";
    else if (entry.tried && entry.reason) state = "failed";
    else state = "not-ready";
    const status: ImageStatus = {
      ref: entry.refText,
      state,
      architecture: entry.architecture,
      machines: [...entry.machines].sort(),
    };
    if (serving) {
      status.digest = record.digest;
      status.manifestDigest = record.manifestDigest;
      status.resolvedAt = record.resolvedAt;
    }
    if (entry.pulling && (!serving || (entry.pulling.digest !== undefined && entry.pulling.digest !== record.digest))) {
      status.bytes = entry.pulling.bytes;
      status.totalBytes = entry.pulling.totalBytes;
      if (serving && entry.pulling.digest && entry.pulling.digest !== record.digest)
        status.pullingDigest = entry.pulling.digest;
    } else if (serving) {
      status.bytes = image.bytes;
      status.totalBytes = image.bytes;
    }
    if (entry.reason) status.reason = entry.reason;
    return status;
  }

  pull(ref?: string): ImageStatus[] {
    const now = this.#now();
    const matches = [...this.#entries.values()].filter((e) => ref === undefined || matchesRef(e, ref));
    for (const entry of matches) if (!entry.pulling) entry.nextCheckAt = now;
    this.#tick();
    return matches.map((e) => this.#status(e));
  }

  /** Whether `ref` names an image some Machine uses. */
  knows(ref: string): boolean {
    return [...this.#entries.values()].some((e) => matchesRef(e, ref));
  }

  gc(options: { all?: boolean } = {}): Promise<GcResult> {
    return this.#collect(options.all ?? true);
  }

  /**
   * Delete images no Machine uses (and no pull needs), oldest first: all of them with `all`,
   * else only while the cache is above the budget. Their refs.json entries go with them.
   */
  async #collect(all: boolean): Promise<GcResult> {
    const { cache } = this.#o;
    const budget = this.#o.budgetBytes ?? 0;
    const keep = new Set<string>();
    for (const entry of this.#entries.values()) {
      const record = cache.ref(entry.canonical, entry.architecture);
      if (record) keep.add(record.manifestDigest);
    }
    const removed: GcResult["removed"] = [];
    let freed = 0;
    const candidates = cache
      .images()
      .filter((i) => !keep.has(i.manifestDigest))
      .sort((a, b) => a.pulledAt.localeCompare(b.pulledAt));
    for (const image of candidates) {
      if (!all && (budget <= 0 || cache.totalBytes() <= budget)) break;
      const bytes = await cache.removeImage(image.manifestDigest);
      freed += bytes;
      removed.push({ manifestDigest: image.manifestDigest, bytes, sourceRef: image.sourceRef });
    }
    for (const record of cache.refs()) {
      if (!cache.image(record.manifestDigest)) await cache.deleteRef(record.ref, record.architecture);
    }
    if (all) {
      // Blobs of pulls in flight are kept (they resume); the rest are leftovers.
      freed += await cache.removeStrayBlobs(cache.blobsInUse());
    }
    if (removed.length > 0) {
      this.#log.info({ removed: removed.map((r) => r.manifestDigest), freedBytes: freed }, "image cache collected");
    }
    return { removed, freedBytes: freed, cacheBytes: cache.totalBytes() };
  }

  /** One line for /readyz: ok unless an image some Machine uses has nothing to serve. */
  readiness(): { ok: boolean; detail: string } {
    const list = this.list();
    const count = (s: ImageState) => list.filter((i) => i.state === s).length;
    const parts = [`${count("ready")} cached`, `${count("pulling")} pulling`, `${count("failed")} failed`];
    if (count("not-ready") > 0) parts.push(`${count("not-ready")} waiting`);
    const refreshing = list.filter((i) => i.pullingDigest).length;
    if (refreshing > 0) parts.push(`${refreshing} moved tag(s) pulling beside the served digest`);
    const bad = list.filter((i) => i.state !== "ready");
    const first = bad[0];
    const problem = this.#o.cache.problem;
    return {
      ok: bad.length === 0 && problem === undefined,
      detail: `${parts.join(", ")}${first ? `; ${first.ref}: ${first.state}${first.reason ? ` (${first.reason})` : ""}` : ""}${problem ? `; ${problem}` : ""}`,
    };
  }
}

function matchesRef(entry: Entry, ref: string): boolean {
  if (entry.refText === ref || entry.canonical === ref) return true;
  try {
    return formatReference(parseReference(ref)) === entry.canonical;
  } catch {
    return false;
  }
}

type Target =
  | { key: string; refText: string; canonical: string; parsed: ImageReference; architecture: string }
  | { error: string };

/** The cache key of a Machine's OCI image, undefined for `dir:` images and Machines without one. */
function imageTarget(machine: Machine): Target | undefined {
  const refText = machine.spec.pxe?.image ?? "";
  if (refText === "" || refText.startsWith(DIR_PREFIX)) return undefined;
  let parsed: ImageReference;
  try {
    parsed = parseReference(refText);
  } catch (err) {
    return { error: (err as Error).message };
  }
  const canonical = formatReference(parsed);
  const architecture = machine.spec.pxe?.architecture ?? "amd64";
  return { key: refKey(canonical, architecture), refText, canonical, parsed, architecture };
}
