/**
 * Kubernetes Events on Machines, fed from the one event bus (server/events/boot-events.ts),
 * like the log and metric sinks (server/events/event-sinks.ts). Boot steps are aggregated, never
 * one Event per packet: DHCP packet steps (discover, offer, request, inform, ignored) are left
 * out, and the rest is counted per (Machine, reason, type) and written at most once per flush
 * interval, as one Event whose `count` and `lastTimestamp` grow (what `kubectl get events`
 * shows as "x5 over 2m"). BMC actions, attestation results and operations come through the same
 * way. Details are never copied into messages beyond the step, result and reason: no secrets.
 * While the API server is unreachable the counts wait (bounded) for the next flush.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { BootEventBus, StreamEvent } from "../events/boot-events.js";
import type { KubeApi } from "./kube-api.js";
import { statusOf } from "./kube-api.js";

const PACKET_STEPS = new Set(["dhcp.discover", "dhcp.offer", "dhcp.request", "dhcp.inform", "dhcp.ignored"]);
const WARNING_RESULTS = new Set(["error", "not-found", "not-ready"]);

export interface KubeEventSinkOptions {
  api: KubeApi;
  bus: BootEventBus;
  log: Pick<Logger, "warn" | "debug">;
  /** Where Events of cluster-scoped Machines go (kubectl looks in `default`). */
  namespace?: string;
  /** Written at most once per interval per aggregate (default 5 s). */
  flushMs?: number;
  /** This replica (Event source host / reportingInstance). */
  instance: string;
  /** Machine uid for involvedObject, when known. */
  uidOf?: (machine: string) => string | undefined;
  /** Aggregates kept while offline at most (default 2000; the oldest are dropped). */
  maxPending?: number;
}

interface Aggregate {
  machine: string;
  reason: string;
  type: "Normal" | "Warning";
  message: string;
  first: string;
  last: string;
  /** Not yet written. */
  pending: number;
  /** Written so far (the Event's count). */
  written: number;
  /** The Event object's name once created. */
  name?: string;
}

/** `dhcp.ack` → `DhcpAck`, `bmc.power-cycle` → `BmcPowerCycle`. */
export function eventReason(step: string): string {
  return step
    .split(/[.\-_]/)
    .filter(Boolean)
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join("");
}

export function subscribeKubeEvents(options: KubeEventSinkOptions): { flush(): Promise<void>; stop(): Promise<void> } {
  const ns = options.namespace ?? "default";
  const aggregates = new Map<string, Aggregate>();
  const max = options.maxPending ?? 2000;
  const unsubscribe = options.bus.subscribe((event: StreamEvent) => {
    if (event.machine === undefined || PACKET_STEPS.has(event.step)) return;
    if (event.result === "progress") return;
    const type = WARNING_RESULTS.has(event.result) ? "Warning" : "Normal";
    const reason = eventReason(event.step);
    const key = `${event.machine}\u0000${reason}\u0000${type}`;
    let agg = aggregates.get(key);
    if (!agg) {
      if (aggregates.size >= max) aggregates.delete(aggregates.keys().next().value!);
      agg = {
        machine: event.machine,
        reason,
        type,
        message: "",
        first: event.time,
        last: event.time,
        pending: 0,
        written: 0,
      };
      aggregates.set(key, agg);
    }
    agg.pending++;
    agg.last = event.time;
    agg.message = `${event.step} ${event.result}${event.reason ? ` (${event.reason})` : ""}`;
  });

  let flushing: Promise<void> | undefined;
  const flushOnce = async () => {
    for (const agg of aggregates.values()) {
      if (agg.pending === 0) continue;
      const count = agg.written + agg.pending;
      try {
        if (agg.name) {
          await options.api.request(
            "PATCH",
            `/api/v1/namespaces/${ns}/events/${agg.name}`,
            { count, lastTimestamp: agg.last, message: agg.message },
            "application/merge-patch+json",
          );
        } else {
          const name = `${agg.machine}.${randomBytes(8).toString("hex")}`;
          await options.api.request("POST", `/api/v1/namespaces/${ns}/events`, {
            apiVersion: "v1",
            kind: "Event",
            metadata: { name, namespace: ns },
            involvedObject: {
              apiVersion: "unbounded-cloud.io/v1alpha3",
              kind: "Machine",
              name: agg.machine,
              ...(options.uidOf?.(agg.machine) ? { uid: options.uidOf(agg.machine) } : {}),
            },
            reason: agg.reason,
            message: agg.message,
            type: agg.type,
            count,
            firstTimestamp: agg.first,
            lastTimestamp: agg.last,
            source: { component: "metalman", host: options.instance },
            reportingComponent: "metalman",
            reportingInstance: options.instance,
          });
          agg.name = name;
        }
        agg.written = count;
        agg.pending = 0;
      } catch (err) {
        // The Event was garbage-collected (1 h TTL): start a new one next time.
        if (statusOf(err) === 404) agg.name = undefined;
        options.log.debug({ err, machine: agg.machine, reason: agg.reason }, "kubernetes event not written");
        if (statusOf(err) === undefined) break; // unreachable: keep the counts for later
      }
    }
  };
  const flush = () => {
    flushing ??= flushOnce().finally(() => {
      flushing = undefined;
    });
    return flushing;
  };
  const timer = setInterval(() => void flush(), options.flushMs ?? 5000);
  timer.unref();
  return {
    flush,
    stop: async () => {
      unsubscribe();
      clearInterval(timer);
      await flush().catch(() => undefined);
    },
  };
}
