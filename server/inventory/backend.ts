import type { Machine, MachineStatus } from "./types.js";

/**
 * The one interface DHCP, TFTP and HTTP handlers see. The file inventory implements it
 * today; the Kubernetes sync implements it later. Handlers never import a client.
 *
 * Semantics follow the Kubernetes API: every stored Machine carries
 * `metadata.resourceVersion`; `updateStatus` with a stale `resourceVersion` fails with
 * `ConflictError`, and a caller re-reads and retries.
 */
export interface MachineBackend {
  get(name: string): Machine | undefined;
  list(): Machine[];
  /** Lookup by DHCP lease MAC (case-insensitive). Duplicates are reported, first by name wins. */
  byMac(mac: string): Machine | undefined;
  /** Lookup by lease IPv4: the identity of TFTP/HTTP/attest requests. */
  byIp(ip: string): Machine | undefined;
  /** Calls `listener` after every change (add, update, delete, status). Returns an unsubscribe function. */
  watch(listener: (event: MachineEvent) => void): () => void;
  /**
   * Replace the status of `name` with `mutate(current status)`.
   * With `expectedResourceVersion`, fails with ConflictError when the Machine moved on.
   * Resolves to the updated Machine. Writes are crash-safe (the state survives kill -9).
   */
  updateStatus(
    name: string,
    mutate: (status: MachineStatus) => MachineStatus,
    options?: { expectedResourceVersion?: string },
  ): Promise<Machine>;
}

export type MachineEvent = { type: "ADDED" | "MODIFIED"; machine: Machine } | { type: "DELETED"; machine: Machine };

export class ConflictError extends Error {
  readonly code = "CONFLICT";
  constructor(name: string, expected: string, actual: string) {
    super(`machine ${name}: resourceVersion ${expected} is stale (now ${actual})`);
  }
}

export class NotFoundError extends Error {
  readonly code = "NOT_FOUND";
  constructor(name: string) {
    super(`machine ${name} not found`);
  }
}

/** A MAC that asked for DHCP but matches no Machine (never answered, only recorded). */
export interface DiscoveredClient {
  mac: string;
  /** Option 93 client architecture, when sent. */
  arch?: number;
  vendorClass?: string;
  userClass?: string;
  /** Option 97 client machine identifier (UUID/GUID), formatted. */
  uuid?: string;
  relayAddress?: string;
  interface?: string;
  firstSeen: string;
  lastSeen: string;
  count: number;
}

export interface DiscoveryStore {
  record(client: Omit<DiscoveredClient, "firstSeen" | "lastSeen" | "count">): void;
  list(): DiscoveredClient[];
}
