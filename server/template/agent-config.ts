/**
 * `.AgentConfigJSON` (spec/metalman.md §5.5.1): the agent configuration built from the Machine
 * and cluster values, serialised byte-for-byte like Go's json.MarshalIndent(cfg, "    ", "  ")
 * of upstream's struct: fixed field order, sorted map keys, `null` for a nil list, omitted
 * empty optional fields, and `<`, `>`, `&` escaped as \u003c, \u003e, \u0026.
 */
import type { DownloadSpec, Machine } from "../inventory/types.js";
import type { TemplateContext } from "./render.js";

/** A JSON value in Go's encoding order: objects keep insertion order (struct field order). */
export type GoJSON = string | number | boolean | null | GoJSON[] | GoJSONObject;
export type GoJSONObject = Map<string, GoJSON>;

const LOWER_HEX = "0123456789abcdef";

/** Go's encoding/json string encoding with HTML escaping (the default). */
export function goJSONString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case "\\":
        out += "\\\\";
        continue;
      case "\n":
        out += "\\n";
        continue;
      case "\r":
        out += "\\r";
        continue;
      case "\t":
        out += "\\t";
        continue;
    }
    if (cp < 0x20 || ch === "<" || ch === ">" || ch === "&" || cp === 0x2028 || cp === 0x2029) {
      out += `\\u${[12, 8, 4, 0].map((sh) => LOWER_HEX[(cp >> sh) & 0xf]).join("")}`;
    } else if (cp >= 0xd800 && cp <= 0xdfff) {
      out += "\\ufffd"; // a lone surrogate is invalid UTF-8 to Go
    } else out += ch;
  }
  return `${out}"`;
}

/** json.MarshalIndent(v, prefix, indent). */
export function goMarshalIndent(v: GoJSON, prefix: string, indent: string): string {
  const write = (x: GoJSON, depth: number): string => {
    if (x === null) return "null";
    if (typeof x === "string") return goJSONString(x);
    if (typeof x === "number" || typeof x === "boolean") return String(x);
    const inner = `\n${prefix}${indent.repeat(depth + 1)}`;
    const close = `\n${prefix}${indent.repeat(depth)}`;
    if (Array.isArray(x)) {
      if (x.length === 0) return "[]";
      return `[${x.map((e) => inner + write(e, depth + 1)).join(",")}${close}]`;
    }
    if (x.size === 0) return "{}";
    const parts = [...x].map(([k, e]) => `${inner}${goJSONString(k)}: ${write(e, depth + 1)}`);
    return `{${parts.join(",")}${close}}`;
  };
  return write(v, 0);
}

function sortedStringMap(m: Readonly<Record<string, string>>): GoJSONObject {
  // Go sorts map keys byte-wise; for UTF-16 strings of BMP text this equals code-unit order
  // except for surrogates, so compare UTF-8 bytes to be exact.
  const keys = Object.keys(m).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return new Map(keys.map((k) => [k, m[k]]));
}

function withV(version: string): string {
  return version === "" || version.startsWith("v") ? version : `v${version}`;
}

function downloadEntry(d: DownloadSpec | undefined): GoJSONObject | null {
  if (!d) return null;
  const o: GoJSONObject = new Map();
  if (d.baseURL) o.set("BaseURL", d.baseURL);
  if (d.url) o.set("URL", d.url);
  if (d.version) o.set("Version", d.version);
  return o.size > 0 ? o : null;
}

/** The agent configuration object, in upstream's field order. */
export function buildAgentConfig(machine: Machine, ctx: TemplateContext): GoJSONObject {
  const k8s = machine.spec?.kubernetes;
  const labels: Record<string, string> = { ...(k8s?.nodeLabels ?? {}), ...(ctx.providerLabels ?? {}) };
  const cfg: GoJSONObject = new Map<string, GoJSON>([
    ["MachineName", machine.metadata.name],
    [
      "Cluster",
      new Map<string, GoJSON>([
        ["CaCertBase64", ctx.cluster.caCertBase64],
        ["ClusterDNS", ctx.cluster.clusterDNS],
        ["Version", withV(k8s?.version || ctx.cluster.version)],
      ]),
    ],
    [
      "Kubelet",
      new Map<string, GoJSON>([
        ["ApiServer", ctx.apiserverUrl],
        ["Auth", new Map()],
        ["Labels", sortedStringMap(labels)],
        ["RegisterWithTaints", k8s?.registerWithTaints ? [...k8s.registerWithTaints] : null],
      ]),
    ],
    [
      "CRI",
      new Map<string, GoJSON>([
        ["Containerd", new Map()],
        ["Runc", new Map()],
      ]),
    ],
    ["CNI", new Map()],
  ]);
  const agent = machine.spec?.agent;
  if (agent?.image) cfg.set("OCIImage", agent.image);
  if (ctx.serveUrl) cfg.set("Attest", new Map([["URL", ctx.serveUrl]]));
  const dl = agent?.downloads;
  if (dl) {
    const downloads: GoJSONObject = new Map();
    const entries: [string, DownloadSpec | undefined][] = [
      ["Kubernetes", dl.kubernetes],
      ["Containerd", dl.containerd],
      ["Runc", dl.runc],
      ["CNI", dl.cni],
      ["Crictl", dl.crictl],
    ];
    for (const [key, d] of entries) {
      const e = downloadEntry(d);
      if (e) downloads.set(key, e);
    }
    if (downloads.size > 0) cfg.set("Downloads", downloads);
  }
  return cfg;
}

/** AgentConfigJSON: 4-space line prefix, 2-space indent, ready to sit in a YAML `content: |` block. */
export function agentConfigJSON(machine: Machine, ctx: TemplateContext): string {
  return goMarshalIndent(buildAgentConfig(machine, ctx), "    ", "  ");
}
