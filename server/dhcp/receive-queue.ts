import { DHCP_MAGIC_COOKIE } from "./codec.js";
import { MessageType, OptionCode } from "./options.js";

/**
 * Overload policy (issue 5 §5.2): under a flood the kernel socket buffer overflows and drops
 * whatever arrives, so a client half-way through DORA loses its REQUEST as often as a new
 * client loses its DISCOVER. Kea instead finishes the exchanges it started. We do the same:
 * datagrams are pulled off the socket cheaply into two bounded queues, and the handler drains
 * the queue of started exchanges (REQUEST, DECLINE, RELEASE, INFORM) before new ones
 * (DISCOVER, and anything we cannot classify). When the new-exchange queue is full the OLDEST
 * DISCOVER is shed: its client has waited longest and has likely retransmitted already.
 */

export type ReceiveClass = "started" | "new";

export interface ReceiveQueueLimits {
  /** Queued datagrams of started exchanges (REQUEST, ...); default 4096. */
  startedLimit?: number;
  /** Queued DISCOVERs and unclassified datagrams; default 512 (about 50 ms of work). */
  newLimit?: number;
}

/**
 * Message type (option 53) found by a bare scan of the options field, without decoding.
 * Returns undefined for anything that is not a plain DHCP packet (the full decoder judges it).
 */
export function peekMessageType(data: Buffer): number | undefined {
  if (data.length < 241 || data.readUInt32BE(236) !== DHCP_MAGIC_COOKIE) return undefined;
  let i = 240;
  // Bounded by the buffer: every step advances at least one byte.
  while (i < data.length) {
    const code = data[i]!;
    if (code === OptionCode.End) return undefined;
    if (code === OptionCode.Pad) {
      i++;
      continue;
    }
    if (i + 1 >= data.length) return undefined;
    const len = data[i + 1]!;
    if (code === OptionCode.MessageType) return len === 1 && i + 2 < data.length ? data[i + 2] : undefined;
    i += 2 + len;
  }
  return undefined;
}

/** Which queue a datagram goes to. */
export function classify(data: Buffer): ReceiveClass {
  switch (peekMessageType(data)) {
    case MessageType.Request:
    case MessageType.Decline:
    case MessageType.Release:
    case MessageType.Inform:
      return "started";
    default:
      return "new";
  }
}

/** Fixed-capacity FIFO over a ring; push on a full ring evicts and returns the oldest item. */
export class BoundedFifo<T> {
  readonly #items: (T | undefined)[];
  #head = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be >= 1, got ${capacity}`);
    this.#items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.#size;
  }

  /** Adds `item`; when full, the oldest item is removed and returned. */
  push(item: T): T | undefined {
    let evicted: T | undefined;
    if (this.#size === this.capacity) evicted = this.shift();
    this.#items[(this.#head + this.#size) % this.capacity] = item;
    this.#size++;
    return evicted;
  }

  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.capacity;
    this.#size--;
    return item;
  }

  clear(): void {
    while (this.#size > 0) this.shift();
  }
}

/** Two bounded queues, started exchanges first. `push` returns the datagram it shed, if any. */
export class PriorityReceiveQueue<T> {
  readonly #started: BoundedFifo<T>;
  readonly #new: BoundedFifo<T>;

  constructor(limits: ReceiveQueueLimits = {}) {
    this.#started = new BoundedFifo<T>(limits.startedLimit ?? 4096);
    this.#new = new BoundedFifo<T>(limits.newLimit ?? 512);
  }

  get size(): number {
    return this.#started.size + this.#new.size;
  }

  push(item: T, cls: ReceiveClass): { item: T; cls: ReceiveClass } | undefined {
    const evicted = (cls === "started" ? this.#started : this.#new).push(item);
    return evicted === undefined ? undefined : { item: evicted, cls };
  }

  shift(): T | undefined {
    return this.#started.size > 0 ? this.#started.shift() : this.#new.shift();
  }

  clear(): void {
    this.#started.clear();
    this.#new.clear();
  }
}
