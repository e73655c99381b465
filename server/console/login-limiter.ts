/**
 * Failed logins per key (client address, user name) in a sliding window. After `maxFailures`
 * within `windowMs`, further attempts for that key are refused until the oldest failure leaves
 * the window, whether or not the password would be right: guessing is slowed to
 * `maxFailures` per window per address and per user. Memory is bounded (oldest keys go).
 */
export interface LoginLimiterOptions {
  maxFailures?: number;
  windowMs?: number;
  maxKeys?: number;
  now?: () => number;
}

export class LoginLimiter {
  readonly #failures = new Map<string, number[]>();
  readonly #max: number;
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;

  constructor(options: LoginLimiterOptions = {}) {
    this.#max = options.maxFailures ?? 5;
    this.#windowMs = options.windowMs ?? 5 * 60_000;
    this.#maxKeys = options.maxKeys ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** Seconds to wait before `keys` may try again (0: allowed now). */
  retryAfterSeconds(keys: string[]): number {
    const now = this.#now();
    let wait = 0;
    for (const k of keys) {
      const list = this.#recent(k, now);
      if (list.length >= this.#max) wait = Math.max(wait, list[list.length - this.#max]! + this.#windowMs - now);
    }
    return wait > 0 ? Math.ceil(wait / 1000) : 0;
  }

  fail(keys: string[]): void {
    const now = this.#now();
    for (const k of keys) {
      const list = this.#recent(k, now);
      list.push(now);
      this.#failures.delete(k);
      this.#failures.set(k, list.slice(-this.#max));
    }
    while (this.#failures.size > this.#maxKeys) {
      const oldest = this.#failures.keys().next().value;
      if (oldest === undefined) break;
      this.#failures.delete(oldest);
    }
  }

  /** A successful login clears the user's count (not the address's: one right password does not unlock guessing others). */
  succeed(key: string): void {
    this.#failures.delete(key);
  }

  #recent(k: string, now: number): number[] {
    return (this.#failures.get(k) ?? []).filter((t) => now - t < this.#windowMs);
  }
}
