import type { Logger } from "pino";
import { GoneError } from "./backend.js";
import { compareVersions, isVersion } from "./resource-version.js";

/**
 * Listeners plus a bounded history of recent events, so a watcher resumes from a version
 * (Kubernetes `watch?resourceVersion=`) or learns that it is too old (410 Gone) and re-lists.
 * `versionOf` reads an event's resourceVersion. A throwing listener is logged and skipped.
 */
export class WatchHub<E> {
  private readonly listeners = new Set<(event: E) => void>();
  private history: Array<{ version: string; event: E }> = [];
  /** Events at or below this version are no longer in `history` (restart, or trimmed). */
  private floor: string;

  constructor(
    private readonly log: Logger,
    private readonly current: () => string,
    private readonly limit = 2048,
  ) {
    this.floor = current();
  }

  watch(listener: (event: E) => void, from?: string): () => void {
    if (from !== undefined) {
      if (!isVersion(from) || compareVersions(from, this.floor) < 0 || compareVersions(from, this.current()) > 0) {
        throw new GoneError(from, this.floor);
      }
      for (const item of this.history) {
        if (compareVersions(item.version, from) > 0) this.call(listener, item.event);
      }
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(version: string, event: E): void {
    this.history.push({ version, event });
    if (this.history.length > this.limit) {
      const dropped = this.history.splice(0, this.history.length - this.limit);
      this.floor = dropped.at(-1)!.version;
    }
    for (const listener of [...this.listeners]) this.call(listener, event);
  }

  /** Forgets the history: versions up to now are no longer replayable (called once the clock is open). */
  reset(): void {
    this.history = [];
    this.floor = this.current();
  }

  clear(): void {
    this.listeners.clear();
  }

  private call(listener: (event: E) => void, event: E): void {
    try {
      listener(event);
    } catch (err) {
      this.log.error({ err }, "inventory: watch listener failed");
    }
  }
}
