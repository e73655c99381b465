import { realpathSync, statSync } from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import type { Machine } from "../inventory/types.js";
import { type MetadataResult, readMetadataFile } from "./image-metadata.js";
import type { ImageLookup, ImageStore } from "./image-store.js";

export interface DirImageStoreOptions {
  /** Folder a relative `dir:PATH` is resolved against (the Machine file's folder); undefined → relative refs are an error. */
  baseDirOf: (machine: Machine) => string | undefined;
  log: Logger;
  /** How long a lookup is reused before the folder and metadata.yaml are stat'ed again. Default 2000 ms. */
  revalidateMs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
  /**
   * Folders `dir:` images must lie in (`--image-root`, docs/security.md). An image folder outside
   * every root is an error. Undefined: no confinement (unit tests of other parts only).
   */
  imageRoots?: readonly string[];
}

export const DIR_REF_PREFIX = "dir:";
const RETRY_AFTER_SECONDS = 5;
const REGISTRY_NOT_AVAILABLE = "registry images are not yet available in this version";

/** Lookups kept at most; beyond that the cache starts over (distinct refs are few in practice). */
const MAX_CACHED_LOOKUPS = 4096;

interface CachedLookup {
  lookup: ImageLookup;
  validUntil: number;
}

interface CachedMetadata {
  mtimeMs: number;
  size: number;
  result: MetadataResult;
}

/**
 * Local image folders (`dir:PATH`, PATH holding `disk/`). Cheap enough to call per packet:
 * a lookup is reused for `revalidateMs` per (ref, base folder); after that the folder and
 * `metadata.yaml` are stat'ed again, and the file is parsed only when its mtime or size changed.
 * OCI references answer "not ready" until the registry puller exists.
 */
export class DirImageStore implements ImageStore {
  readonly #baseDirOf: (machine: Machine) => string | undefined;
  readonly #log: Logger;
  readonly #metadata = new Map<string, CachedMetadata>();
  readonly #lookups = new Map<string, CachedLookup>();
  readonly #revalidateMs: number;
  readonly #now: () => number;
  /** Each root as configured (normalised) and its real path, so a root reached through a symlink matches too. */
  readonly #roots: readonly { given: string; real: string }[] | undefined;

  constructor(options: DirImageStoreOptions) {
    this.#roots = options.imageRoots?.map((root) => {
      const given = path.resolve(root);
      let real = given;
      try {
        real = realpathSync(given);
      } catch {
        // A root that does not exist yet confines as written.
      }
      return { given, real };
    });
    this.#baseDirOf = options.baseDirOf;
    this.#log = options.log;
    this.#revalidateMs = options.revalidateMs ?? 2000;
    this.#now = options.now ?? Date.now;
  }

  lookupForMachine(machine: Machine): ImageLookup {
    const ref = machine.spec.pxe?.image ?? "";
    if (ref === "") return { state: "error", ref, reason: "machine has no spec.pxe.image" };
    if (!ref.startsWith(DIR_REF_PREFIX)) {
      return { state: "not-ready", ref, reason: REGISTRY_NOT_AVAILABLE, retryAfterSeconds: RETRY_AFTER_SECONDS };
    }
    const refPath = ref.slice(DIR_REF_PREFIX.length);
    // Only a relative path depends on the Machine's folder.
    const key = path.isAbsolute(refPath) ? ref : `${ref}\0${this.#baseDirOf(machine) ?? ""}`;
    const now = this.#now();
    const cached = this.#lookups.get(key);
    if (cached && now < cached.validUntil) return cached.lookup;
    const lookup = Object.freeze(this.#lookupDir(ref, refPath, machine));
    if (!cached && this.#lookups.size >= MAX_CACHED_LOOKUPS) this.#lookups.clear();
    this.#lookups.set(key, { lookup, validUntil: now + this.#revalidateMs });
    return lookup;
  }

  #lookupDir(ref: string, refPath: string, machine: Machine): ImageLookup {
    const imageDir = this.#imageDir(refPath, machine);
    if (typeof imageDir !== "string") return { state: "error", ref, reason: imageDir.reason };
    const root = this.#rootOf(imageDir);
    if (root === null) {
      return { state: "error", ref, reason: `image folder ${imageDir} is not under an --image-root` };
    }
    const diskDir = path.join(imageDir, "disk");
    const diskStat = statSync(diskDir, { throwIfNoEntry: false });
    if (diskStat === undefined) {
      return {
        state: "not-ready",
        ref,
        reason: `image folder ${diskDir} does not exist`,
        retryAfterSeconds: RETRY_AFTER_SECONDS,
      };
    }
    if (!diskStat.isDirectory()) return { state: "error", ref, reason: `${diskDir} is not a directory` };
    const metadata = this.#readMetadata(path.join(diskDir, "metadata.yaml"));
    if (!metadata.ok) return { state: "error", ref, reason: metadata.reason };
    return { state: "ready", ref, diskDir, metadata: metadata.metadata, ...(root ? { root } : {}) };
  }

  /**
   * The root holding `imageDir` by text (no symlink followed here: the resolver opens every
   * component beneath the root, so a symlinked image folder that leaves it is refused there).
   * undefined = unconfined store; null = outside every root.
   */
  #rootOf(imageDir: string): string | undefined | null {
    if (this.#roots === undefined) return undefined;
    for (const { given, real } of this.#roots) {
      for (const root of [given, real]) {
        if (imageDir === root || imageDir.startsWith(root.endsWith(path.sep) ? root : root + path.sep)) return root;
      }
    }
    return null;
  }

  #imageDir(refPath: string, machine: Machine): string | { reason: string } {
    if (refPath === "") return { reason: "empty dir: image reference" };
    if (path.isAbsolute(refPath)) return path.normalize(refPath);
    const base = this.#baseDirOf(machine);
    if (base === undefined) return { reason: `relative image path ${refPath} has no base folder` };
    return path.resolve(base, refPath);
  }

  #readMetadata(file: string): MetadataResult {
    const stat = statSync(file, { throwIfNoEntry: false });
    if (stat === undefined) {
      this.#metadata.delete(file);
      return { ok: true, metadata: {} };
    }
    const cached = this.#metadata.get(file);
    if (cached && cached.mtimeMs === stat.mtimeMs && cached.size === stat.size) return cached.result;
    const result = readMetadataFile(file);
    // Logged once per change of the file, not per lookup (lookups happen per packet).
    if (!result.ok) this.#log.warn({ file, reason: result.reason }, "image metadata.yaml is invalid");
    this.#metadata.set(file, { mtimeMs: stat.mtimeMs, size: stat.size, result });
    return result;
  }
}
