/**
 * "Log at most once per source per minute" for malformed input: a chatty or hostile
 * client must not flood the log. Bounded: when the table is full, expired keys are
 * dropped first and, failing that, the table is cleared (logging a few extra lines is
 * better than growing without limit).
 */
export class LogLimiter {
  readonly #last = new Map<string, number>();
  readonly #intervalMs: number;
  readonly #maxKeys: number;

  constructor(options: { intervalMs?: number; maxKeys?: number } = {}) {
    this.#intervalMs = options.intervalMs ?? 60_000;
    this.#maxKeys = options.maxKeys ?? 10_000;
  }

  shouldLog(key: string, nowMs: number = Date.now()): boolean {
    const last = this.#last.get(key);
    if (last !== undefined && nowMs - last < this.#intervalMs) return false;
    if (last === undefined && this.#last.size >= this.#maxKeys) this.#prune(nowMs);
    this.#last.set(key, nowMs);
    return true;
  }

  #prune(nowMs: number): void {
    for (const [key, at] of this.#last) if (nowMs - at >= this.#intervalMs) this.#last.delete(key);
    if (this.#last.size >= this.#maxKeys) this.#last.clear();
  }
}
