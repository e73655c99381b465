/**
 * The end of a shutdown's grace period: what every listener waits on before it cuts the
 * transfers still in flight. It can only move earlier (a second SIGTERM means "now").
 */
export class StopDeadline {
  readonly #reached: Promise<void>;
  #resolve!: () => void;
  #timer: NodeJS.Timeout | undefined;
  #at: number;

  constructor(graceMs: number, now: () => number = Date.now) {
    this.#reached = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    this.#at = now() + Math.max(0, graceMs);
    this.#arm(Math.max(0, graceMs));
  }

  /** Settles when the grace is over. */
  get reached(): Promise<void> {
    return this.#reached;
  }

  /** Moves the deadline to `graceMs` from now, when that is earlier. */
  shorten(graceMs: number, now: () => number = Date.now): void {
    const at = now() + Math.max(0, graceMs);
    if (at >= this.#at) return;
    this.#at = at;
    this.#arm(Math.max(0, graceMs));
  }

  /** Stops the timer once the shutdown is over, so it holds nothing alive. */
  dispose(): void {
    clearTimeout(this.#timer);
    this.#resolve();
  }

  #arm(ms: number): void {
    clearTimeout(this.#timer);
    if (ms === 0) {
      this.#resolve();
      return;
    }
    // Not unref'd: while a shutdown waits, this timer is what keeps the process alive to finish it.
    this.#timer = setTimeout(() => this.#resolve(), ms);
  }
}

/**
 * Waits until `idle()` is true or the deadline passes, checking every `pollMs`. For parts
 * that only expose a count of work in flight (the TFTP server's transfers).
 */
export async function waitUntilIdle(idle: () => boolean, deadline: StopDeadline, pollMs = 50): Promise<boolean> {
  let over = false;
  void deadline.reached.then(() => {
    over = true;
  });
  while (!idle()) {
    if (over) return false;
    await Promise.race([new Promise((resolve) => setTimeout(resolve, pollMs)), deadline.reached]);
  }
  return true;
}
