import { parse as parseYaml } from "yaml";

/**
 * Per-registry settings (`--registry-config FILE`, YAML; docs/images.md):
 *
 * ```yaml
 * registries:
 *   ghcr.io:
 *     mirrors: ["registry.lab:5000/ghcr"]   # tried in order; a path is a repository prefix (rewrite)
 *     mirrorsOnly: true                      # air-gapped: never contact ghcr.io itself
 *   registry.lab:5000:
 *     insecure: true                         # plain HTTP (never for other hosts)
 *     caBundle: /etc/metalman/lab-ca.pem     # TLS trust for this host, besides the system CAs
 * ```
 */
export interface RegistryHostSettings {
  insecure: boolean;
  /** Loopback registries use plain HTTP unless this is set (a local registry with TLS). */
  tls: boolean;
  /** Absolute path of a PEM bundle trusted for this host (besides the system CAs). */
  caBundle?: string;
  mirrors: MirrorEndpoint[];
  mirrorsOnly: boolean;
}

export interface MirrorEndpoint {
  /** `host[:port]`, lower-case. */
  host: string;
  /** Repository prefix on the mirror (`ghcr` in `registry.lab:5000/ghcr`), "" for none. */
  prefix: string;
}

export interface RegistriesConfig {
  hosts: ReadonlyMap<string, RegistryHostSettings>;
  /** `--insecure-registry` hosts (plain HTTP allowed). */
  insecure: ReadonlySet<string>;
  /** Absolute path of `--registry-ca-bundle`: trusted for every registry, besides the system CAs. */
  caBundle?: string;
}

export const EMPTY_REGISTRIES_CONFIG: RegistriesConfig = { hosts: new Map(), insecure: new Set() };

const HOST_KEYS = new Set(["insecure", "tls", "caBundle", "mirrors", "mirrorsOnly"]);

export function parseMirror(text: string, where: string): MirrorEndpoint {
  const trimmed = text
    .trim()
    .replace(/^[a-z]+:\/\//i, "")
    .replace(/\/+$/, "");
  const slash = trimmed.indexOf("/");
  const host = (slash === -1 ? trimmed : trimmed.slice(0, slash)).toLowerCase();
  const prefix = slash === -1 ? "" : trimmed.slice(slash + 1);
  if (!/^[a-z0-9.-]+(?::\d{1,5})?$|^\[[0-9a-f:.]+\](?::\d{1,5})?$/.test(host)) {
    throw new Error(`${where}: mirror ${JSON.stringify(text)} must be host[:port][/prefix]`);
  }
  if (prefix !== "" && !/^[a-z0-9._/-]+$/.test(prefix))
    throw new Error(`${where}: mirror prefix must be a repository path`);
  return { host, prefix };
}

/** Parse the YAML of --registry-config; relative CA paths are resolved by `resolvePath`. */
export function parseRegistriesConfig(
  text: string,
  what: string,
  resolvePath: (p: string) => string,
): Map<string, RegistryHostSettings> {
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 });
  } catch (err) {
    throw new Error(`${what}: invalid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  const hosts = new Map<string, RegistryHostSettings>();
  if (doc === null || doc === undefined) return hosts;
  if (typeof doc !== "object" || Array.isArray(doc)) throw new Error(`${what}: must be a mapping with "registries"`);
  const unknown = Object.keys(doc).filter((k) => k !== "registries");
  if (unknown.length > 0) throw new Error(`${what}: ${unknown[0]}: unknown key (expected registries)`);
  const registries = (doc as { registries?: unknown }).registries;
  if (registries === undefined || registries === null) return hosts;
  if (typeof registries !== "object" || Array.isArray(registries)) {
    throw new Error(`${what}: registries must be a mapping of host to settings`);
  }
  for (const [host, raw] of Object.entries(registries as Record<string, unknown>)) {
    const where = `${what}: registries.${host}`;
    const entry = (raw ?? {}) as Record<string, unknown>;
    if (typeof entry !== "object" || Array.isArray(entry)) throw new Error(`${where}: must be a mapping`);
    for (const key of Object.keys(entry)) {
      if (!HOST_KEYS.has(key)) throw new Error(`${where}.${key}: unknown key (known: ${[...HOST_KEYS].join(", ")})`);
    }
    const bool = (key: string) => {
      const v = entry[key];
      if (v !== undefined && typeof v !== "boolean") throw new Error(`${where}.${key}: must be true or false`);
      return v === true;
    };
    const mirrorsRaw = entry.mirrors ?? [];
    if (!Array.isArray(mirrorsRaw) || !mirrorsRaw.every((m) => typeof m === "string")) {
      throw new Error(`${where}.mirrors: must be a list of host[:port][/prefix]`);
    }
    const caBundle = entry.caBundle;
    if (caBundle !== undefined && (typeof caBundle !== "string" || caBundle === "")) {
      throw new Error(`${where}.caBundle: must name a PEM file`);
    }
    const settings: RegistryHostSettings = {
      insecure: bool("insecure"),
      tls: bool("tls"),
      mirrors: (mirrorsRaw as string[]).map((m) => parseMirror(m, `${where}.mirrors`)),
      mirrorsOnly: bool("mirrorsOnly"),
      ...(typeof caBundle === "string" ? { caBundle: resolvePath(caBundle) } : {}),
    };
    if (settings.mirrorsOnly && settings.mirrors.length === 0) {
      throw new Error(`${where}.mirrorsOnly: needs at least one mirror`);
    }
    hosts.set(host.toLowerCase(), settings);
  }
  return hosts;
}

/** Docker's rule: plain HTTP only for loopback hosts or hosts listed as insecure. */
export function isLoopbackHost(host: string): boolean {
  const name = host
    .replace(/:\d+$/, "")
    .replace(/^\[|\]$/g, "")
    .toLowerCase();
  return name === "localhost" || name === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}
