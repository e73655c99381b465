import type { Logger } from "pino";
import type { MachineBackend } from "../../inventory/backend.js";
import type { MachineOperation } from "../../inventory/machine-operation.js";
import type { Machine } from "../../inventory/types.js";
import type { BmcDriver } from "../driver.js";
import type { EventSink } from "./bmc-calls.js";
import { type FlowClock, systemClock } from "./clock.js";
import { MachineFlow, type Requeue } from "./machine-flow.js";
import { isHostOperation, isTerminal, OperationFlow } from "./operation-flow.js";
import { type BmcFlowOptions, DEFAULT_FLOW_OPTIONS } from "./options.js";

/**
 * Makes the driver of a Machine's BMC, or undefined when it has none. The reconciler owns
 * what it returns: it calls `close()` when the Machine's BMC spec changes, when the Machine is
 * deleted, and at `stop()`. So return a new driver (or a reference-counted one) per call.
 */
export type DriverFactory = (machine: Machine) => BmcDriver | undefined;

export interface BmcReconcilerDeps {
  backend: MachineBackend;
  driverFor: DriverFactory;
  events: EventSink;
  log: Pick<Logger, "warn" | "debug">;
  clock?: FlowClock;
  options?: Partial<BmcFlowOptions>;
}

/**
 * The BMC room's control loop (docs/bmc-flows.md). It follows the backend's watches (Machines
 * and MachineOperations), runs the counter flows (MachineFlow) and the host operations
 * (OperationFlow) through injected drivers, and requeues on its injected clock. A key
 * (`m/<machine>`, `o/<operation>`) is never reconciled twice at once; a change that arrives
 * meanwhile runs it once more afterwards. A Machine with a host operation in progress is
 * left to the operation. Quarantined Machines are refused (spec: no BMC action without trusted state).
 */
export class BmcReconciler {
  readonly #backend: MachineBackend;
  readonly #driverFor: DriverFactory;
  readonly #events: EventSink;
  readonly #log: Pick<Logger, "warn" | "debug">;
  readonly #clock: FlowClock;
  readonly #options: BmcFlowOptions;
  readonly #machineFlow: MachineFlow;
  readonly #operationFlow: OperationFlow;
  readonly #queue = new Set<string>();
  readonly #running = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #timers = new Map<string, { at: number; handle: unknown }>();
  readonly #drivers = new Map<string, { key: string; driver: BmcDriver }>();
  readonly #failures = new Map<string, number>();
  /** After a failure a key waits out its back-off, even when its own status write re-triggers it. */
  readonly #backoffUntil = new Map<string, number>();
  /** The quarantine message last reported per Machine: one refusal event per quarantine, not per event. */
  readonly #refused = new Map<string, string>();
  readonly #unsubscribe: Array<() => void> = [];
  #idleWaiters: Array<() => void> = [];
  #stopped = false;

  constructor(deps: BmcReconcilerDeps) {
    this.#backend = deps.backend;
    this.#driverFor = deps.driverFor;
    this.#events = deps.events;
    this.#log = deps.log;
    this.#clock = deps.clock ?? systemClock;
    this.#options = { ...DEFAULT_FLOW_OPTIONS, ...deps.options };
    const ctx = { backend: this.#backend, events: this.#events, clock: this.#clock, options: this.#options };
    this.#machineFlow = new MachineFlow(ctx);
    this.#operationFlow = new OperationFlow({ ...ctx, driverFor: (m) => this.#driver(m) });
  }

  /** Lists, then watches from the lists' versions, so no change between the two is missed. */
  start(): void {
    const machines = this.#backend.list();
    this.#unsubscribe.push(
      this.#backend.watch(
        (event) => {
          const name = event.machine.metadata.name;
          if (event.type === "DELETED") return this.#forgetMachine(name);
          this.#enqueue(`m/${name}`);
        },
        { resourceVersion: machines.resourceVersion },
      ),
    );
    const operations = this.#backend.operations.list();
    this.#unsubscribe.push(
      this.#backend.operations.watch(
        (event) => {
          if (event.type === "DELETED") return this.#cancel(`o/${event.operation.metadata.name}`);
          this.#enqueue(`o/${event.operation.metadata.name}`);
          // A finished operation hands its Machines back to the counter flows.
          if (isTerminal(event.operation)) {
            for (const t of event.operation.status?.targets ?? []) this.#enqueue(`m/${t.machineRef}`);
          }
        },
        { resourceVersion: operations.resourceVersion },
      ),
    );
    for (const m of machines) this.#enqueue(`m/${m.metadata.name}`);
    for (const op of operations) this.#enqueue(`o/${op.metadata.name}`);
  }

  /** Resolves when nothing is queued or running (timers may still be set). For tests and shutdown. */
  idle(): Promise<void> {
    if (this.#queue.size === 0 && this.#running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops watching and requeuing, waits for reconciles in flight, then closes every driver. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    for (const { handle } of this.#timers.values()) this.#clock.clearTimeout(handle);
    this.#timers.clear();
    this.#queue.clear();
    await this.idle();
    await Promise.all([...this.#drivers.keys()].map((name) => this.#closeDriver(name)));
  }

  #enqueue(key: string): void {
    if (this.#stopped) return;
    const until = this.#backoffUntil.get(key);
    if (until !== undefined && until > this.#clock.now()) {
      this.#schedule(key, until - this.#clock.now());
      return;
    }
    if (this.#running.has(key)) {
      this.#dirty.add(key);
      return;
    }
    this.#queue.add(key);
    this.#pump();
  }

  #pump(): void {
    for (const key of this.#queue) {
      if (this.#running.size >= this.#options.concurrency) break;
      if (this.#running.has(key)) continue;
      this.#queue.delete(key);
      this.#running.add(key);
      void this.#run(key);
    }
  }

  async #run(key: string): Promise<void> {
    let requeue: Requeue;
    try {
      requeue = key.startsWith("m/")
        ? await this.#reconcileMachine(key.slice(2))
        : await this.#reconcileOperation(key.slice(2));
      this.#failures.delete(key);
      this.#backoffUntil.delete(key);
    } catch (err) {
      const failures = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, failures);
      requeue = Math.min(this.#options.errorBackoffMaxMs, this.#options.errorBackoffMinMs * 2 ** (failures - 1));
      this.#backoffUntil.set(key, this.#clock.now() + requeue);
      this.#log.debug({ err, key, failures, retryInMs: requeue }, "BMC reconcile failed; backing off");
      if (key.startsWith("m/")) {
        await this.#machineFlow.noteFailure(key.slice(2), err).catch((e: unknown) => {
          this.#log.warn({ err: e, key }, "could not record a BMC failure on the Machine");
        });
      }
    } finally {
      this.#running.delete(key);
    }
    if (this.#dirty.delete(key) && !this.#backoffUntil.has(key)) this.#queue.add(key);
    else this.#schedule(key, requeue);
    this.#pump();
    if (this.#queue.size === 0 && this.#running.size === 0) {
      for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
  }

  #schedule(key: string, ms: Requeue): void {
    if (ms === undefined || this.#stopped) return;
    if (ms <= 0) {
      this.#queue.add(key);
      return;
    }
    const at = this.#clock.now() + ms;
    const existing = this.#timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) this.#clock.clearTimeout(existing.handle);
    const handle = this.#clock.setTimeout(() => {
      this.#timers.delete(key);
      this.#backoffUntil.delete(key);
      this.#enqueue(key);
    }, ms);
    this.#timers.set(key, { at, handle });
  }

  #cancel(key: string): void {
    const timer = this.#timers.get(key);
    if (timer) this.#clock.clearTimeout(timer.handle);
    this.#timers.delete(key);
    this.#queue.delete(key);
  }

  async #reconcileMachine(name: string): Promise<Requeue> {
    const machine = this.#backend.get(name);
    if (!machine) return undefined;
    const quarantine = this.#backend.quarantine(name);
    if (quarantine) {
      if (this.#refused.get(name) !== quarantine.message) {
        this.#refused.set(name, quarantine.message);
        this.#events.emit({
          step: "bmc.refused",
          result: "ignored",
          machine: name,
          reason: "quarantined",
          detail: { quarantine: quarantine.reason, file: quarantine.file },
        });
      }
      return undefined;
    }
    this.#refused.delete(name);
    const driver = this.#driver(machine);
    if (!driver) return undefined;
    if (this.#activeOperation(name)) return undefined; // the operation drives this Machine now
    return this.#machineFlow.reconcile(machine, driver);
  }

  async #reconcileOperation(name: string): Promise<Requeue> {
    const op = this.#backend.operations.get(name);
    if (!op) return undefined;
    return this.#operationFlow.reconcile(op);
  }

  /** A host operation with this Machine's target in progress. */
  #activeOperation(machine: string): MachineOperation | undefined {
    return this.#backend.operations
      .list()
      .find(
        (op) =>
          isHostOperation(op) &&
          !isTerminal(op) &&
          op.status?.targets?.some((t) => t.machineRef === machine && t.phase === "InProgress"),
      );
  }

  /** The Machine's driver, made again when its BMC settings change. */
  #driver(machine: Machine): BmcDriver | undefined {
    const name = machine.metadata.name;
    const pxe = machine.spec.pxe as (Record<string, unknown> & { redfish?: unknown }) | undefined;
    const key = JSON.stringify([pxe?.redfish, pxe?.ipmi]);
    const cached = this.#drivers.get(name);
    if (cached?.key === key) return cached.driver;
    if (cached) void this.#closeDriver(name);
    const driver = this.#driverFor(machine);
    if (driver) this.#drivers.set(name, { key, driver });
    return driver;
  }

  async #closeDriver(name: string): Promise<void> {
    const cached = this.#drivers.get(name);
    if (!cached) return;
    this.#drivers.delete(name);
    try {
      await cached.driver.close();
    } catch (err) {
      this.#log.warn({ err, machine: name }, "closing a BMC driver failed");
    }
  }

  #forgetMachine(name: string): void {
    this.#cancel(`m/${name}`);
    this.#machineFlow.forget(name);
    this.#refused.delete(name);
    void this.#closeDriver(name);
  }
}
