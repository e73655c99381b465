import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import { type CounterCell, CounterCells } from "../metrics/counter-cells.js";
import type { BootEventBus, StreamEvent } from "./boot-events.js";
import { StrangerTally } from "./stranger-tally.js";

export interface LogBootEventsOptions {
  /** At most one stranger summary line per interval (default 10 s). */
  strangerIntervalMs?: number;
  now?: () => number;
}

/**
 * Logs every Machine's event as one structured line (operators read the log as the boot
 * timeline). Stranger events are aggregated: the first after a quiet interval is logged at
 * once (so a newly plugged machine's MAC shows up), the rest as one summary line per
 * interval. Returns the unsubscribe function, which also writes the pending summary.
 */
export function logBootEvents(bus: BootEventBus, log: Logger, options: LogBootEventsOptions = {}): () => void {
  const eventLog = log.child({ component: "boot" });
  const intervalMs = options.strangerIntervalMs ?? 10_000;
  const now = options.now ?? Date.now;
  const tally = new StrangerTally();
  let lastSummaryAt = Number.NEGATIVE_INFINITY;
  let timer: NodeJS.Timeout | undefined;

  const writeSummary = () => {
    clearTimeout(timer);
    timer = undefined;
    const summary = tally.take();
    if (!summary) return;
    lastSummaryAt = now();
    if (!eventLog.isLevelEnabled("info")) return;
    eventLog.info(
      { strangers: summary, intervalMs },
      `stranger traffic: ${summary.events} event(s) from ${summary.sources}${summary.sourcesCapped ? "+" : ""} source(s) matching no Machine`,
    );
  };

  const unsubscribe = bus.subscribe((event: StreamEvent) => {
    if (event.machine === undefined) {
      tally.record(event);
      if (now() - lastSummaryAt >= intervalMs) writeSummary();
      else if (!timer) {
        timer = setTimeout(writeSummary, Math.max(1, lastSummaryAt + intervalMs - now()));
        timer.unref();
      }
      return;
    }
    // Four events per DHCP exchange: with the level above info, build nothing at all.
    if (!eventLog.isLevelEnabled("info")) return;
    const { time: _time, detail, ...fields } = event;
    eventLog.info({ ...fields, ...detail }, `${event.step} ${event.result} ${event.machine}`);
  });
  return () => {
    unsubscribe();
    writeSummary();
  };
}

/**
 * `metalman_boot_events_total{step,result}` counts every event (strangers included);
 * `metalman_boot_stranger_events_total{step,result}` the strangers alone; the bus's own
 * health is `metalman_event_subscriber_errors_total` and `metalman_event_machines_tracked`.
 */
export function countBootEvents(bus: BootEventBus, registry: Registry): () => void {
  const counter = new Counter({
    name: "metalman_boot_events_total",
    help: "Boot steps seen, by step and result",
    labelNames: ["step", "result"] as const,
    registers: [registry],
  });
  const strangers = new Counter({
    name: "metalman_boot_stranger_events_total",
    help: "Events that matched no Machine (unknown MAC or IP), by step and result",
    labelNames: ["step", "result"] as const,
    registers: [registry],
  });
  new Counter({
    name: "metalman_event_subscriber_errors_total",
    help: "Event subscribers that threw (each is isolated: emitters and other subscribers carry on)",
    registers: [registry],
    collect() {
      this.reset();
      const errors = bus.stats().subscriberErrors;
      if (errors > 0) this.inc(errors);
    },
  });
  new Gauge({
    name: "metalman_event_machines_tracked",
    help: "Machines with an event history in memory",
    registers: [registry],
    collect() {
      this.set(bus.stats().machinesTracked);
    },
  });
  // One counter cell per (step, result), resolved once (server/metrics/counter-cells.ts): the
  // per-event cost is two Map lookups and an increment, no label hashing and no key string.
  const counts = new StepResultCells(counter);
  const strangerCounts = new StepResultCells(strangers);
  return bus.subscribe((event) => {
    counts.cell(event).value++;
    if (event.machine === undefined) strangerCounts.cell(event).value++;
  });
}

/** Counter cells by step, then result. */
class StepResultCells {
  readonly #cells: CounterCells;
  readonly #bySteps = new Map<string, Map<string, CounterCell>>();

  constructor(counter: Counter<"step" | "result">) {
    this.#cells = new CounterCells(counter);
  }

  cell(event: StreamEvent): CounterCell {
    let byResult = this.#bySteps.get(event.step);
    if (!byResult) {
      byResult = new Map();
      this.#bySteps.set(event.step, byResult);
    }
    let cell = byResult.get(event.result);
    if (!cell) {
      cell = this.#cells.cell({ step: event.step, result: event.result });
      byResult.set(event.result, cell);
    }
    return cell;
  }
}
