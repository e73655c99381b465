import { randomUUID } from "node:crypto";
import { readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { writeFileAtomic } from "../util/atomic-file.js";
import { type BackendProblem, NotFoundError, UNCHANGED, type Unchanged } from "./backend.js";
import { canonicalJson } from "./canonical-json.js";
import { moveAside } from "./corrupt-file.js";
import { deepFreeze } from "./deep-freeze.js";
import { KeyedLock } from "./keyed-lock.js";
import {
  AlreadyExistsError,
  InvalidOperationError,
  type MachineOperation,
  type MachineOperationEvent,
  type MachineOperationInput,
  type MachineOperationList,
  type MachineOperationStatus,
  type MachineOperationStore,
} from "./machine-operation.js";
import {
  validateOperationInput,
  validateOperationStatus,
  validateStoredOperation,
} from "./machine-operation-schema.js";
import type { ResourceVersionClock } from "./resource-version.js";
import { stateFileName } from "./state-file-name.js";
import { API_VERSION } from "./types.js";
import { WatchHub } from "./watch-hub.js";

/**
 * MachineOperations of a standalone appliance: one JSON file per operation in
 * `<stateDir>/operations/`, written crash-safe before a call resolves. A file that does not
 * parse or validate is moved aside (never overwritten, never acted on) and reported.
 */
export class FileMachineOperationStore implements MachineOperationStore {
  readonly dir: string;
  private readonly ops = new Map<string, MachineOperation>();
  private readonly locks = new KeyedLock();
  private readonly hub: WatchHub<MachineOperationEvent>;
  private readonly problemList: BackendProblem[] = [];

  constructor(
    stateDir: string,
    private readonly clock: ResourceVersionClock,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.dir = path.join(stateDir, "operations");
    this.hub = new WatchHub(log, () => clock.now());
  }

  /** Call after the clock is open. */
  async load(): Promise<void> {
    this.hub.reset();
    let files: string[];
    try {
      files = (await readdir(this.dir)).filter((f) => f.endsWith(".json") && !f.startsWith(".")).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    for (const file of files) {
      const full = path.join(this.dir, file);
      let value: unknown;
      try {
        value = JSON.parse(await readFile(full, "utf8"));
      } catch (err) {
        value = err;
      }
      if (validateStoredOperation(value) && stateFileName(value.metadata.name) === file) {
        this.ops.set(value.metadata.name, this.stamp(value));
        continue;
      }
      const movedTo = await moveAside(full).catch(() => undefined);
      const message = `MachineOperation file ${full} is corrupt; ${movedTo ? `moved to ${movedTo}` : "could not be moved aside"}, not acted on`;
      this.log.error({ file: full, movedTo }, `operations: ${message}`);
      this.problemList.push({ kind: "state", file: full, message });
    }
  }

  problems(): BackendProblem[] {
    return [...this.problemList];
  }

  get(name: string): MachineOperation | undefined {
    return this.ops.get(name);
  }

  list(): MachineOperationList {
    const items = [...this.ops.keys()].sort().map((name) => this.ops.get(name)!);
    return Object.assign(items, { resourceVersion: this.clock.now() });
  }

  watch(listener: (event: MachineOperationEvent) => void, options: { resourceVersion?: string } = {}): () => void {
    return this.hub.watch(listener, options.resourceVersion);
  }

  create(input: MachineOperationInput): Promise<MachineOperation> {
    const errors = validateOperationInput(input);
    if (errors.length > 0) return Promise.reject(new InvalidOperationError(errors));
    const name = input.metadata.name;
    return this.locks.run(name, async () => {
      if (this.ops.has(name)) throw new AlreadyExistsError(name);
      const { labels, annotations } = input.metadata;
      const op: MachineOperation = {
        apiVersion: API_VERSION,
        kind: "MachineOperation",
        metadata: {
          name,
          uid: randomUUID(),
          generation: 1,
          creationTimestamp: this.now()
            .toISOString()
            .replace(/\.\d{3}Z$/, "Z"),
          ...(labels ? { labels: structuredClone(labels) } : {}),
          ...(annotations ? { annotations: structuredClone(annotations) } : {}),
        },
        spec: structuredClone(input.spec),
      };
      await this.persist(op);
      const stored = this.stamp(op);
      this.ops.set(name, stored);
      this.hub.emit(stored.metadata.resourceVersion!, { type: "ADDED", operation: stored });
      return stored;
    });
  }

  updateStatus(
    name: string,
    mutate: (operation: MachineOperation) => MachineOperationStatus | Unchanged,
  ): Promise<MachineOperation> {
    return this.locks.run(name, async () => {
      const current = this.ops.get(name);
      if (!current) throw new NotFoundError(name, "machineoperation");
      const status = mutate(current);
      if (status === UNCHANGED || canonicalJson(status) === canonicalJson(current.status ?? {})) return current;
      const errors = validateOperationStatus(status);
      if (errors.length > 0) throw new InvalidOperationError(errors);
      const { resourceVersion: _rv, ...metadata } = current.metadata;
      const next: MachineOperation = { ...current, metadata, status: structuredClone(status) };
      await this.persist(next);
      const stored = this.stamp(next);
      this.ops.set(name, stored);
      this.hub.emit(stored.metadata.resourceVersion!, { type: "MODIFIED", operation: stored });
      return stored;
    });
  }

  delete(name: string): Promise<boolean> {
    return this.locks.run(name, async () => {
      const current = this.ops.get(name);
      if (!current) return false;
      await rm(path.join(this.dir, stateFileName(name)), { force: true });
      this.ops.delete(name);
      const version = this.clock.next();
      const gone = deepFreeze({ ...current, metadata: { ...current.metadata, resourceVersion: version } });
      this.hub.emit(version, { type: "DELETED", operation: gone });
      return true;
    });
  }

  async close(): Promise<void> {
    this.hub.clear();
    await this.locks.idle();
  }

  /** The version is not stored: it is handed out again (higher) at every load. */
  private async persist(op: MachineOperation): Promise<void> {
    const { resourceVersion: _rv, ...metadata } = op.metadata;
    const file = path.join(this.dir, stateFileName(op.metadata.name));
    await writeFileAtomic(file, `${JSON.stringify({ ...op, metadata }, null, 2)}\n`);
  }

  private stamp(op: MachineOperation): MachineOperation {
    return deepFreeze({ ...op, metadata: { ...op.metadata, resourceVersion: this.clock.next() } });
  }
}
