import type { Logger } from "pino";
import { RateLimiter } from "../util/rate-limiter.js";
import { EventRing } from "./event-ring.js";

/**
 * The one stream of machine events. Boot steps (DHCP, TFTP, HTTP, cloud-init) today; BMC
 * actions, image pulls, attestation and operator operations emit on it too, under their own
 * prefix. Logs, metrics and the console's timeline all read this stream, so a step is
 * reported once, here. The contract (seq, resume, history, strangers) is docs/events.md.
 */
export type BootStep =
  | "dhcp.discover"
  | "dhcp.offer"
  | "dhcp.request"
  | "dhcp.ack"
  | "dhcp.nak"
  | "dhcp.release"
  | "dhcp.decline"
  | "dhcp.inform"
  | "dhcp.ignored"
  | "tftp.transfer"
  | "http.artifact"
  | "http.template"
  | "pxe.disable"
  | "cloudinit.event"
  /** Power and boot-device actions through a BMC (Redfish): `bmc.power-cycle`, `bmc.set-boot`... */
  | `bmc.${string}`
  /** Image pulls and unpacks: `image.pull`, `image.verify`... */
  | `image.${string}`
  /** TPM attestation: `attest.ek-pin`, `attest.quote`... */
  | `attest.${string}`
  /** MachineOperation lifecycle (operator intent): `operation.accepted`, `operation.done`... */
  | `operation.${string}`;

/** Another name for the same vocabulary, for the rooms that are not about booting. */
export type MachineEventStep = BootStep;

/**
 * `aborted`: the peer stopped the step on purpose (a TFTP client that gave up mid-transfer);
 * `ignored`: nothing was wrong but nothing was served (unknown MAC, tsize probe, other server);
 * `started` / `progress`: long operations (image pulls, BMC actions) report before they end.
 */
export type BootResult = "ok" | "error" | "ignored" | "aborted" | "not-ready" | "not-found" | "started" | "progress";

export interface BootEvent {
  /** ISO-8601 time the step finished. */
  time: string;
  step: BootStep;
  result: BootResult;
  /** Client MAC (lower-case, colon-separated) when known. */
  mac?: string;
  /** Machine name when the client matched one. An event without one is a stranger's. */
  machine?: string;
  /** Client IP as seen on the wire. */
  ip?: string;
  /** Short machine-readable reason for non-ok results (e.g. `unknown-mac`, `other-server`). */
  reason?: string;
  /** Free-form details: file path, bytes, duration in ms, boot file... */
  detail?: Record<string, string | number | boolean | undefined>;
}

/** What an emitter hands in: the bus stamps the time (unless given) and the seq. */
export type BootEventInput = Omit<BootEvent, "time"> & { time?: string };

/** An event as stored and delivered: frozen, with its place in the stream. */
export interface StreamEvent extends Readonly<BootEvent> {
  /** Increases by one per event, and never goes backwards across restarts (see `startSeq`). */
  readonly seq: number;
}

export type EventListener = (event: StreamEvent) => void;

/** Answer of `since()`: the missed events, or "gone" when some of them are no longer kept. */
export type Replay =
  | { ok: true; events: StreamEvent[]; lastSeq: number }
  | {
      ok: false;
      reason: "gone";
      /** Seq of the oldest event still held for this query (re-list from `history()`, then follow from lastSeq). */
      oldestSeq: number | undefined;
      lastSeq: number;
    };

export type Subscription = { ok: true; unsubscribe: () => void; replayed: number } | Extract<Replay, { ok: false }>;

export interface BootEventBusOptions {
  /** Machine events kept in the stream-wide journal for `since()` (default 10 000). */
  keepRecent?: number;
  /** Events kept per Machine (default 128). */
  perMachine?: number;
  /**
   * Machines with a history; the least recently active is forgotten beyond this (default
   * 65 536: every Machine of a large inventory keeps its timeline; memory is bounded by
   * `maxHistoryEvents`).
   */
  maxMachines?: number;
  /**
   * Events held in all per-Machine histories together; beyond it the least recently active
   * Machines are forgotten (default 524 288 = 4096 full histories of 128). A count cap alone
   * below the inventory size makes every event of a busy site evict a history and start a new one.
   */
  maxHistoryEvents?: number;
  /** Stranger events kept for `recent()` only; strangers are never replayed (default 256). */
  keepStrangers?: number;
  /**
   * Seq of the first event. Default: microseconds since the epoch at start-up, so a console
   * holding a seq from before a restart sees it as behind (or "gone"), never as "ahead".
   */
  startSeq?: number;
  /** Where failing subscribers are reported (rate-limited). Without it they are only counted. */
  log?: Pick<Logger, "warn">;
  /** Interval of the failing-subscriber log line (default 60 s). */
  errorLogIntervalMs?: number;
}

export interface BootEventStats {
  emitted: number;
  machineEvents: number;
  strangerEvents: number;
  subscriberErrors: number;
  machinesTracked: number;
  lastSeq: number;
}

/**
 * One Machine's history in the recency list: a doubly linked list through the entries, most
 * recently active at `#newest`. Touching an entry relinks two pointers; a Map used as the LRU
 * (delete + set per event, `keys().next()` to evict) costs far more: with more active Machines
 * than `maxMachines` every event evicts, and V8 scans the deleted slots at the front of the
 * Map's table for each `keys().next()`.
 */
interface HistoryEntry {
  readonly machine: string;
  readonly ring: EventRing<StreamEvent>;
  older: HistoryEntry | undefined;
  newer: HistoryEntry | undefined;
}

interface ListenerEntry {
  readonly listener: EventListener;
  readonly filter: { machine?: string } | undefined;
}

export class BootEventBus {
  readonly #journal: EventRing<StreamEvent>;
  readonly #strangers: EventRing<StreamEvent>;
  readonly #machines = new Map<string, HistoryEntry>();
  /** Least and most recently active Machine (ends of the recency list). */
  #oldest: HistoryEntry | undefined;
  #newest: HistoryEntry | undefined;
  readonly #perMachine: number;
  readonly #maxMachines: number;
  readonly #maxHistoryEvents: number;
  /** Events held in all per-Machine histories. */
  #historyEvents = 0;
  /** Newest seq of any Machine history that was forgotten whole (LRU beyond maxMachines). */
  #forgottenThrough = -1;
  /** Copy-on-write: emit iterates a stable array while listeners come and go. */
  #listeners: readonly ListenerEntry[] = [];
  /** Events emitted by a listener while dispatching wait here: every listener sees seq order. */
  readonly #queue: StreamEvent[] = [];
  #dispatching = false;
  readonly #log: Pick<Logger, "warn"> | undefined;
  readonly #errorLimiter: RateLimiter;
  #lastSeq: number;
  /** Seq of this run's first event: a position before it is from an earlier run. */
  readonly #startSeq: number;
  #machineEvents = 0;
  #strangerEvents = 0;
  #subscriberErrors = 0;
  /** The last formatted time: bursts of events within one millisecond format it once. */
  #lastMs = -1;
  #lastIso = "";

  constructor(options: BootEventBusOptions = {}) {
    this.#journal = new EventRing(options.keepRecent ?? 10_000);
    this.#strangers = new EventRing(Math.min(options.keepRecent ?? 256, options.keepStrangers ?? 256));
    this.#perMachine = Math.max(1, Math.floor(options.perMachine ?? 128));
    this.#maxMachines = Math.max(1, Math.floor(options.maxMachines ?? 65_536));
    this.#maxHistoryEvents = Math.max(1, Math.floor(options.maxHistoryEvents ?? 4096 * 128));
    this.#startSeq = Math.floor(options.startSeq ?? Date.now() * 1000);
    this.#lastSeq = this.#startSeq - 1;
    this.#log = options.log;
    this.#errorLimiter = new RateLimiter({ intervalMs: options.errorLogIntervalMs ?? 60_000, maxKeys: 64 });
  }

  /** Stamps, stores and delivers one event. Never throws because of a subscriber. */
  emit(input: BootEventInput): StreamEvent {
    const event = this.#stamp(input);
    if (event.machine === undefined) {
      this.#strangerEvents++;
      this.#strangers.push(event);
    } else {
      this.#machineEvents++;
      this.#journal.push(event);
      const history = this.#historyFor(event.machine);
      const held = history.size;
      history.push(event);
      if (history.size > held && ++this.#historyEvents > this.#maxHistoryEvents) this.#trimHistories(history);
    }
    if (this.#dispatching) {
      // A listener emitted: deliver after the current event, so every listener sees seq order.
      this.#queue.push(event);
    } else {
      this.#dispatch(event);
    }
    return event;
  }

  /**
   * Live events from now on. With `since`, the events after that seq are replayed first
   * (synchronously, so none is missed or doubled), or the answer is "gone" and nothing is
   * subscribed. With `machine`, only that Machine's events (replayed from its own history).
   */
  subscribe(listener: EventListener): () => void;
  subscribe(listener: EventListener, options: { since?: number; machine?: string }): Subscription;
  subscribe(listener: EventListener, options?: { since?: number; machine?: string }): (() => void) | Subscription {
    const filter = options?.machine === undefined ? undefined : { machine: options.machine };
    let replay: StreamEvent[] = [];
    if (options?.since !== undefined) {
      const answer = this.since(options.since, filter);
      if (!answer.ok) return answer;
      replay = answer.events;
    }
    const entry: ListenerEntry = { listener, filter };
    // Replay before joining: the queue is empty outside dispatch, so live delivery continues exactly after.
    for (const event of replay) this.#deliver(entry, event);
    this.#listeners = [...this.#listeners, entry];
    const unsubscribe = () => {
      this.#listeners = this.#listeners.filter((e) => e !== entry);
    };
    return options === undefined ? unsubscribe : { ok: true, unsubscribe, replayed: replay.length };
  }

  /**
   * Machine events with a seq greater than `seq` (all Machines, or one). "gone" when events
   * after `seq` were dropped, when `seq` is from an earlier run (this process never held what
   * came between), or when it is ahead of this stream. `startSeq - 1` means "from the start".
   * Strangers are not replayed: they are live only (and counted).
   */
  since(seq: number, filter: { machine?: string } = {}): Replay {
    const ring = filter.machine === undefined ? this.#journal : this.#machines.get(filter.machine)?.ring;
    const droppedThrough = Math.max(ring ? ring.droppedThrough : this.#forgottenThrough, this.#startSeq - 1);
    if (!Number.isFinite(seq) || seq > this.#lastSeq || seq < droppedThrough) {
      const held = ring?.toArray()[0]?.seq;
      return { ok: false, reason: "gone", oldestSeq: held, lastSeq: this.#lastSeq };
    }
    return { ok: true, events: ring ? ring.after(seq) : [], lastSeq: this.#lastSeq };
  }

  /** One Machine's recent events, oldest first (bounded per Machine, kept whatever strangers do). */
  history(machine: string): StreamEvent[] {
    return this.#machines.get(machine)?.ring.toArray() ?? [];
  }

  /** Drops a Machine's history (the Machine was deleted: a new one of that name starts fresh). */
  forget(machine: string): void {
    const entry = this.#machines.get(machine);
    if (!entry) return;
    this.#forgottenThrough = Math.max(this.#forgottenThrough, entry.ring.newestSeq ?? -1);
    this.#historyEvents -= entry.ring.size;
    this.#unlink(entry);
    this.#machines.delete(machine);
  }

  /** The last events, oldest first (optionally only one machine's or MAC's), strangers included. */
  recent(filter: { machine?: string; mac?: string } = {}): StreamEvent[] {
    const pool =
      filter.machine !== undefined
        ? this.history(filter.machine)
        : mergeBySeq(this.#journal.toArray(), this.#strangers.toArray());
    return filter.mac === undefined ? pool : pool.filter((e) => e.mac === filter.mac);
  }

  /** Seq of this run's first event; `since(firstSeq - 1)` replays everything still held. */
  get firstSeq(): number {
    return this.#startSeq;
  }

  get lastSeq(): number {
    return this.#lastSeq;
  }

  stats(): BootEventStats {
    return {
      emitted: this.#machineEvents + this.#strangerEvents,
      machineEvents: this.#machineEvents,
      strangerEvents: this.#strangerEvents,
      subscriberErrors: this.#subscriberErrors,
      machinesTracked: this.#machines.size,
      lastSeq: this.#lastSeq,
    };
  }

  #stamp(input: BootEventInput): StreamEvent {
    // Built field by field: a spread plus extra keys is ~50x slower (4 events per DHCP exchange).
    // Optional fields are set only when present, so events compare equal to what was emitted.
    const event: { -readonly [K in keyof StreamEvent]: StreamEvent[K] } = {
      seq: ++this.#lastSeq,
      time: input.time ?? this.#now(),
      step: input.step,
      result: input.result,
    };
    if (input.mac !== undefined) event.mac = input.mac;
    if (input.machine !== undefined) event.machine = input.machine;
    if (input.ip !== undefined) event.ip = input.ip;
    if (input.reason !== undefined) event.reason = input.reason;
    // Subscribers share the object: freeze it, and a copy of detail (the caller may reuse its
    // object). A detail the caller froze is already immutable and is kept as it is.
    if (input.detail !== undefined) event.detail = frozenDetail(input.detail);
    return Object.freeze(event);
  }

  #historyFor(machine: string): EventRing<StreamEvent> {
    let entry = this.#machines.get(machine);
    if (entry) {
      // Most recently active last: the other end is who gets forgotten.
      if (entry !== this.#newest) {
        this.#unlink(entry);
        this.#linkNewest(entry);
      }
      return entry.ring;
    }
    if (this.#machines.size >= this.#maxMachines && this.#oldest) this.forget(this.#oldest.machine);
    // A Machine forgotten earlier (or deleted) may have had events: resuming across that says "gone".
    entry = {
      machine,
      ring: new EventRing(this.#perMachine, this.#forgottenThrough),
      older: undefined,
      newer: undefined,
    };
    this.#machines.set(machine, entry);
    this.#linkNewest(entry);
    return entry.ring;
  }

  /** Forgets the least recently active Machines until the histories fit (never `keep`, the one just written). */
  #trimHistories(keep: EventRing<StreamEvent>): void {
    while (this.#historyEvents > this.#maxHistoryEvents && this.#oldest && this.#oldest.ring !== keep) {
      this.forget(this.#oldest.machine);
    }
  }

  #unlink(entry: HistoryEntry): void {
    if (entry.older) entry.older.newer = entry.newer;
    else this.#oldest = entry.newer;
    if (entry.newer) entry.newer.older = entry.older;
    else this.#newest = entry.older;
    entry.older = undefined;
    entry.newer = undefined;
  }

  #linkNewest(entry: HistoryEntry): void {
    entry.older = this.#newest;
    entry.newer = undefined;
    if (this.#newest) this.#newest.newer = entry;
    else this.#oldest = entry;
    this.#newest = entry;
  }

  #dispatch(first: StreamEvent): void {
    this.#dispatching = true;
    try {
      for (let event: StreamEvent | undefined = first; event !== undefined; event = this.#queue.shift()) {
        for (const entry of this.#listeners) this.#deliver(entry, event);
      }
    } finally {
      this.#dispatching = false;
    }
  }

  #deliver(entry: ListenerEntry, event: StreamEvent): void {
    if (entry.filter?.machine !== undefined && entry.filter.machine !== event.machine) return;
    try {
      const returned = entry.listener(event) as unknown;
      // An async listener fails later: catch that too, or it becomes an unhandled rejection.
      if (returned instanceof Promise) returned.catch((error: unknown) => this.#listenerFailed(error, event));
    } catch (error) {
      this.#listenerFailed(error, event);
    }
  }

  #listenerFailed(error: unknown, event: StreamEvent): void {
    this.#subscriberErrors++;
    if (!this.#log) return;
    const decision = this.#errorLimiter.check("subscriber");
    if (!decision.allowed) return;
    this.#log.warn(
      { err: error, step: event.step, seq: event.seq, suppressed: decision.suppressed, total: this.#subscriberErrors },
      "an event subscriber threw; it stays subscribed, the others and the emitter are unaffected",
    );
  }

  #now(): string {
    const ms = Date.now();
    if (ms !== this.#lastMs) {
      this.#lastMs = ms;
      this.#lastIso = new Date(ms).toISOString();
    }
    return this.#lastIso;
  }
}

/**
 * An immutable detail: the caller's own when frozen, else a frozen copy. Copied key by key
 * (undefined values included, as a spread would): a spread of objects of many shapes takes
 * V8's generic path, about a third of the bus's cost per event.
 */
function frozenDetail(detail: NonNullable<BootEvent["detail"]>): Readonly<NonNullable<BootEvent["detail"]>> {
  if (Object.isFrozen(detail)) return detail;
  const copy: NonNullable<BootEvent["detail"]> = {};
  for (const key in detail) if (Object.hasOwn(detail, key)) copy[key] = detail[key];
  return Object.freeze(copy);
}

/** Merges two seq-sorted lists. */
function mergeBySeq(a: StreamEvent[], b: StreamEvent[]): StreamEvent[] {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const out: StreamEvent[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) out.push(a[i]!.seq < b[j]!.seq ? a[i++]! : b[j++]!);
  while (i < a.length) out.push(a[i++]!);
  while (j < b.length) out.push(b[j++]!);
  return out;
}
