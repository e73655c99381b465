/** A counting semaphore: at most `limit` holders at once, the rest wait in order. */
export class ConcurrencyLimit {
  #active = 0;
  readonly #waiting: Array<() => void> = [];
  constructor(readonly limit: number) {
    if (!(limit >= 1)) throw new Error("concurrency limit must be at least 1");
  }

  get active(): number {
    return this.#active;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#active >= this.limit) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#active++;
    try {
      return await work();
    } finally {
      const next = this.#waiting.shift();
      // The slot passes straight to the next waiter (active stays the same).
      if (next) next();
      else this.#active--;
    }
  }
}
