import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import path from "node:path";

/**
 * One resourceVersion sequence per backend (Machines and MachineOperations share it, as etcd's
 * revision does), that never goes backwards across restarts. Numbers are handed out of a block
 * whose ceiling is written to disk (fsync'ed) before the first number of the block is used; a
 * restart starts above the last ceiling. So a crash wastes at most one block, never repeats.
 */
export class ResourceVersionClock {
  private current = 0;
  private ceiling = 0;

  constructor(
    private readonly file: string,
    private readonly blockSize = 10_000,
  ) {}

  /**
   * Reads the last ceiling. A missing file starts at 0. A corrupt one is left beside as
   * `.corrupt` and the clock jumps to the current time in microseconds, far above any version a
   * block-by-block run can have reached, so versions still never repeat. Returns a problem
   * message when that happened.
   */
  open(): string | undefined {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    let value: unknown;
    try {
      value = (JSON.parse(text) as { ceiling?: unknown }).ceiling;
    } catch {
      value = undefined;
    }
    if (Number.isSafeInteger(value) && (value as number) >= 0) {
      this.current = value as number;
      this.ceiling = value as number;
      return undefined;
    }
    renameSync(this.file, `${this.file}.corrupt`);
    const jump = Date.now() * 1000;
    this.current = jump;
    this.reserve(jump + this.blockSize);
    return `${this.file} was corrupt (kept as ${this.file}.corrupt); resourceVersions continue from ${jump}`;
  }

  /** The newest version handed out ("0" before the first). */
  now(): string {
    return String(this.current);
  }

  /** Synchronous on purpose: callers assign versions inside a swap that must not await. */
  next(): string {
    if (this.current >= this.ceiling) this.reserve(this.current + this.blockSize);
    this.current += 1;
    return String(this.current);
  }

  private reserve(ceiling: number): void {
    const dir = path.dirname(this.file);
    mkdirSync(dir, { recursive: true });
    const temp = `${this.file}.${process.pid}.tmp`;
    const fd = openSync(temp, "w", 0o600);
    try {
      writeSync(fd, `${JSON.stringify({ ceiling })}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, this.file);
    const dirFd = openSync(dir, "r");
    try {
      fsyncSync(dirFd);
    } catch {
      // Some filesystems refuse fsync on a folder; the rename is done either way.
    } finally {
      closeSync(dirFd);
    }
    this.ceiling = ceiling;
  }
}

/** Compares two resourceVersions of one backend (decimal strings). */
export function compareVersions(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function isVersion(value: string): boolean {
  return /^(0|[1-9][0-9]{0,17})$/.test(value);
}
