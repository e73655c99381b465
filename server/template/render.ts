// PLACEHOLDER (replaced by the template engine work): the signatures other modules code against.
import type { Machine } from "../inventory/types.js";

/** Cluster-side values templates see (spec §5.5, §5.5.1). */
export interface TemplateContext {
  serveUrl: string;
  apiserverUrl: string;
  cluster: { caCertBase64: string; clusterDNS: string; version: string };
  /** Provider labels merged into Kubelet.Labels (AKS); empty standalone. */
  providerLabels?: Record<string, string>;
}

export class TemplateError extends Error {
  constructor(
    message: string,
    readonly phase: "parse" | "exec",
    readonly partial = "",
  ) {
    super(message);
  }
}

/** Render a `.tmpl` file's source for `machine` exactly as Go's text/template would. Throws TemplateError. */
export function renderMachineTemplate(
  source: string,
  machine: Machine,
  ctx: TemplateContext,
  name = "template",
): string {
  void machine;
  void ctx;
  void name;
  throw new TemplateError("template engine not implemented yet", "exec", source.slice(0, 0));
}
