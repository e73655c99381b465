import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import type { BootEvent, BootEventBus } from "./boot-events.js";

/**
 * Logs every boot event as one structured line. Successful steps log at info, everything
 * else at info too but with the reason: operators read the log as the boot timeline.
 * Returns the unsubscribe function.
 */
export function logBootEvents(bus: BootEventBus, log: Logger): () => void {
  const eventLog = log.child({ component: "boot" });
  return bus.subscribe((event: BootEvent) => {
    const { time: _time, detail, ...fields } = event;
    eventLog.info({ ...fields, ...detail }, `${event.step} ${event.result}${event.machine ? ` ${event.machine}` : ""}`);
  });
}

/** Counts boot events by step and result: `metalman_boot_events_total{step,result}`. */
export function countBootEvents(bus: BootEventBus, registry: Registry): () => void {
  const counter = new Counter({
    name: "metalman_boot_events_total",
    help: "Boot steps seen, by step and result",
    labelNames: ["step", "result"] as const,
    registers: [registry],
  });
  return bus.subscribe((event) => counter.inc({ step: event.step, result: event.result }));
}
