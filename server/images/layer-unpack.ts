import { createReadStream, createWriteStream } from "node:fs";
import { chmod, link, lstat, mkdir, readdir, rm, symlink } from "node:fs/promises";
import path from "node:path";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { Decompress } from "fzstd";
import { extract as tarExtract } from "tar-stream";
import { OciError } from "../oci/errors.js";
import type { LayerCompression } from "../oci/manifest.js";

/**
 * Applies image layers, in order, as a root filesystem, keeping only the image's `/disk` tree
 * (the served root; spec §6.2). OCI whiteouts are honoured (`.wh.NAME` deletes NAME of a lower
 * layer, `.wh..wh..opq` empties a directory of what lower layers put there). Ownership is not
 * applied (rootless) and setuid/setgid bits are dropped. An entry whose path leaves the root
 * (`..`), or that would be written through a symlink, fails the whole pull: a netboot image has
 * no reason to carry one, and a file written outside the cache would be a hole.
 */
export interface UnpackLimits {
  /** File bytes in total over all layers (a decompression bomb stops here). */
  maxBytes: number;
  /** Entries in total over all layers. */
  maxEntries: number;
}

export interface UnpackProgress {
  bytes: number;
  entries: number;
  /** Devices, FIFOs and other entries a netboot tree does not need. */
  skipped: number;
}

const SERVED = "disk";
const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";

/** The path of a tar entry as components beneath the root; throws on one that escapes it. */
export function entryComponents(name: string, what: string): string[] {
  if (name.includes("\0")) throw new OciError(`${what}: entry name holds a NUL byte`, "BAD_MANIFEST");
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) {
    throw new OciError(`${what}: entry ${JSON.stringify(name)} leaves the image root: refused`, "BAD_MANIFEST");
  }
  return parts;
}

export class LayerUnpacker {
  readonly #root: string;
  readonly #limits: UnpackLimits;
  /** Directories known to be real (not symlinks) beneath the root, relative paths. */
  readonly #dirs = new Set<string>([""]);
  readonly progress: UnpackProgress = { bytes: 0, entries: 0, skipped: 0 };

  constructor(root: string, limits: UnpackLimits) {
    this.#root = root;
    this.#limits = limits;
  }

  /** Apply one layer blob (already verified against its digest). */
  async apply(blobFile: string, compression: LayerCompression, what: string): Promise<void> {
    await mkdir(this.#root, { recursive: true });
    const extract = tarExtract();
    const source = createReadStream(blobFile, { highWaterMark: 1024 * 1024 });
    const feeding =
      compression === "gzip"
        ? pipeline(source, createGunzip({ chunkSize: 256 * 1024 }), extract)
        : compression === "zstd"
          ? pipeline(source, zstdStream(), extract)
          : pipeline(source, extract);
    let feedError: unknown;
    feeding.catch((err: unknown) => {
      feedError = err;
    });
    const created = new Set<string>();
    try {
      for await (const entry of extract) {
        await this.#entry(entry.header, entry as unknown as Readable, created, what);
      }
      await feeding;
    } catch (err) {
      extract.destroy();
      await feeding.catch(() => undefined);
      throw toUnpackError(err, what);
    }
    if (feedError) throw toUnpackError(feedError, what);
  }

  async #entry(header: TarHeader, body: Readable, created: Set<string>, what: string): Promise<void> {
    const parts = entryComponents(header.name, what);
    if (++this.progress.entries > this.#limits.maxEntries) {
      throw new OciError(`${what}: more than ${this.#limits.maxEntries} entries`, "SIZE");
    }
    const base = parts.at(-1) ?? "";
    // Whiteouts: only ever name things beneath /disk (or /disk itself).
    if (base.startsWith(WHITEOUT)) {
      body.resume();
      const dirParts = parts.slice(0, -1);
      if (base === OPAQUE) {
        if (dirParts[0] !== SERVED) return;
        await this.#emptyOpaque(dirParts, created, what);
        return;
      }
      const target = [...dirParts, base.slice(WHITEOUT.length)];
      if (target[0] !== SERVED) return;
      await this.#safeParent(target, what, false);
      await rm(this.#abs(target), { recursive: true, force: true });
      return;
    }
    if (parts[0] !== SERVED) {
      body.resume();
      return;
    }
    const rel = parts.join("/");
    created.add(rel);
    const target = this.#abs(parts);
    switch (header.type) {
      case "directory": {
        body.resume();
        await this.#safeParent(parts, what, true);
        const existing = await lstat(target).catch(() => undefined);
        if (existing && !existing.isDirectory()) await rm(target, { recursive: true, force: true });
        if (!existing?.isDirectory()) await mkdir(target);
        await chmod(target, ((header.mode ?? 0o755) & 0o777) | 0o700);
        this.#dirs.add(rel);
        return;
      }
      case "file":
      case "contiguous-file": {
        await this.#safeParent(parts, what, true);
        await this.#replace(target, rel);
        const size = header.size ?? 0;
        this.progress.bytes += size;
        if (this.progress.bytes > this.#limits.maxBytes) {
          body.resume();
          throw new OciError(`${what}: the image unpacks to more than ${this.#limits.maxBytes} bytes`, "SIZE");
        }
        await pipeline(body, createWriteStream(target, { mode: ((header.mode ?? 0o644) & 0o777) | 0o600 }));
        return;
      }
      case "symlink": {
        body.resume();
        await this.#safeParent(parts, what, true);
        await this.#replace(target, rel);
        // Kept as written: the resolver opens every path beneath the image and refuses a link that leaves it.
        await symlink(header.linkname ?? "", target);
        return;
      }
      case "link": {
        body.resume();
        const source = entryComponents(header.linkname ?? "", what);
        if (source[0] !== SERVED) {
          throw new OciError(`${what}: hard link ${rel} points outside /disk (${header.linkname})`, "BAD_MANIFEST");
        }
        await this.#safeParent(parts, what, true);
        await this.#safeParent(source, what, false);
        const sourceStat = await lstat(this.#abs(source)).catch(() => undefined);
        if (!sourceStat?.isFile()) {
          throw new OciError(
            `${what}: hard link ${rel} points at ${header.linkname}, which is not a file`,
            "BAD_MANIFEST",
          );
        }
        await this.#replace(target, rel);
        await link(this.#abs(source), target);
        return;
      }
      default:
        // Devices, FIFOs, pax leftovers: nothing a netboot tree serves.
        body.resume();
        this.progress.skipped++;
        created.delete(rel);
        return;
    }
  }

  #abs(parts: readonly string[]): string {
    return path.join(this.#root, ...parts);
  }

  /** Remove what a lower layer left at `target` (a directory stays when a directory replaces it). */
  async #replace(target: string, rel: string): Promise<void> {
    const existing = await lstat(target).catch(() => undefined);
    if (!existing) return;
    if (existing.isDirectory()) this.#forget(rel);
    await rm(target, { recursive: true, force: true });
  }

  #forget(rel: string): void {
    for (const dir of this.#dirs) if (dir === rel || dir.startsWith(`${rel}/`)) this.#dirs.delete(dir);
  }

  /**
   * Make every directory above `parts` exist as a real directory: a symlink on the way is
   * refused (writing through it could leave the root); a file on the way is a lower layer's
   * and is replaced when `create`.
   */
  async #safeParent(parts: readonly string[], what: string, create: boolean): Promise<void> {
    for (let i = 1; i < parts.length; i++) {
      const rel = parts.slice(0, i).join("/");
      if (this.#dirs.has(rel)) continue;
      const abs = this.#abs(parts.slice(0, i));
      const st = await lstat(abs).catch(() => undefined);
      if (st?.isSymbolicLink()) {
        throw new OciError(
          `${what}: entry ${parts.join("/")} would be written through the symlink ${rel}: refused`,
          "BAD_MANIFEST",
        );
      }
      if (st?.isDirectory()) {
        this.#dirs.add(rel);
        continue;
      }
      if (!create) return;
      if (st) await rm(abs, { force: true });
      await mkdir(abs, { mode: 0o755 });
      this.#dirs.add(rel);
    }
  }

  async #emptyOpaque(dirParts: string[], created: Set<string>, what: string): Promise<void> {
    await this.#safeParent([...dirParts, "x"], what, true);
    const dir = this.#abs(dirParts);
    const rel = dirParts.join("/");
    const st = await lstat(dir).catch(() => undefined);
    if (!st?.isDirectory()) {
      if (st) await rm(dir, { force: true });
      await mkdir(dir, { recursive: true });
      return;
    }
    for (const child of await readdir(dir)) {
      const childRel = `${rel}/${child}`;
      if (created.has(childRel)) continue;
      this.#forget(childRel);
      await rm(path.join(dir, child), { recursive: true, force: true });
    }
  }
}

interface TarHeader {
  name: string;
  type?: string | null;
  mode?: number;
  size?: number;
  linkname?: string | null;
}

/** fzstd's streaming decompressor as a Transform. */
function zstdStream(): Transform {
  let decoder: Decompress;
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      try {
        decoder.push(chunk, false);
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
    flush(callback) {
      try {
        decoder.push(new Uint8Array(0), true);
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
  });
  decoder = new Decompress((data) => {
    transform.push(Buffer.from(data));
  });
  return transform;
}

function toUnpackError(err: unknown, what: string): OciError {
  if (err instanceof OciError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e.code === "ENOSPC" || e.code === "EDQUOT") {
    return new OciError(`${what}: no space left in the cache folder while unpacking (${e.code})`, "SIZE");
  }
  return new OciError(`${what}: cannot unpack layer: ${e.message}`, "BAD_MANIFEST");
}
