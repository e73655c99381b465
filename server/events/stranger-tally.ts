import type { BootEvent } from "./boot-events.js";

/**
 * Aggregates stranger events (no Machine matched: unknown MACs, unknown IPs, other servers'
 * clients) between two log lines. A busy LAN or a flood sends thousands a second; the log
 * gets one line per interval with counts instead. Memory is bounded whatever arrives.
 */
export interface StrangerSummary {
  events: number;
  /** Distinct MACs (or IPs, when no MAC is known); capped at MAX_SOURCES. */
  sources: number;
  sourcesCapped: boolean;
  /** Counts by `step result[ reason]`, at most MAX_KINDS keys (the rest under "other"). */
  byKind: Record<string, number>;
  /** The newest event, for a concrete example (e.g. the MAC of a machine just plugged in). */
  sample: Pick<BootEvent, "step" | "result" | "mac" | "ip" | "reason">;
}

const MAX_KINDS = 32;
const MAX_SOURCES = 1024;

export class StrangerTally {
  #events = 0;
  #kinds = new Map<string, number>();
  #sources = new Set<string>();
  #capped = false;
  #sample: StrangerSummary["sample"] | undefined;

  get pending(): number {
    return this.#events;
  }

  record(event: BootEvent): void {
    this.#events++;
    let kind =
      event.reason === undefined ? `${event.step} ${event.result}` : `${event.step} ${event.result} ${event.reason}`;
    if (!this.#kinds.has(kind) && this.#kinds.size >= MAX_KINDS) kind = "other";
    this.#kinds.set(kind, (this.#kinds.get(kind) ?? 0) + 1);
    const source = event.mac ?? event.ip;
    if (source !== undefined && !this.#sources.has(source)) {
      if (this.#sources.size < MAX_SOURCES) this.#sources.add(source);
      else this.#capped = true;
    }
    this.#sample = { step: event.step, result: event.result, mac: event.mac, ip: event.ip, reason: event.reason };
  }

  /** The summary since the last take, and a fresh start; undefined when nothing came. */
  take(): StrangerSummary | undefined {
    if (this.#events === 0 || this.#sample === undefined) return undefined;
    const summary: StrangerSummary = {
      events: this.#events,
      sources: this.#sources.size,
      sourcesCapped: this.#capped,
      byKind: Object.fromEntries(this.#kinds),
      sample: this.#sample,
    };
    this.#events = 0;
    this.#kinds = new Map();
    this.#sources = new Set();
    this.#capped = false;
    this.#sample = undefined;
    return summary;
  }
}
