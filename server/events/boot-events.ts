import { EventEmitter } from "node:events";

/**
 * Every boot step of every machine is one event. Logs, metrics and (later) the console's
 * timeline all read this one stream, so a step is reported once, here.
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
  | "cloudinit.event";

/**
 * `aborted`: the peer stopped the step on purpose (a TFTP client that gave up mid-transfer);
 * `ignored`: nothing was wrong but nothing was served (unknown MAC, tsize probe, other server).
 */
export type BootResult = "ok" | "error" | "ignored" | "aborted" | "not-ready" | "not-found";

export interface BootEvent {
  /** ISO-8601 time the step finished. */
  time: string;
  step: BootStep;
  result: BootResult;
  /** Client MAC (lower-case, colon-separated) when known. */
  mac?: string;
  /** Machine name when the client matched one. */
  machine?: string;
  /** Client IP as seen on the wire. */
  ip?: string;
  /** Short machine-readable reason for non-ok results (e.g. `unknown-mac`, `other-server`). */
  reason?: string;
  /** Free-form details: file path, bytes, duration in ms, boot file... */
  detail?: Record<string, string | number | boolean | undefined>;
}

export class BootEventBus {
  readonly #emitter = new EventEmitter();
  /** Ring buffer of the last `#keep` events: `#next` is where the next one goes. */
  readonly #recent: (BootEvent | undefined)[];
  readonly #keep: number;
  #next = 0;
  #count = 0;
  /** The last formatted time: bursts of events within one millisecond format it once. */
  #lastMs = -1;
  #lastIso = "";

  constructor(options: { keepRecent?: number } = {}) {
    this.#keep = Math.max(0, Math.floor(options.keepRecent ?? 1000));
    this.#recent = new Array(this.#keep).fill(undefined);
    // Many subscribers (log, metrics, console streams) are expected.
    this.#emitter.setMaxListeners(0);
  }

  emit(event: Omit<BootEvent, "time"> & { time?: string }): void {
    const full: BootEvent = { ...event, time: event.time ?? this.#now() };
    if (this.#keep > 0) {
      // Overwrite the oldest slot: constant work per event whatever `keepRecent` is.
      this.#recent[this.#next] = full;
      this.#next = this.#next + 1 === this.#keep ? 0 : this.#next + 1;
      if (this.#count < this.#keep) this.#count += 1;
    }
    this.#emitter.emit("event", full);
  }

  #now(): string {
    const ms = Date.now();
    if (ms !== this.#lastMs) {
      this.#lastMs = ms;
      this.#lastIso = new Date(ms).toISOString();
    }
    return this.#lastIso;
  }

  subscribe(listener: (event: BootEvent) => void): () => void {
    this.#emitter.on("event", listener);
    return () => this.#emitter.off("event", listener);
  }

  /** The last events, oldest first (optionally only one machine's or MAC's). */
  recent(filter: { machine?: string; mac?: string } = {}): BootEvent[] {
    const out: BootEvent[] = [];
    const oldest = this.#count < this.#keep ? 0 : this.#next;
    for (let i = 0; i < this.#count; i++) {
      const e = this.#recent[(oldest + i) % this.#keep]!;
      if (
        (filter.machine === undefined || e.machine === filter.machine) &&
        (filter.mac === undefined || e.mac === filter.mac)
      ) {
        out.push(e);
      }
    }
    return out;
  }
}
