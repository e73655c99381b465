import type { MachineOperationStore } from "./machine-operation.js";
import type { Machine, MachineStatus } from "./types.js";

/**
 * The one interface DHCP, TFTP and HTTP handlers (and later the Redfish, console and
 * attestation rooms) see. The file inventory implements it today; the Kubernetes sync
 * implements the same contract later. Handlers never import a concrete store.
 * docs/backend-contract.md is the long form of this file.
 *
 * Semantics follow the Kubernetes API:
 * - every stored object carries `metadata.resourceVersion`, a decimal string that only grows,
 *   across restarts too; `list()` carries the collection's version;
 * - `watch` resumes from a version, or throws `GoneError` (HTTP 410) so the caller re-lists;
 * - status writes go through `updateStatus`, which owns conflict retries and read-your-writes.
 */
export interface MachineBackend {
  get(name: string): Machine | undefined;
  /** Sorted by name. `resourceVersion` is the version the list is consistent with (resume a watch from it). */
  list(): MachineList;
  /** Lookup by DHCP lease MAC (case-insensitive). Duplicates are reported, first by name wins. */
  byMac(mac: string): Machine | undefined;
  /** Lookup by lease IPv4: the identity of TFTP/HTTP/attest requests. */
  byIp(ip: string): Machine | undefined;
  /**
   * Calls `listener` after every change (add, update, delete, status), in resourceVersion order.
   * The event's version is `event.machine.metadata.resourceVersion` (a DELETED event carries the
   * deletion's version). With `options.resourceVersion`, every change after that version is
   * replayed first (synchronously, before `watch` returns); a version the backend no longer
   * remembers (too old, or from before a restart) throws `GoneError`: list again, then watch
   * from the list's version. Returns an unsubscribe function.
   */
  watch(listener: (event: MachineEvent) => void, options?: WatchOptions): () => void;
  /**
   * Sets the status of `name` to what `mutate` returns for the Machine as the backend holds it
   * at the moment of the write. `mutate` may run more than once (after a conflict it runs again
   * on the fresh Machine): keep it pure. Returning `UNCHANGED` writes nothing.
   *
   * The backend owns conflict retries (a cluster backend re-reads from the API server on 409,
   * never from a stale cache) and read-your-writes: once the promise resolves, `get(name)`
   * returns this write or a newer one. Durable once it resolves (standalone: fsync'ed).
   * Rejects with NotFoundError when the Machine is gone, ConflictError when the retry budget
   * is spent, QuarantinedError when the Machine's state is quarantined and the caller did not
   * pass `allowQuarantined` (see `quarantine()`).
   */
  updateStatus(name: string, mutate: StatusMutation, options?: StatusUpdateOptions): Promise<StatusUpdate>;
  /**
   * What keeps the backend from being ready, for `/readyz` and the console: invalid inventory
   * files, quarantined state files, an unreadable folder. Empty when all is well.
   */
  problems(): BackendProblem[];
  /**
   * Why `name` must not be acted on (no install entry, no attestation, no BMC action), or
   * undefined. Set when the Machine's persisted state could not be trusted (a corrupt state
   * file); only an operator lifts it (`metalman state ...`). The Machine also carries the
   * `StateQuarantined` condition, so `isQuarantined(machine)` answers from the object alone.
   */
  quarantine(name: string): Quarantine | undefined;
  /** Operator intent (spec §2.7): the Redfish and console rooms act through it. */
  readonly operations: MachineOperationStore;
}

export type MachineList = Machine[] & { readonly resourceVersion: string };

export interface WatchOptions {
  /** Replay every change after this version first (a list's or an event's version). */
  resourceVersion?: string;
}

/** What `mutate` returns to write nothing. */
export const UNCHANGED: unique symbol = Symbol.for("metalman.backend.unchanged");
export type Unchanged = typeof UNCHANGED;
export type StatusMutation = (machine: Machine) => MachineStatus | Unchanged;

export interface StatusUpdateOptions {
  /** Write even though the Machine is quarantined (only for conditions that carry no trust, like cloud-init progress). */
  allowQuarantined?: boolean;
}

/** `attempts`: how many times `mutate` ran (1 without conflicts). */
export type StatusUpdate =
  | { outcome: "updated"; machine: Machine; attempts: number }
  | { outcome: "unchanged"; machine: Machine; attempts: number };

export type MachineEvent = { type: "ADDED" | "MODIFIED"; machine: Machine } | { type: "DELETED"; machine: Machine };

export interface BackendProblem {
  /** `inventory`: a file or document; `state`: metalman's own state (corrupt, unwritable). */
  kind: "inventory" | "state";
  /** The file concerned (absolute path). */
  file: string;
  /** The Machine concerned, when known. */
  machine?: string;
  message: string;
}

export interface Quarantine {
  machine: string;
  reason: "CorruptStateFile" | "UnreadableStateFile";
  /** The state file that could not be trusted, and where it was moved (kept for the operator). */
  file: string;
  movedTo?: string;
  message: string;
  since: string;
}

export class ConflictError extends Error {
  readonly code = "CONFLICT";
  constructor(name: string, expected: string, actual: string) {
    super(`machine ${name}: resourceVersion ${expected} is stale (now ${actual})`);
  }
}

export class NotFoundError extends Error {
  readonly code = "NOT_FOUND";
  constructor(name: string, kind = "machine") {
    super(`${kind} ${name} not found`);
  }
}

/** Kubernetes 410 Gone: the requested resourceVersion is no longer available; list again. */
export class GoneError extends Error {
  readonly code = "GONE";
  constructor(
    readonly requested: string,
    readonly oldest: string,
  ) {
    super(`resourceVersion ${requested} is too old (oldest available ${oldest}); list again`);
  }
}

export class QuarantinedError extends Error {
  readonly code = "QUARANTINED";
  constructor(readonly quarantine: Quarantine) {
    super(`machine ${quarantine.machine} is quarantined: ${quarantine.message}`);
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
  /** Forgets a MAC (enrolled as a Machine). */
  remove?(mac: string): boolean;
}

export type {
  MachineOperation,
  MachineOperationEvent,
  MachineOperationList,
  MachineOperationStore,
} from "./machine-operation.js";
export { isQuarantined, QUARANTINE_CONDITION } from "./quarantine.js";
