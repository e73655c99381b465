import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import { writeFileAtomic } from "../util/atomic-file.js";
import type { DiscoveredClient, DiscoveryStore } from "./backend.js";

export interface FileDiscoveryStoreOptions {
  /** Persisted as `<stateDir>/discovered.json`. */
  stateDir: string;
  log: Logger;
  metrics?: Registry;
  /** Least recently seen clients are evicted beyond this. Default 10 000. */
  maxEntries?: number;
  /** Writes are coalesced: at most one per interval, never one per packet. Default 5000 ms. */
  flushIntervalMs?: number;
  now?: () => Date;
}

/** Strings come from DHCP packets (untrusted): bound what we keep and show. */
const MAX_TEXT = 255;

/**
 * Unknown MACs that asked for DHCP (never answered, only recorded) so the console can offer
 * "adopt this machine". In memory as an LRU (a Map in last-seen order), persisted coalesced.
 */
export class FileDiscoveryStore implements DiscoveryStore {
  private readonly file: string;
  private readonly maxEntries: number;
  private readonly flushIntervalMs: number;
  private readonly now: () => Date;
  private readonly log: Logger;
  private clients = new Map<string, DiscoveredClient>();
  private dirty = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private closed = false;
  private readonly recorded: Counter | undefined;
  private readonly size: Gauge | undefined;

  constructor(options: FileDiscoveryStoreOptions) {
    this.file = path.join(options.stateDir, "discovered.json");
    this.maxEntries = options.maxEntries ?? 10_000;
    this.flushIntervalMs = options.flushIntervalMs ?? 5000;
    this.now = options.now ?? (() => new Date());
    this.log = options.log.child({ component: "discovery" });
    if (options.metrics) {
      const registry = options.metrics;
      this.recorded =
        (registry.getSingleMetric("metalman_discovery_requests_total") as Counter | undefined) ??
        new Counter({
          name: "metalman_discovery_requests_total",
          help: "DHCP requests from MACs that match no Machine",
          registers: [registry],
        });
      this.size =
        (registry.getSingleMetric("metalman_discovery_clients") as Gauge | undefined) ??
        new Gauge({ name: "metalman_discovery_clients", help: "Unknown MACs remembered", registers: [registry] });
    }
  }

  /** Reads the persisted list; a missing or unreadable file starts empty (logged). */
  async load(): Promise<void> {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(this.file, "utf8"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
        this.log.warn({ file: this.file, err: (err as Error).message }, "discovery: ignoring unreadable state file");
      }
      return;
    }
    const list = Array.isArray(raw) ? raw : [];
    const loaded = new Map<string, DiscoveredClient>();
    for (const item of list.map(sanitiseStored).filter((c): c is DiscoveredClient => c !== undefined)) {
      loaded.set(item.mac, item);
    }
    // Oldest first, so Map order is LRU order again.
    this.clients = new Map([...loaded.entries()].sort(([, a], [, b]) => a.lastSeen.localeCompare(b.lastSeen)));
    this.evict();
    this.size?.set(this.clients.size);
  }

  record(client: Omit<DiscoveredClient, "firstSeen" | "lastSeen" | "count">): void {
    if (this.closed) return;
    const mac = client.mac.toLowerCase().slice(0, 64);
    const at = this.now().toISOString();
    const previous = this.clients.get(mac);
    const next: DiscoveredClient = {
      mac,
      firstSeen: previous?.firstSeen ?? at,
      lastSeen: at,
      count: (previous?.count ?? 0) + 1,
    };
    // Keep what an earlier packet told us when this one omits it (e.g. a relayed REQUEST).
    const merged = { ...pickDetails(previous), ...pickDetails(client) };
    Object.assign(next, merged);
    this.clients.delete(mac);
    this.clients.set(mac, next);
    this.evict();
    this.recorded?.inc();
    this.size?.set(this.clients.size);
    this.dirty = true;
    this.scheduleFlush();
  }

  /** Most recently seen first. */
  list(): DiscoveredClient[] {
    return [...this.clients.values()].reverse().map((c) => ({ ...c }));
  }

  /** Forgets a MAC (e.g. once a Machine was created for it). */
  remove(mac: string): boolean {
    const removed = this.clients.delete(mac.toLowerCase());
    if (removed) {
      this.size?.set(this.clients.size);
      this.dirty = true;
      this.scheduleFlush();
    }
    return removed;
  }

  /** Writes now if anything changed since the last write. */
  async flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    while (this.writing) await this.writing;
    if (!this.dirty) return;
    this.dirty = false;
    const data = JSON.stringify([...this.clients.values()], null, 1) + "\n";
    this.writing = writeFileAtomic(this.file, data)
      .catch((err) => {
        this.dirty = true;
        this.log.error({ err, file: this.file }, "discovery: cannot persist discovered clients");
      })
      .finally(() => {
        this.writing = undefined;
      });
    await this.writing;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer || this.closed) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, this.flushIntervalMs);
    this.flushTimer.unref();
  }

  private evict(): void {
    while (this.clients.size > this.maxEntries) {
      const oldest = this.clients.keys().next().value as string;
      this.clients.delete(oldest);
    }
  }
}

type Details = Partial<
  Pick<DiscoveredClient, "arch" | "vendorClass" | "userClass" | "uuid" | "relayAddress" | "interface">
>;

function pickDetails(source: Partial<DiscoveredClient> | undefined): Details {
  const out: Details = {};
  if (!source) return out;
  if (typeof source.arch === "number" && Number.isInteger(source.arch)) out.arch = source.arch;
  for (const key of ["vendorClass", "userClass", "uuid", "relayAddress", "interface"] as const) {
    const value = source[key];
    if (typeof value === "string" && value !== "") out[key] = value.slice(0, MAX_TEXT);
  }
  return out;
}

function sanitiseStored(value: unknown): DiscoveredClient | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.mac !== "string" || typeof v.firstSeen !== "string" || typeof v.lastSeen !== "string") return undefined;
  return {
    mac: v.mac.toLowerCase().slice(0, 64),
    firstSeen: v.firstSeen,
    lastSeen: v.lastSeen,
    count: Number.isSafeInteger(v.count) ? (v.count as number) : 1,
    ...pickDetails(v as Partial<DiscoveredClient>),
  };
}
