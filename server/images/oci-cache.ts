import { randomBytes } from "node:crypto";
import { readFileSync, renameSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { writeFileAtomic } from "../util/atomic-file.js";

/**
 * The OCI cache under `--cache-dir` (docs/images.md), content-addressed and disposable:
 *
 * ```
 * <cache>/oci/sha256_<hex>/disk/   the image's /disk tree, <hex> = the platform manifest digest
 * <cache>/oci/sha256_<hex>/image.json   what was unpacked from where (size, layers, when)
 * <cache>/refs.json                reference → digest map, so a restart serves without the registry
 * <cache>/blobs/sha256/<hex>       verified layer blobs, deleted once unpacked
 * <cache>/tmp/                     partial downloads (resumed) and unpack staging (never served)
 * ```
 *
 * An image folder appears by one rename of a finished staging folder, and disappears by a
 * rename into tmp/ before it is deleted: a half-written or half-deleted tree is never served.
 */
export interface RefRecord {
  /** The reference as canonicalised (`docker.io/library/x:1`). */
  ref: string;
  architecture: string;
  /** Digest the reference resolved to (an index's digest for a multi-arch image). */
  digest: string;
  /** Digest of the platform's image manifest: names the image folder. */
  manifestDigest: string;
  /** ISO time of the pull (or the last time the registry confirmed the digest). */
  resolvedAt: string;
}

export interface CachedImageInfo {
  manifestDigest: string;
  /** Bytes of the unpacked tree. */
  bytes: number;
  /** Bytes downloaded (sum of layer sizes). */
  downloadBytes: number;
  pulledAt: string;
  sourceRef: string;
}

interface RefsFile {
  version: 1;
  refs: RefRecord[];
}

export class OciCache {
  readonly dir: string;
  readonly #log: Logger;
  readonly #refs = new Map<string, RefRecord>();
  readonly #images = new Map<string, CachedImageInfo>();
  /** Layer downloads in flight, shared by every pull that needs the same blob (one partial file each). */
  readonly #downloads = new Map<string, Promise<string>>();
  /** Pulls using a layer blob: it is deleted when the last one is done with it. */
  readonly #blobUsers = new Map<string, number>();
  /** Why refs.json could not be read (kept aside as .corrupt), for /readyz. */
  problem: string | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(dir: string, log: Logger) {
    this.dir = dir;
    this.#log = log;
  }

  get imagesDir(): string {
    return path.join(this.dir, "oci");
  }
  get blobsDir(): string {
    return path.join(this.dir, "blobs", "sha256");
  }
  get tmpDir(): string {
    return path.join(this.dir, "tmp");
  }
  get refsFile(): string {
    return path.join(this.dir, "refs.json");
  }

  imageDir(manifestDigest: string): string {
    return path.join(this.imagesDir, manifestDigest.replace(":", "_"));
  }
  blobFile(digest: string): string {
    return path.join(this.blobsDir, digest.slice("sha256:".length));
  }
  partialFile(digest: string): string {
    return path.join(this.tmpDir, `${digest.slice("sha256:".length)}.partial`);
  }
  stagingDir(manifestDigest: string): string {
    return path.join(this.tmpDir, `unpack-${manifestDigest.slice(7, 19)}-${randomBytes(4).toString("hex")}`);
  }

  /** Create the folders, read refs.json and the image folders; drop unpack leftovers of a crash. */
  async open(): Promise<void> {
    await mkdir(this.imagesDir, { recursive: true });
    await mkdir(this.blobsDir, { recursive: true });
    await mkdir(this.tmpDir, { recursive: true });
    for (const name of await readdir(this.tmpDir)) {
      if (name.startsWith("unpack-") || name.startsWith("trash-")) {
        await rm(path.join(this.tmpDir, name), { recursive: true, force: true });
      }
    }
    for (const name of await readdir(this.imagesDir)) {
      if (!/^sha256_[a-f0-9]{64}$/.test(name)) continue;
      const info = await readImageInfo(path.join(this.imagesDir, name));
      if (info) this.#images.set(info.manifestDigest, info);
    }
    this.#loadRefs();
  }

  #loadRefs(): void {
    let text: string;
    try {
      text = readFileSync(this.refsFile, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    try {
      const doc = JSON.parse(text) as RefsFile;
      if (doc.version !== 1 || !Array.isArray(doc.refs)) throw new Error("not a version 1 refs file");
      for (const r of doc.refs) {
        if (typeof r.ref !== "string" || typeof r.manifestDigest !== "string" || typeof r.digest !== "string") {
          throw new Error("an entry lacks ref, digest or manifestDigest");
        }
        this.#refs.set(refKey(r.ref, r.architecture ?? "amd64"), r);
      }
    } catch (err) {
      // Never silently replaced: kept beside for a look, and reported. The images are re-resolved.
      const aside = `${this.refsFile}.corrupt`;
      this.problem = `${this.refsFile} could not be read (${(err as Error).message}); kept as ${aside}`;
      this.#log.error({ file: this.refsFile, aside, err: (err as Error).message }, "image refs file is corrupt");
      this.#refs.clear();
      try {
        renameSync(this.refsFile, aside);
      } catch {
        // Reported above; the next write replaces it.
      }
    }
  }

  ref(ref: string, architecture: string): RefRecord | undefined {
    return this.#refs.get(refKey(ref, architecture));
  }

  refs(): RefRecord[] {
    return [...this.#refs.values()];
  }

  image(manifestDigest: string): CachedImageInfo | undefined {
    return this.#images.get(manifestDigest);
  }

  images(): CachedImageInfo[] {
    return [...this.#images.values()];
  }

  totalBytes(): number {
    let total = 0;
    for (const image of this.#images.values()) total += image.bytes;
    return total;
  }

  async setRef(record: RefRecord): Promise<void> {
    this.#refs.set(refKey(record.ref, record.architecture), record);
    await this.#persist();
  }

  async deleteRef(ref: string, architecture: string): Promise<void> {
    if (this.#refs.delete(refKey(ref, architecture))) await this.#persist();
  }

  /** Writes are serialised, each one the whole map (atomic: old or new, never torn). */
  #persist(): Promise<void> {
    const next = this.#writing.then(async () => {
      const doc: RefsFile = { version: 1, refs: [...this.#refs.values()].sort((a, b) => a.ref.localeCompare(b.ref)) };
      await writeFileAtomic(this.refsFile, `${JSON.stringify(doc, null, 2)}\n`);
    });
    this.#writing = next.catch(() => undefined);
    return next;
  }

  /** Move a finished staging folder into place (one rename). */
  async commitImage(staging: string, info: CachedImageInfo): Promise<void> {
    const target = this.imageDir(info.manifestDigest);
    await writeFileAtomic(path.join(staging, "image.json"), `${JSON.stringify(info, null, 2)}\n`);
    try {
      await rename(staging, target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Another pull of the same digest finished first: its tree is the same bytes.
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
      await rm(staging, { recursive: true, force: true });
    }
    this.#images.set(info.manifestDigest, (await readImageInfo(target)) ?? info);
  }

  /** Whether the image's disk/ is there (a cache folder removed by hand is noticed). */
  async hasImage(manifestDigest: string): Promise<boolean> {
    const st = await stat(path.join(this.imageDir(manifestDigest), "disk")).catch(() => undefined);
    if (st?.isDirectory()) return true;
    this.#images.delete(manifestDigest);
    return false;
  }

  async removeImage(manifestDigest: string): Promise<number> {
    const info = this.#images.get(manifestDigest);
    this.#images.delete(manifestDigest);
    const trash = path.join(this.tmpDir, `trash-${randomBytes(6).toString("hex")}`);
    try {
      await rename(this.imageDir(manifestDigest), trash);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
      throw err;
    }
    await rm(trash, { recursive: true, force: true });
    return info?.bytes ?? 0;
  }

  /** Run `fetch` for a blob once, however many pulls ask for it at the same time. */
  download(digest: string, fetch: () => Promise<string>): Promise<string> {
    let pending = this.#downloads.get(digest);
    if (!pending) {
      pending = fetch().finally(() => this.#downloads.delete(digest));
      this.#downloads.set(digest, pending);
    }
    return pending;
  }

  acquireBlobs(digests: readonly string[]): void {
    for (const d of new Set(digests)) this.#blobUsers.set(d, (this.#blobUsers.get(d) ?? 0) + 1);
  }

  /** A pull is done with its layer blobs: delete those no other pull uses (the unpacked tree is what stays). */
  async releaseBlobs(digests: readonly string[], remove: boolean): Promise<void> {
    for (const d of new Set(digests)) {
      const users = (this.#blobUsers.get(d) ?? 1) - 1;
      if (users > 0) {
        this.#blobUsers.set(d, users);
        continue;
      }
      this.#blobUsers.delete(d);
      // After a failed pull the verified blobs stay, so the retry does not download them again.
      if (remove) await rm(this.blobFile(d), { force: true });
    }
  }

  /** Digests of blobs some pull uses now (kept by a collection). */
  blobsInUse(): Set<string> {
    return new Set([...this.#blobUsers.keys(), ...this.#downloads.keys()]);
  }

  /** Leftover blobs and partial downloads not in `keep` (digests). */
  async removeStrayBlobs(keep: ReadonlySet<string>): Promise<number> {
    let freed = 0;
    for (const [dir, suffix] of [
      [this.blobsDir, ""],
      [this.tmpDir, ".partial"],
    ] as const) {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        if (!name.endsWith(suffix)) continue;
        const hex = suffix === "" ? name : name.slice(0, -suffix.length);
        if (!/^[a-f0-9]{64}$/.test(hex) || keep.has(`sha256:${hex}`)) continue;
        const file = path.join(dir, name);
        freed += (await lstat(file).catch(() => undefined))?.size ?? 0;
        await rm(file, { force: true });
      }
    }
    return freed;
  }
}

export function refKey(ref: string, architecture: string): string {
  return `${ref}|${architecture}`;
}

async function readImageInfo(dir: string): Promise<CachedImageInfo | undefined> {
  try {
    const info = JSON.parse(await readFile(path.join(dir, "image.json"), "utf8")) as CachedImageInfo;
    const disk = await stat(path.join(dir, "disk")).catch(() => undefined);
    if (!disk?.isDirectory() || typeof info.manifestDigest !== "string") return undefined;
    return info;
  } catch {
    return undefined;
  }
}

/** Bytes of the files beneath `dir` (no symlink followed). */
export async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const current = stack.pop()!;
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) stack.push(full);
      else if (entry.isFile()) total += (await lstat(full)).size;
    }
  }
  return total;
}
