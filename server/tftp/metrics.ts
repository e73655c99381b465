import { Counter, Gauge, type Registry } from "prom-client";

export interface TftpMetrics {
  /** Finished transfers and refused requests, by outcome (`ok`, `not-found`, `aborted-by-client`, `busy`...). */
  transfers: Counter<"result">;
  /** DATA payload bytes put on the wire, retransmissions included. */
  bytesSent: Counter;
  activeTransfers: Gauge;
  /** Datagrams dropped as not-TFTP or not expected on that socket. */
  malformedPackets: Counter<"kind">;
}

/** Registers the TFTP metrics on `registry`, reusing them when a second server shares the registry. */
export function tftpMetrics(registry: Registry): TftpMetrics {
  const existing = registry.getSingleMetric("metalman_tftp_transfers_total");
  if (existing) {
    return {
      transfers: existing as Counter<"result">,
      bytesSent: registry.getSingleMetric("metalman_tftp_sent_bytes_total") as Counter,
      activeTransfers: registry.getSingleMetric("metalman_tftp_active_transfers") as Gauge,
      malformedPackets: registry.getSingleMetric("metalman_tftp_malformed_packets_total") as Counter<"kind">,
    };
  }
  return {
    transfers: new Counter({
      name: "metalman_tftp_transfers_total",
      help: "TFTP read requests by outcome",
      labelNames: ["result"],
      registers: [registry],
    }),
    bytesSent: new Counter({
      name: "metalman_tftp_sent_bytes_total",
      help: "TFTP DATA payload bytes sent, retransmissions included",
      registers: [registry],
    }),
    activeTransfers: new Gauge({
      name: "metalman_tftp_active_transfers",
      help: "TFTP transfers in progress",
      registers: [registry],
    }),
    malformedPackets: new Counter({
      name: "metalman_tftp_malformed_packets_total",
      help: "TFTP datagrams dropped as malformed or unexpected",
      labelNames: ["kind"],
      registers: [registry],
    }),
  };
}
