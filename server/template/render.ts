/**
 * Rendering of netboot-image `.tmpl` files for one Machine (spec/metalman.md §5.5): Go
 * text/template semantics, with dot = { Machine, ApiserverURL, ServeURL, AgentConfigJSON },
 * and the quoting helpers kernelArg, grubQuote and ipxeQuote (netboot-funcs.ts).
 */
import type { Machine } from "../inventory/types.js";
import { agentConfigJSON } from "./agent-config.js";
import { TemplateError } from "./errors.js";
import { GoTemplate } from "./go-template.js";
import { buildTemplateData } from "./machine-data.js";
import { NETBOOT_FUNCS } from "./netboot-funcs.js";

export { TemplateError } from "./errors.js";

/** Cluster-side values templates see (spec §5.5, §5.5.1). */
export interface TemplateContext {
  serveUrl: string;
  apiserverUrl: string;
  cluster: { caCertBase64: string; clusterDNS: string; version: string };
  /** Provider labels merged into Kubelet.Labels (AKS); empty standalone. */
  providerLabels?: Record<string, string>;
}

export interface TemplateRendererOptions {
  /** Parsed templates kept (by name and source); the oldest is dropped beyond this. */
  readonly maxCachedTemplates?: number;
}

/**
 * Renders machine templates, parsing each distinct (name, source) once. Parse failures are
 * cached too, so a broken template in an image costs one parse, not one per request.
 */
export class TemplateRenderer {
  private readonly cache = new Map<string, GoTemplate | TemplateError>();
  private readonly maxEntries: number;

  constructor(options: TemplateRendererOptions = {}) {
    this.maxEntries = Math.max(1, options.maxCachedTemplates ?? 256);
  }

  /** The parsed template for `source` (throws the cached TemplateError for a bad one). */
  parse(source: string, name = "template"): GoTemplate {
    const key = `${name}\u0000${source}`;
    let entry = this.cache.get(key);
    if (entry === undefined) {
      try {
        // Go's builtins plus the quoting helpers (netboot-funcs.ts), like template.Funcs.
        entry = GoTemplate.parse(name, source, NETBOOT_FUNCS);
      } catch (e) {
        if (!(e instanceof TemplateError)) throw e;
        entry = e;
      }
      if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(key, entry);
    }
    if (entry instanceof TemplateError) throw new TemplateError(entry.message, entry.phase, entry.partial);
    return entry;
  }

  /** Renders `source` for `machine` exactly as Go's text/template would. Throws TemplateError. */
  render(source: string, machine: Machine, ctx: TemplateContext, name = "template"): string {
    const tmpl = this.parse(source, name);
    const data = buildTemplateData({
      machine,
      apiserverUrl: ctx.apiserverUrl,
      serveUrl: ctx.serveUrl,
      agentConfigJSON: agentConfigJSON(machine, ctx),
    });
    return tmpl.execute(data);
  }
}

/**
 * Render a `.tmpl` file's source for `machine` exactly as Go's text/template would. Throws
 * TemplateError. Parses on every call; long-lived callers should hold a TemplateRenderer.
 */
export function renderMachineTemplate(
  source: string,
  machine: Machine,
  ctx: TemplateContext,
  name = "template",
): string {
  return new TemplateRenderer({ maxCachedTemplates: 1 }).render(source, machine, ctx, name);
}
