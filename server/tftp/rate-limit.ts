/**
 * "At most once per source per interval" for log lines about garbage input, so a flood of junk
 * cannot flood the log. Bounded: when too many sources are tracked the table is cleared, which
 * at worst logs a few extra lines.
 */
export class PerSourceRateLimit {
  readonly #last = new Map<string, number>();
  readonly #intervalMs: number;
  readonly #maxSources: number;

  constructor(options: { intervalMs?: number; maxSources?: number } = {}) {
    this.#intervalMs = options.intervalMs ?? 60_000;
    this.#maxSources = options.maxSources ?? 4096;
  }

  /** True when `source` may log now (and records that it did). */
  allow(source: string, now: number = Date.now()): boolean {
    const last = this.#last.get(source);
    if (last !== undefined && now - last < this.#intervalMs) return false;
    if (last === undefined && this.#last.size >= this.#maxSources) this.#last.clear();
    this.#last.set(source, now);
    return true;
  }
}
