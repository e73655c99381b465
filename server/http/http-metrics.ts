import { Counter, type Registry } from "prom-client";

export interface HttpMetrics {
  requests: Counter<"route" | "status">;
  artifactBytes: Counter<"kind">;
  malformed: Counter<"route" | "reason">;
}

/**
 * The HTTP server's metrics, registered in the registry passed in. Building two apps on
 * one registry (netboot + health, or tests) reuses the existing collectors instead of
 * failing on a duplicate name.
 */
export function httpMetrics(registry: Registry): HttpMetrics {
  return {
    requests: counter(registry, "metalman_http_requests_total", "HTTP requests answered, by route and status", [
      "route",
      "status",
    ]),
    artifactBytes: counter(registry, "metalman_http_artifact_bytes_total", "Netboot artifact bytes sent over HTTP", [
      "kind",
    ]),
    malformed: counter(registry, "metalman_http_malformed_total", "Malformed HTTP input dropped, by route and reason", [
      "route",
      "reason",
    ]),
  };
}

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: L[]): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<L>;
  return new Counter({ name, help, labelNames, registers: [registry] });
}
