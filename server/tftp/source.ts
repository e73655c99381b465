import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { toNetascii } from "./netascii.js";

/**
 * The bytes of one transfer, addressed by offset. `copy` is the synchronous fast path: it
 * copies bytes already in memory into the caller's packet buffer (false = not loaded yet);
 * `fill` loads them. Copying straight into a reused packet avoids one allocation per block.
 */
export interface BlockSource {
  /** Bytes the client will receive (after any netascii conversion). */
  readonly size: number;
  /** The open file's descriptor, for a reader off the event loop (lock-step thread); files only. */
  readonly fd?: number;
  copy(offset: number, length: number, target: Buffer, targetStart: number): boolean;
  fill(offset: number, length: number): Promise<void>;
  close(): Promise<void>;
}

/** A rendered template (or a netascii-converted file): already one Buffer. */
export class BufferBlockSource implements BlockSource {
  constructor(private readonly body: Buffer) {}

  get size(): number {
    return this.body.length;
  }

  copy(offset: number, length: number, target: Buffer, targetStart: number): boolean {
    this.body.copy(target, targetStart, offset, offset + length);
    return true;
  }

  async fill(): Promise<void> {}

  async close(): Promise<void> {}
}

interface Slot {
  chunk: number;
  length: number;
  buffer: Buffer;
  loading?: Promise<void>;
}

/** Files are read in chunks of at least this many bytes (a few syscalls per MiB, not one per block). */
const MIN_CHUNK_BYTES = 128 * 1024;
const SLOTS = 3;

/**
 * A file streamed through three reusable chunk buffers, so memory per transfer is bounded
 * whatever the file size. Chunks are a multiple of the block size and hold at least one window,
 * so the blocks a session may still (re)send, [lastAcked+1, lastAcked+window], always lie in two
 * consecutive chunks; the third slot is read ahead while the current one is being sent.
 * Chunk c lives in slot c % 3: loading c+1 evicts c-2, which no window can need any more.
 */
export class FileBlockSource implements BlockSource {
  readonly #file: FileHandle;
  readonly #chunkBytes: number;
  readonly #slots: Slot[];
  #failure: Error | undefined;
  #closed = false;

  private constructor(
    file: FileHandle,
    readonly size: number,
    blockSize: number,
    windowSize: number,
  ) {
    this.#file = file;
    const blocksPerChunk = Math.max(windowSize, Math.ceil(MIN_CHUNK_BYTES / blockSize));
    this.#chunkBytes = blocksPerChunk * blockSize;
    const bufferBytes = Math.min(this.#chunkBytes, Math.max(size, 1));
    this.#slots = Array.from({ length: SLOTS }, () => ({
      chunk: -1,
      length: 0,
      buffer: Buffer.allocUnsafe(bufferBytes),
    }));
  }

  /**
   * Opens `path` for streaming; rejects when it is not a regular file. `size` is taken from the
   * open handle (the resolver's stat may be stale). The caller knows blksize/windowsize only
   * after negotiation, which needs the size: hence `open` then `configure`.
   */
  static async open(path: string | (() => Promise<FileHandle>)): Promise<{
    size: number;
    configure(blockSize: number, windowSize: number): FileBlockSource;
    close(): Promise<void>;
  }> {
    // A function is the artifact's own opener: a fresh lookup beneath the image root (docs/security.md).
    const file = typeof path === "string" ? await open(path, constants.O_RDONLY) : await path();
    try {
      const stat = await file.stat();
      if (!stat.isFile()) throw Object.assign(new Error("not a regular file"), { code: "ENOTFILE" });
      return {
        size: stat.size,
        configure: (blockSize, windowSize) => new FileBlockSource(file, stat.size, blockSize, windowSize),
        close: () => file.close(),
      };
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  get fd(): number {
    return this.#file.fd;
  }

  copy(offset: number, length: number, target: Buffer, targetStart: number): boolean {
    if (this.#failure) throw this.#failure;
    const chunk = Math.floor(offset / this.#chunkBytes);
    const slot = this.#slots[chunk % SLOTS];
    if (slot.chunk !== chunk || slot.loading) return false;
    const start = offset - chunk * this.#chunkBytes;
    if (start + length > slot.length) throw new Error("file shrank during the transfer");
    // Read ahead so the ACK path never waits on the disk: the next chunk loads while this one is sent.
    this.#prefetch(chunk + 1);
    slot.buffer.copy(target, targetStart, start, start + length);
    return true;
  }

  async fill(offset: number): Promise<void> {
    if (this.#closed) throw new Error("source closed");
    const chunk = Math.floor(offset / this.#chunkBytes);
    const slot = this.#slots[chunk % SLOTS];
    if (slot.chunk !== chunk) this.#load(chunk);
    await slot.loading;
    if (this.#failure) throw this.#failure;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Let in-flight reads finish before closing the descriptor they use.
    await Promise.allSettled(this.#slots.map((s) => s.loading));
    await this.#file.close();
  }

  #prefetch(chunk: number): void {
    if (chunk * this.#chunkBytes >= this.size) return;
    if (this.#slots[chunk % SLOTS].chunk === chunk) return;
    this.#load(chunk);
  }

  #load(chunk: number): void {
    const slot = this.#slots[chunk % SLOTS];
    if (this.#closed) return;
    const start = chunk * this.#chunkBytes;
    const want = Math.max(0, Math.min(this.#chunkBytes, this.size - start));
    slot.chunk = chunk;
    slot.length = 0;
    const previous = slot.loading ?? Promise.resolve();
    // Chain on the slot's previous read so two reads never write the same buffer at once.
    const loading = previous
      .then(async () => {
        let got = 0;
        while (got < want) {
          const { bytesRead } = await this.#file.read(slot.buffer, got, want - got, start + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        if (slot.chunk === chunk) slot.length = got;
      })
      .catch((err: unknown) => {
        this.#failure = err instanceof Error ? err : new Error(String(err));
      })
      .finally(() => {
        if (slot.loading === loading) slot.loading = undefined;
      });
    slot.loading = loading;
  }
}

/** Reads a whole file and converts it to netascii; bounded by `maxBytes` (netascii is for small text files). */
export async function netasciiFileSource(
  path: string | (() => Promise<FileHandle>),
  maxBytes: number,
): Promise<BufferBlockSource> {
  const file = typeof path === "string" ? await open(path, constants.O_RDONLY) : await path();
  try {
    const stat = await file.stat();
    if (!stat.isFile()) throw Object.assign(new Error("not a regular file"), { code: "ENOTFILE" });
    if (stat.size > maxBytes) throw Object.assign(new Error("file too large for netascii mode"), { code: "ETOOBIG" });
    return new BufferBlockSource(toNetascii(await file.readFile()));
  } finally {
    await file.close();
  }
}
