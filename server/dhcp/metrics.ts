import { Counter, Histogram, type Registry } from "prom-client";
import { CellsByLabel } from "../metrics/counter-cells.js";

/**
 * DHCP metrics. Several increments per packet: each label value gets a plain counter cell
 * once (server/metrics/counter-cells.ts), so the hot path is a Map lookup plus `value++`,
 * and the prom-client counters are filled from the cells when scraped.
 */
export class DhcpMetrics {
  readonly received: LabelledCounter;
  readonly replies: LabelledCounter;
  readonly ignored: LabelledCounter;
  readonly malformed: Counter;
  readonly errors: LabelledCounter;
  /** Datagrams dropped by the overload policy before handling, by message type (receive-queue.ts). */
  readonly shed: LabelledCounter;
  readonly duration: Histogram;

  constructor(registry: Registry) {
    this.received = new LabelledCounter(
      counter(registry, "metalman_dhcp_packets_received_total", "DHCP packets received, by message type", ["type"]),
      "type",
    );
    this.replies = new LabelledCounter(
      counter(registry, "metalman_dhcp_replies_sent_total", "DHCP replies sent, by message type", ["type"]),
      "type",
    );
    this.ignored = new LabelledCounter(
      counter(registry, "metalman_dhcp_ignored_total", "DHCP packets not answered, by reason", ["reason"]),
      "reason",
    );
    this.malformed = counter(registry, "metalman_dhcp_malformed_total", "DHCP datagrams that failed to decode", []);
    this.errors = new LabelledCounter(
      counter(registry, "metalman_dhcp_errors_total", "DHCP handling or send failures, by stage", ["stage"]),
      "stage",
    );
    this.shed = new LabelledCounter(
      counter(
        registry,
        "metalman_dhcp_shed_total",
        "DHCP datagrams shed under overload before handling (new exchanges first), by message type",
        ["type"],
      ),
      "type",
    );
    const existing = registry.getSingleMetric("metalman_dhcp_handle_duration_seconds");
    this.duration =
      existing instanceof Histogram
        ? existing
        : new Histogram({
            name: "metalman_dhcp_handle_duration_seconds",
            help: "Time from datagram to reply handed to the socket",
            buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
            registers: [registry],
          });
  }
}

/** Counts by one label value (the counters' only label). */
export class LabelledCounter {
  readonly #cells: CellsByLabel;

  constructor(counter: Counter, label: string) {
    this.#cells = new CellsByLabel(counter, label);
  }

  inc(label: string): void {
    this.#cells.inc(label);
  }
}

function counter(registry: Registry, name: string, help: string, labelNames: string[]): Counter {
  // A second server on the same registry (tests, relay + interface together) shares the series.
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Counter) return existing;
  return new Counter({ name, help, labelNames, registers: [registry] });
}
