/**
 * Status writes made while the API server is unreachable, in order, durable before the write
 * resolves: `<stateDir>/cluster/status-queue.json`, rewritten crash-safe on every change, so a
 * kill -9 during an outage loses none. A corrupt queue file is moved to `.corrupt` and reported
 * (never silently replaced: the operator can read what it held).
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { moveAside } from "../inventory/corrupt-file.js";
import { writeFileAtomic } from "../util/atomic-file.js";
import type { StatusPatch } from "./status-patch.js";

export interface QueuedStatus {
  id: number;
  machine: string;
  /** The Machine's uid when it was written: a Machine deleted and created again is another Machine. */
  uid?: string;
  at: string;
  patch: StatusPatch;
}

export class StatusQueue {
  readonly file: string;
  #entries: QueuedStatus[] = [];
  #nextId = 1;
  #writing: Promise<void> = Promise.resolve();

  constructor(stateDir: string) {
    this.file = path.join(stateDir, "cluster", "status-queue.json");
  }

  /** Loads the queue; resolves a problem message when the file was corrupt (then moved aside). */
  async load(): Promise<string | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      return `cannot read ${this.file}: ${String(err)}`;
    }
    try {
      const parsed = JSON.parse(text) as { entries: QueuedStatus[] };
      if (!Array.isArray(parsed.entries)) throw new Error("no entries");
      for (const e of parsed.entries) {
        if (
          typeof e.machine !== "string" ||
          typeof e.patch?.fields !== "object" ||
          typeof e.patch?.conditions !== "object"
        ) {
          throw new Error("malformed entry");
        }
      }
      this.#entries = parsed.entries;
      this.#nextId = Math.max(0, ...parsed.entries.map((e) => e.id)) + 1;
      return undefined;
    } catch (err) {
      const moved = await moveAside(this.file).catch(() => undefined);
      return `status queue ${this.file} is corrupt (${(err as Error).message}); kept as ${moved ?? "(could not move it)"}: its updates were not replayed`;
    }
  }

  get size(): number {
    return this.#entries.length;
  }

  entries(): readonly QueuedStatus[] {
    return this.#entries;
  }

  forMachine(name: string): QueuedStatus[] {
    return this.#entries.filter((e) => e.machine === name);
  }

  /** Appends and persists; resolves once the entry is on disk. */
  async push(entry: Omit<QueuedStatus, "id">): Promise<QueuedStatus> {
    const queued = { ...entry, id: this.#nextId++ };
    this.#entries.push(queued);
    await this.#persist();
    return queued;
  }

  /** Drops the given entries (replayed, or for a Machine that is gone) and persists. */
  async remove(ids: ReadonlySet<number>): Promise<void> {
    this.#entries = this.#entries.filter((e) => !ids.has(e.id));
    await this.#persist();
  }

  #persist(): Promise<void> {
    // One writer at a time, each writing the latest list: order on disk follows order in memory.
    const run = this.#writing.then(() => writeFileAtomic(this.file, JSON.stringify({ entries: this.#entries })));
    this.#writing = run.catch(() => undefined);
    return run;
  }
}
