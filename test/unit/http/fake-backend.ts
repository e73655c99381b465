import {
  type BackendProblem,
  ConflictError,
  type MachineBackend,
  type MachineEvent,
  type MachineList,
  type MachineOperationStore,
  NotFoundError,
  type Quarantine,
  QuarantinedError,
  type StatusMutation,
  type StatusUpdate,
  type StatusUpdateOptions,
} from "../../../server/inventory/backend.js";
import { updateWithConflictRetry } from "../../../server/inventory/conflict-retry.js";
import type { Machine, MachineStatus } from "../../../server/inventory/types.js";

/** An operations store for fakes whose tests never touch operations: every call throws (list: none). */
const unused = (call: string) => () => {
  throw new Error(`fake backend: operations.${call} is not used by this test`);
};
export const unusedOperations: MachineOperationStore = {
  get: unused("get"),
  // /pxe/disable asks whether a HostReplace is pending (issue 6): none in these fakes.
  list: () => Object.assign([], { resourceVersion: "0" }),
  watch: unused("watch"),
  create: unused("create"),
  updateStatus: unused("updateStatus"),
  delete: unused("delete"),
};

/**
 * In-memory MachineBackend that behaves like the cluster backend will: every write bumps
 * the resourceVersion, a write based on a stale read fails with a conflict inside the
 * backend, and `updateStatus` re-reads and re-runs `mutate` (conflict-retry.ts), so callers
 * never see conflicts unless the retry budget is spent. Knobs simulate other writers and failures.
 */
export class FakeBackend implements MachineBackend {
  readonly #machines = new Map<string, Machine>();
  readonly #listeners = new Set<(event: MachineEvent) => void>();
  readonly #quarantined = new Map<string, Quarantine>();
  #version = 0;
  /** The next N write attempts find that someone else wrote the Machine just before them. */
  concurrentWrites = 0;
  /** When set, writes reject with it. */
  updateError: Error | undefined;
  /** Write attempts that reached the "API" (conflicting ones included). */
  updateCalls = 0;
  operations: MachineOperationStore = unusedOperations;
  problemList: BackendProblem[] = [];

  constructor(machines: Machine[] = []) {
    for (const machine of machines) this.put(machine);
  }

  put(machine: Machine): Machine {
    const stored: Machine = structuredClone(machine);
    stored.metadata.resourceVersion = String(++this.#version);
    const existed = this.#machines.has(stored.metadata.name);
    this.#machines.set(stored.metadata.name, stored);
    this.#notify({ type: existed ? "MODIFIED" : "ADDED", machine: structuredClone(stored) });
    return structuredClone(stored);
  }

  quarantineMachine(name: string, quarantine: Quarantine): void {
    this.#quarantined.set(name, quarantine);
  }

  get(name: string): Machine | undefined {
    const machine = this.#machines.get(name);
    return machine ? structuredClone(machine) : undefined;
  }

  list(): MachineList {
    const items = [...this.#machines.values()]
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
      .map((m) => structuredClone(m));
    return Object.assign(items, { resourceVersion: String(this.#version) });
  }

  byMac(mac: string): Machine | undefined {
    const wanted = mac.toLowerCase();
    return this.list().find((m) => m.spec.pxe?.dhcpLeases?.some((l) => l.mac.toLowerCase() === wanted));
  }

  byIp(ip: string): Machine | undefined {
    return this.list().find((m) => m.spec.pxe?.dhcpLeases?.some((l) => l.ipv4 === ip));
  }

  watch(listener: (event: MachineEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  problems(): BackendProblem[] {
    return this.problemList;
  }

  quarantine(name: string): Quarantine | undefined {
    return this.#quarantined.get(name);
  }

  updateStatus(name: string, mutate: StatusMutation, options: StatusUpdateOptions = {}): Promise<StatusUpdate> {
    const quarantine = this.#quarantined.get(name);
    if (quarantine && !options.allowQuarantined) return Promise.reject(new QuarantinedError(quarantine));
    return updateWithConflictRetry(
      name,
      async () => this.get(name),
      async (read, status) => this.#write(name, read.metadata.resourceVersion ?? "", status),
      mutate,
      { attempts: 5, delayMs: 1 },
    );
  }

  /** The API server's side: an update with a stale resourceVersion is a 409. */
  async #write(name: string, expected: string, status: MachineStatus): Promise<Machine> {
    this.updateCalls++;
    const current = this.#machines.get(name);
    if (!current) throw new NotFoundError(name);
    if (this.concurrentWrites > 0) {
      this.concurrentWrites--;
      current.metadata.resourceVersion = String(++this.#version);
    }
    if (this.updateError) throw this.updateError;
    const actual = current.metadata.resourceVersion ?? "";
    if (expected !== actual) throw new ConflictError(name, expected, actual);
    const updated: Machine = {
      ...current,
      status: structuredClone(status),
      metadata: { ...current.metadata, resourceVersion: String(++this.#version) },
    };
    this.#machines.set(name, updated);
    this.#notify({ type: "MODIFIED", machine: structuredClone(updated) });
    return structuredClone(updated);
  }

  #notify(event: MachineEvent): void {
    for (const listener of this.#listeners) listener(event);
  }
}
