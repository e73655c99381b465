/**
 * Per-Machine attempt budget for `/attest` (a token bucket): `burst` attempts at once, then one
 * more every `refillMs`. An agent attests once per boot and retries only on connection errors
 * (spec §7.2), so 5 at once and one per 12 s is far above what a genuine Machine needs, and
 * bounds what someone spoofing its IP can do (RSA decryptions on the TPM side are ours to
 * make; status writes and events per refusal are bounded too). Memory is bounded by `maxKeys`
 * (least recently used key dropped first).
 */
export interface AttemptBudgetOptions {
  burst?: number;
  refillMs?: number;
  maxKeys?: number;
  now?: () => number;
}

export class AttemptBudget {
  readonly #burst: number;
  readonly #refillMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(options: AttemptBudgetOptions = {}) {
    this.#burst = Math.max(1, options.burst ?? 5);
    this.#refillMs = Math.max(1, options.refillMs ?? 12_000);
    this.#maxKeys = Math.max(1, options.maxKeys ?? 10_000);
    this.#now = options.now ?? Date.now;
  }

  /** Takes one attempt; false when the budget is spent (then `retryAfterMs` says when the next one is). */
  take(key: string): { allowed: boolean; retryAfterMs: number } {
    const now = this.#now();
    const bucket = this.#buckets.get(key) ?? { tokens: this.#burst, at: now };
    const refilled = Math.min(this.#burst, bucket.tokens + Math.max(0, now - bucket.at) / this.#refillMs);
    this.#buckets.delete(key);
    const allowed = refilled >= 1;
    this.#buckets.set(key, { tokens: allowed ? refilled - 1 : refilled, at: now });
    if (this.#buckets.size > this.#maxKeys) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
    return { allowed, retryAfterMs: allowed ? 0 : Math.ceil((1 - refilled) * this.#refillMs) };
  }
}
