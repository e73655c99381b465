/**
 * "At most once per key per interval" gate, for logging hostile or repetitive input without
 * letting it flood the log. Generic: the key is whatever identifies a source (address, MAC,
 * reason). Memory is bounded: when more than `maxKeys` keys are tracked, the oldest go first.
 */
export interface RateLimiterOptions {
  intervalMs?: number;
  maxKeys?: number;
  now?: () => number;
}

export interface RateLimitDecision {
  allowed: boolean;
  /** Calls for this key that were refused since the last allowed one. */
  suppressed: number;
}

export class RateLimiter {
  readonly #intervalMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, { last: number; suppressed: number }>();

  constructor(options: RateLimiterOptions = {}) {
    this.#intervalMs = options.intervalMs ?? 60_000;
    this.#maxKeys = options.maxKeys ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  check(key: string): RateLimitDecision {
    const now = this.#now();
    const entry = this.#entries.get(key);
    if (entry && now - entry.last < this.#intervalMs) {
      entry.suppressed++;
      return { allowed: false, suppressed: entry.suppressed };
    }
    const suppressed = entry?.suppressed ?? 0;
    // Re-insert so Map order stays "least recently allowed first" for eviction.
    this.#entries.delete(key);
    this.#entries.set(key, { last: now, suppressed: 0 });
    if (this.#entries.size > this.#maxKeys) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    return { allowed: true, suppressed };
  }

  get size(): number {
    return this.#entries.size;
  }
}

/** A logger method that drops calls whose key was logged less than an interval ago. */
export function rateLimitedLog<F extends Record<string, unknown>>(
  limiter: RateLimiter,
  log: (fields: F & { suppressed?: number }, message: string) => void,
): (key: string, fields: F, message: string) => boolean {
  return (key, fields, message) => {
    const decision = limiter.check(key);
    if (!decision.allowed) return false;
    log(decision.suppressed > 0 ? { ...fields, suppressed: decision.suppressed } : fields, message);
    return true;
  };
}
