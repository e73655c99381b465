import {
  ConflictError,
  type MachineBackend,
  type MachineEvent,
  NotFoundError,
} from "../../../server/inventory/backend.js";
import type { Machine, MachineStatus } from "../../../server/inventory/types.js";

/**
 * In-memory MachineBackend with Kubernetes resourceVersion semantics: every write bumps
 * the version, and `updateStatus` with a stale `expectedResourceVersion` throws
 * ConflictError. Knobs simulate other writers and failures.
 */
export class FakeBackend implements MachineBackend {
  readonly #machines = new Map<string, Machine>();
  readonly #listeners = new Set<(event: MachineEvent) => void>();
  #version = 0;
  /** The next N updateStatus calls find that someone else wrote the Machine just before them. */
  concurrentWrites = 0;
  /** When set, updateStatus rejects with it. */
  updateError: Error | undefined;
  updateCalls = 0;

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

  get(name: string): Machine | undefined {
    const machine = this.#machines.get(name);
    return machine ? structuredClone(machine) : undefined;
  }

  list(): Machine[] {
    return [...this.#machines.values()]
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
      .map((m) => structuredClone(m));
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

  async updateStatus(
    name: string,
    mutate: (status: MachineStatus) => MachineStatus,
    options: { expectedResourceVersion?: string } = {},
  ): Promise<Machine> {
    this.updateCalls++;
    const current = this.#machines.get(name);
    if (!current) throw new NotFoundError(name);
    if (this.concurrentWrites > 0) {
      this.concurrentWrites--;
      current.metadata.resourceVersion = String(++this.#version);
    }
    if (this.updateError) throw this.updateError;
    const actual = current.metadata.resourceVersion ?? "";
    if (options.expectedResourceVersion !== undefined && options.expectedResourceVersion !== actual) {
      throw new ConflictError(name, options.expectedResourceVersion, actual);
    }
    const status = mutate(structuredClone(current.status ?? {}));
    const updated: Machine = {
      ...current,
      status,
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
