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
    // Four events per DHCP exchange: with the level above info, build nothing at all.
    if (!eventLog.isLevelEnabled("info")) return;
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
  // One label child per (step, result), resolved once: the per-event cost is a Map lookup.
  const children = new Map<string, Counter.Internal>();
  return bus.subscribe((event) => {
    const key = `${event.step} ${event.result}`;
    let child = children.get(key);
    if (!child) {
      child = counter.labels({ step: event.step, result: event.result });
      children.set(key, child);
    }
    child.inc();
  });
}
