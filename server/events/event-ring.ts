/**
 * A bounded, seq-ordered ring of events: the storage behind the bus's journal, each Machine's
 * history and the strangers' scratch list. It remembers the newest seq it ever dropped, which
 * is what tells a resuming reader "gone" (its position fell out) from "nothing new".
 */
export interface Sequenced {
  readonly seq: number;
}

export class EventRing<T extends Sequenced> {
  readonly #capacity: number;
  /** Grows up to capacity first (most Machines emit a few dozen events), then wraps. */
  readonly #items: T[] = [];
  /** Index of the oldest item once the ring is full. */
  #head = 0;
  #droppedThrough = -1;

  /** `droppedThrough`: what an earlier incarnation of this list already lost. */
  constructor(capacity: number, droppedThrough = -1) {
    this.#capacity = Math.max(0, Math.floor(capacity));
    this.#droppedThrough = droppedThrough;
  }

  get size(): number {
    return this.#items.length;
  }

  /** The newest seq that was pushed out (or refused by a zero-capacity ring); -1 when none. */
  get droppedThrough(): number {
    return this.#droppedThrough;
  }

  /** Seq of the newest item held, or undefined when empty. */
  get newestSeq(): number | undefined {
    if (this.#items.length === 0) return undefined;
    const newest = this.#head === 0 ? this.#items.length - 1 : this.#head - 1;
    return this.#items[newest]!.seq;
  }

  /** Appends; items must come in ascending seq order. Constant work whatever the capacity. */
  push(item: T): void {
    if (this.#capacity === 0) {
      this.#droppedThrough = item.seq;
      return;
    }
    if (this.#items.length < this.#capacity) {
      this.#items.push(item);
      return;
    }
    this.#droppedThrough = this.#items[this.#head]!.seq;
    this.#items[this.#head] = item;
    this.#head = this.#head + 1 === this.#capacity ? 0 : this.#head + 1;
  }

  /** Every item, oldest first. */
  toArray(): T[] {
    return this.#items.length < this.#capacity || this.#head === 0
      ? this.#items.slice()
      : [...this.#items.slice(this.#head), ...this.#items.slice(0, this.#head)];
  }

  /** Items with a seq greater than `seq`, oldest first (binary search: the ring is sorted by seq). */
  after(seq: number): T[] {
    const all = this.toArray();
    let lo = 0;
    let hi = all.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (all[mid]!.seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return all.slice(lo);
  }
}
