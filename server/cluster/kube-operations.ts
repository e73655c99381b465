/**
 * MachineOperations from the API server (spec §2.7, §8.9) behind the backend's
 * `MachineOperationStore`: watched (all of them: ownership is the BMC flows' decision), created
 * with POST, status written through `/status` with a fresh GET and conflict retry, deleted (the
 * flows' `ttlSecondsAfterFinished` cleanup) with DELETE.
 */
import type { Logger } from "pino";
import { ConflictError, NotFoundError, UNCHANGED, type Unchanged } from "../inventory/backend.js";
import { type ConflictRetryOptions, DEFAULT_CONFLICT_RETRY } from "../inventory/conflict-retry.js";
import { deepFreeze } from "../inventory/deep-freeze.js";
import {
  AlreadyExistsError,
  InvalidOperationError,
  type MachineOperation,
  type MachineOperationEvent,
  type MachineOperationInput,
  type MachineOperationList,
  type MachineOperationStatus,
  type MachineOperationStore,
} from "../inventory/machine-operation.js";
import { validateOperationInput, validateOperationStatus } from "../inventory/machine-operation-schema.js";
import { compareVersions, isVersion } from "../inventory/resource-version.js";
import { WatchHub } from "../inventory/watch-hub.js";
import { type KubeApi, statusOf } from "./kube-api.js";
import { type KubeObject, Reflector } from "./reflector.js";

export const OPERATIONS_PATH = "/apis/unbounded-cloud.io/v1alpha3/machineoperations";

export class KubeOperationStore implements MachineOperationStore {
  readonly #api: KubeApi;
  readonly #retry: ConflictRetryOptions;
  readonly #ops = new Map<string, MachineOperation>();
  readonly #hub: WatchHub<MachineOperationEvent>;
  readonly #reflector: Reflector;
  #version = "0";

  constructor(o: {
    api: KubeApi;
    log: Logger;
    retry?: ConflictRetryOptions;
    backoffMs?: number;
    maxBackoffMs?: number;
  }) {
    this.#api = o.api;
    this.#retry = o.retry ?? DEFAULT_CONFLICT_RETRY;
    this.#hub = new WatchHub(o.log, () => this.#version);
    this.#reflector = new Reflector(
      { api: o.api, path: OPERATIONS_PATH, log: o.log, backoffMs: o.backoffMs, maxBackoffMs: o.maxBackoffMs },
      {
        onList: (items, rv) => {
          const seen = new Set<string>();
          for (const item of items) {
            seen.add(item.metadata.name);
            this.#apply("ADDED", item, rv);
          }
          for (const [name, op] of [...this.#ops]) if (!seen.has(name)) this.#remove(op, rv);
          this.#version = rv;
        },
        onEvent: (type, object) => {
          if (type === "DELETED") {
            const op = this.#ops.get(object.metadata.name);
            if (op) this.#remove(op, object.metadata.resourceVersion ?? this.#version);
          } else this.#apply(type, object, object.metadata.resourceVersion ?? this.#version);
        },
        onVersion: (rv) => {
          this.#version = rv;
        },
      },
    );
  }

  start(): void {
    this.#reflector.start();
  }

  async stop(): Promise<void> {
    await this.#reflector.stop();
    this.#hub.clear();
  }

  #apply(type: "ADDED" | "MODIFIED", object: KubeObject, rv: string): void {
    const before = this.#ops.get(object.metadata.name);
    const version = object.metadata.resourceVersion ?? "";
    if (before && isVersion(version) && isVersion(before.metadata.resourceVersion ?? "")) {
      if (compareVersions(version, before.metadata.resourceVersion!) <= 0) return;
    }
    const op = toOperation(object);
    this.#ops.set(op.metadata.name, op);
    this.#hub.emit(rv, { type: before ? "MODIFIED" : type, operation: op });
  }

  #remove(op: MachineOperation, rv: string): void {
    this.#ops.delete(op.metadata.name);
    const gone = deepFreeze({ ...op, metadata: { ...op.metadata, resourceVersion: rv } }) as MachineOperation;
    this.#hub.emit(rv, { type: "DELETED", operation: gone });
  }

  get(name: string): MachineOperation | undefined {
    return this.#ops.get(name);
  }

  list(): MachineOperationList {
    const items = [...this.#ops.values()].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    return Object.assign(items, { resourceVersion: this.#version });
  }

  watch(listener: (event: MachineOperationEvent) => void, options: { resourceVersion?: string } = {}): () => void {
    return this.#hub.watch(listener, options.resourceVersion);
  }

  async create(input: MachineOperationInput): Promise<MachineOperation> {
    const errors = validateOperationInput(input);
    if (errors.length > 0) throw new InvalidOperationError(errors);
    const body = {
      apiVersion: "unbounded-cloud.io/v1alpha3",
      kind: "MachineOperation",
      metadata: {
        name: input.metadata.name,
        ...(input.metadata.labels ? { labels: input.metadata.labels } : {}),
        ...(input.metadata.annotations ? { annotations: input.metadata.annotations } : {}),
      },
      spec: input.spec,
    };
    try {
      const created = await this.#api.request<KubeObject>("POST", OPERATIONS_PATH, body);
      this.#apply("ADDED", created, created.metadata.resourceVersion ?? this.#version);
      return this.#ops.get(created.metadata.name) ?? toOperation(created);
    } catch (err) {
      if (statusOf(err) === 409) throw new AlreadyExistsError(input.metadata.name);
      throw err;
    }
  }

  async updateStatus(
    name: string,
    mutate: (operation: MachineOperation) => MachineOperationStatus | Unchanged,
  ): Promise<MachineOperation> {
    const path = `${OPERATIONS_PATH}/${encodeURIComponent(name)}`;
    for (let attempt = 1; ; attempt++) {
      let raw: KubeObject;
      try {
        raw = await this.#api.request<KubeObject>("GET", path);
      } catch (err) {
        if (statusOf(err) === 404) throw new NotFoundError(name, "machineoperation");
        throw err;
      }
      const op = toOperation(raw);
      const status = mutate(op);
      if (status === UNCHANGED) return op;
      const errors = validateOperationStatus(status);
      if (errors.length > 0) throw new InvalidOperationError(errors);
      try {
        const written = await this.#api.request<KubeObject>("PUT", `${path}/status`, { ...raw, status });
        this.#apply("MODIFIED", written, written.metadata.resourceVersion ?? this.#version);
        return this.#ops.get(name) ?? toOperation(written);
      } catch (err) {
        if (statusOf(err) === 404) throw new NotFoundError(name, "machineoperation");
        if (statusOf(err) !== 409) throw err;
        if (attempt >= this.#retry.attempts) {
          throw new ConflictError(name, String(raw.metadata.resourceVersion), "newer");
        }
        const base = this.#retry.delayMs * 2 ** (attempt - 1);
        await new Promise((r) => setTimeout(r, base / 2 + Math.random() * base));
      }
    }
  }

  async delete(name: string): Promise<boolean> {
    try {
      await this.#api.request("DELETE", `${OPERATIONS_PATH}/${encodeURIComponent(name)}`, {
        apiVersion: "v1",
        kind: "DeleteOptions",
        propagationPolicy: "Background",
      });
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw err;
    }
  }
}

function toOperation(o: KubeObject): MachineOperation {
  const m = o.metadata as Record<string, unknown>;
  return deepFreeze({
    apiVersion: "unbounded-cloud.io/v1alpha3",
    kind: "MachineOperation",
    metadata: Object.fromEntries(
      ["name", "uid", "generation", "resourceVersion", "creationTimestamp", "labels", "annotations"]
        .filter((k) => m[k] !== undefined)
        .map((k) => [k, m[k]]),
    ) as MachineOperation["metadata"],
    spec: (o.spec ?? {}) as MachineOperation["spec"],
    ...(o.status !== undefined ? { status: o.status as MachineOperationStatus } : {}),
  }) as MachineOperation;
}
