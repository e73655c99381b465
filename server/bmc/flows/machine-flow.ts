import {
  type MachineBackend,
  NotFoundError,
  QuarantinedError,
  UNCHANGED,
  type Unchanged,
} from "../../inventory/backend.js";
import { type ConditionUpdate, findCondition, removeCondition, setCondition } from "../../inventory/conditions.js";
import type { Condition, Machine, MachineStatus } from "../../inventory/types.js";
import { type BmcDriver, BmcError, type BootOverride, type PowerState } from "../driver.js";
import { asBmcError, describeBmcError, type EventSink, RecordedDriver } from "./bmc-calls.js";
import type { FlowClock } from "./clock.js";
import {
  BMC_REACHABLE,
  BOOT_ORDER_SUPPORTED,
  BOOT_OVERRIDE_CONTINUOUS,
  POWERED_OFF,
  POWERED_ON,
  REPAVE_ATTEMPTS,
  REPAVED,
} from "./conditions.js";
import { type BmcFlowOptions, goDuration } from "./options.js";

export interface FlowContext {
  backend: MachineBackend;
  events: EventSink;
  clock: FlowClock;
  options: BmcFlowOptions;
}

/** What a reconcile asks for next: run again after `ms`, or wait for the next watch event. */
export type Requeue = number | undefined;

type StatusEdit = (status: MachineStatus, machine: Machine) => MachineStatus | Unchanged;

/**
 * The counter-driven flows of one Machine (spec §8.4-§8.7, §9.1), on a BmcDriver only:
 *
 * - a power cycle (ForceOff, wait for Off, On, wait for On) while
 *   `spec.operations.rebootCounter > status`, with upstream's `PoweredOff` condition states;
 * - a repave while `spec.operations.repaveCounter > status`: a one-time (Once) PXE override,
 *   then the cycle; Continuous (restored afterwards) only where the BMC refuses Once;
 * - the 30-minute repave timeout with a bounded number of cycles (upstream: forever);
 * - the power state read periodically into the `PoweredOn` condition.
 *
 * One call decides one step and returns when to look again; the watch brings it back after
 * each status write. Status writes go through `updateStatus` (the backend owns conflicts).
 */
export class MachineFlow {
  /** When each Machine's power state was last read (any read counts as a refresh). */
  readonly #lastRead = new Map<string, number>();

  constructor(private readonly ctx: FlowContext) {}

  forget(name: string): void {
    this.#lastRead.delete(name);
  }

  async reconcile(machine: Machine, driver: BmcDriver): Promise<Requeue> {
    const { options, clock } = this.ctx;
    const name = machine.metadata.name;
    const now = clock.now();
    const conditions = machine.status?.conditions;
    const specOps = machine.spec.operations ?? {};
    const statusOps = machine.status?.operations ?? {};
    const repaveCounter = specOps.repaveCounter ?? 0;
    const repavePending = repaveCounter > (statusOps.repaveCounter ?? 0);
    const rebootPending = (specOps.rebootCounter ?? 0) > (statusOps.rebootCounter ?? 0);
    const repaved = findCondition(conditions, REPAVED);
    const attempts = repaveAttempts(conditions, repaveCounter);

    // A repave request that is over (completed, or a new counter on the Machine): tidy up first.
    if (!repavePending && findCondition(conditions, BOOT_OVERRIDE_CONTINUOUS)) {
      return this.#restoreOverride(machine, driver);
    }
    if (!repavePending && findCondition(conditions, REPAVE_ATTEMPTS)) {
      await this.#write(name, (s) => ({ ...s, conditions: removeCondition(s.conditions, REPAVE_ATTEMPTS) }));
      return 0;
    }

    // §9.1 with bounded retries: Repaved=False/Pending older than the timeout.
    let waitRepave: Requeue;
    if (repavePending && repaved?.status === "False" && repaved.reason === "Pending") {
      const elapsed = now - Date.parse(repaved.lastTransitionTime);
      if (elapsed >= options.repaveTimeoutMs) return this.#repaveTimedOut(machine, attempts?.attempt ?? 1);
      waitRepave = options.repaveTimeoutMs - elapsed;
    }

    // A new repave request: Repaved absent, or left Failed by an earlier request (other counter).
    const repaveStarts = repavePending && (!repaved || (repaved.reason === "Failed" && attempts === undefined));
    if (!rebootPending && !repaveStarts) {
      // Nothing to act on: refresh the power state now and then, and watch the repave clock.
      const refresh = await this.#refresh(machine, driver);
      return minDelay(waitRepave, refresh);
    }
    return this.#cycle(machine, driver, repavePending, repaveStarts);
  }

  /** One step of the §8.6 state machine. */
  async #cycle(machine: Machine, driver: BmcDriver, repavePending: boolean, repaveStarts: boolean): Promise<Requeue> {
    const { options, clock } = this.ctx;
    const name = machine.metadata.name;
    const purpose = repavePending ? "repave" : "reboot";
    const bmc = new RecordedDriver(driver, name, this.ctx.events, clock, purpose);
    const conditions = machine.status?.conditions;
    const poweredOff = findCondition(conditions, POWERED_OFF);
    const age = poweredOff ? clock.now() - Date.parse(poweredOff.lastTransitionTime) : 0;
    const target = `target reboots: ${machine.spec.operations?.rebootCounter ?? 0}`;
    const state = await bmc.powerState();
    await this.#notePower(name, state);

    if (poweredOff?.status !== "True") {
      if (state === "Off") {
        await this.#write(name, (s) => ({
          ...s,
          conditions: setCondition(
            s.conditions,
            this.#cond(machine, POWERED_OFF, "True", "ForceOff", target),
            this.#now(),
          ),
        }));
        return 0;
      }
      if (poweredOff?.reason === "PoweringOff" && age < options.powerTimeoutMs) return options.pollMs;
      if (!poweredOff) {
        // The cycle starts: the boot device first, so the next start already sees it.
        const prepared = await this.#prepareBoot(machine, bmc, repavePending, state);
        if (prepared !== "ready") return prepared;
      }
      await bmc.power("ForceOff");
      const counter = machine.spec.operations?.repaveCounter ?? 0;
      await this.#write(name, (s, m) => {
        let next = removeCondition(s.conditions, POWERED_OFF);
        next = setCondition(next, this.#cond(m, POWERED_OFF, "False", "PoweringOff", target), this.#now());
        if (repaveStarts && !poweredOff) {
          const attempt = repaveAttempts(s.conditions, counter)?.attempt ?? 1;
          next = setCondition(next, this.#attemptCondition(m, counter, attempt), this.#now());
        }
        return { ...s, conditions: next };
      });
      return options.pollMs;
    }

    // PoweredOff is True: the server was seen Off.
    if (state === "On" || state === "PoweringOn") {
      const image = machine.spec.pxe?.image ?? "";
      await this.#write(name, (s, m) => {
        if (findCondition(s.conditions, POWERED_OFF)?.status !== "True") return UNCHANGED;
        let next = removeCondition(s.conditions, POWERED_OFF);
        const pending = (m.spec.operations?.repaveCounter ?? 0) > (s.operations?.repaveCounter ?? 0);
        if (pending) {
          // Remove then set: a fresh lastTransitionTime starts this attempt's 30 minutes.
          next = removeCondition(next, REPAVED);
          next = setCondition(next, this.#cond(m, REPAVED, "False", "Pending", `image=${image}`), this.#now());
        }
        return {
          ...s,
          operations: { ...s.operations, rebootCounter: m.spec.operations?.rebootCounter ?? 0 },
          conditions: next,
        };
      });
      this.ctx.events.emit({
        step: "bmc.power-cycle",
        result: "ok",
        machine: name,
        detail: { purpose, rebootCounter: machine.spec.operations?.rebootCounter ?? 0 },
      });
      return undefined;
    }
    if (state !== "Off") return options.pollMs; // PoweringOff, Unknown: let it settle
    if (poweredOff.reason === "PoweringOn" && age < options.powerTimeoutMs) return options.pollMs;
    if (repavePending && !isFalse(conditions, BOOT_ORDER_SUPPORTED)) {
      // Some BMCs drop an override at power-off; make sure the next start still goes to PXE.
      // A BMC that cannot even report it (ipmi_sim with a VM) gets the override set again,
      // which settles BootOrderConfigSupported; a server found Off never had it set at all.
      let current: BootOverride | undefined;
      try {
        current = await bmc.bootOverride();
      } catch (err) {
        if (!(err instanceof BmcError) || err.code !== "not-supported") throw err;
      }
      if (current?.target !== "Pxe" || current.enabled === "Disabled") {
        const prepared = await this.#prepareBoot(machine, bmc, true, state);
        if (prepared !== "ready") return prepared;
      }
    }
    await bmc.power("On");
    await this.#write(name, (s, m) => {
      let next = removeCondition(s.conditions, POWERED_OFF);
      next = setCondition(next, this.#cond(m, POWERED_OFF, "True", "PoweringOn", target), this.#now());
      return { ...s, conditions: next };
    });
    return options.pollMs;
  }

  /**
   * Before a cycle: a repave wants PXE on the next start (Once; Continuous where Once is
   * refused, remembered for the restore). A reboot leaves the boot device alone, except an
   * override we left Continuous. `BootOrderConfigSupported=False` skips all this (upstream).
   */
  async #prepareBoot(
    machine: Machine,
    bmc: RecordedDriver,
    repave: boolean,
    state: PowerState,
  ): Promise<"ready" | Requeue> {
    const name = machine.metadata.name;
    const conditions = machine.status?.conditions;
    if (!repave || isFalse(conditions, BOOT_ORDER_SUPPORTED)) return "ready";
    let set: BootOverride;
    try {
      set = await bmc.setBootOverride({ target: "Pxe", enabled: "Once" });
    } catch (err) {
      if (!(err instanceof BmcError) || err.code !== "not-supported") throw err;
      try {
        set = await bmc.setBootOverride({ target: "Pxe", enabled: "Continuous" });
      } catch (err2) {
        if (!(err2 instanceof BmcError) || err2.code !== "not-supported") throw err2;
        return this.#notSupported(machine, state);
      }
    }
    if (set.enabled === "Continuous" && !findCondition(conditions, BOOT_OVERRIDE_CONTINUOUS)) {
      await this.#write(name, (s, m) => ({
        ...s,
        conditions: setCondition(
          s.conditions,
          this.#cond(
            m,
            BOOT_OVERRIDE_CONTINUOUS,
            "True",
            "OnceNotSupported",
            "Pxe/Continuous until the repave completes",
          ),
          this.#now(),
        ),
      }));
    }
    return "ready";
  }

  /** Upstream: "unsupported" while On or Off is permanent; during POST it is retried. */
  async #notSupported(machine: Machine, state: PowerState): Promise<Requeue> {
    if (state !== "On" && state !== "Off") return this.ctx.options.postRetryMs;
    await this.#write(machine.metadata.name, (s, m) => ({
      ...s,
      conditions: setCondition(
        s.conditions,
        this.#cond(m, BOOT_ORDER_SUPPORTED, "False", "NotSupported", ""),
        this.#now(),
      ),
    }));
    return 0;
  }

  /** After a Continuous repave: Disabled, else upstream's Hdd/Continuous fallback (spec §8.5). */
  async #restoreOverride(machine: Machine, driver: BmcDriver): Promise<Requeue> {
    const name = machine.metadata.name;
    const bmc = new RecordedDriver(driver, name, this.ctx.events, this.ctx.clock, "restore-boot");
    try {
      await bmc.setBootOverride({ target: "None", enabled: "Disabled" });
    } catch (err) {
      if (!(err instanceof BmcError) || err.code !== "not-supported") throw err;
      await bmc.setBootOverride({ target: "Hdd", enabled: "Continuous" });
    }
    await this.#write(name, (s) => ({ ...s, conditions: removeCondition(s.conditions, BOOT_OVERRIDE_CONTINUOUS) }));
    return 0;
  }

  async #repaveTimedOut(machine: Machine, attempt: number): Promise<Requeue> {
    const { options } = this.ctx;
    const name = machine.metadata.name;
    const counter = machine.spec.operations?.repaveCounter ?? 0;
    const image = machine.spec.pxe?.image ?? "";
    const last = attempt >= options.repaveMaxAttempts;
    await this.#write(name, (s, m) => {
      const repaved = findCondition(s.conditions, REPAVED);
      if (repaved?.status !== "False" || repaved.reason !== "Pending") return UNCHANGED;
      if (last) {
        const message = `image=${image}: not completed after ${attempt} attempt(s) of ${goDuration(options.repaveTimeoutMs)}`;
        return {
          ...s,
          conditions: setCondition(s.conditions, this.#cond(m, REPAVED, "False", "Failed", message), this.#now()),
        };
      }
      // Upstream's cleanup (remove Repaved, status.rebootCounter - 1) forces the next cycle.
      let next = removeCondition(s.conditions, REPAVED);
      next = setCondition(next, this.#attemptCondition(m, counter, attempt + 1), this.#now());
      const reboots = s.operations?.rebootCounter ?? 0;
      return { ...s, operations: { ...s.operations, rebootCounter: Math.max(0, reboots - 1) }, conditions: next };
    });
    this.ctx.events.emit({
      step: "bmc.repave-timeout",
      result: last ? "error" : "progress",
      machine: name,
      reason: last ? "attempts-exhausted" : "retry",
      detail: { attempt, maxAttempts: options.repaveMaxAttempts, repaveCounter: counter },
    });
    return last ? undefined : 0;
  }

  async #refresh(machine: Machine, driver: BmcDriver): Promise<Requeue> {
    const { options, clock } = this.ctx;
    const lastRead = this.#lastRead.get(machine.metadata.name);
    const due = lastRead === undefined ? 0 : lastRead + options.powerRefreshMs - clock.now();
    if (due > 0) return due;
    const bmc = new RecordedDriver(driver, machine.metadata.name, this.ctx.events, clock, "refresh");
    const state = await bmc.powerState();
    await this.#notePower(machine.metadata.name, state);
    return options.powerRefreshMs;
  }

  /** Writes `PoweredOn` (and clears a BMC error) only when the reading changed. */
  async #notePower(name: string, state: PowerState): Promise<void> {
    this.#lastRead.set(name, this.ctx.clock.now());
    await this.#write(name, (s, m) => {
      const status = state === "On" ? "True" : state === "Off" ? "False" : "Unknown";
      let next = setCondition(
        s.conditions,
        this.#cond(m, POWERED_ON, status, state, `BMC reports PowerState=${state}`),
        this.#now(),
      );
      if (findCondition(s.conditions, BMC_REACHABLE)?.status !== "True") {
        next = setCondition(next, this.#cond(m, BMC_REACHABLE, "True", "Reachable", ""), this.#now());
      }
      return sameConditions(s.conditions, next) ? UNCHANGED : { ...s, conditions: next };
    });
  }

  /** A failed BMC call, on the Machine (`BmcReachable=False/<code>` with the BMC's messages). */
  async noteFailure(name: string, err: unknown): Promise<void> {
    const error = asBmcError(err);
    await this.#write(name, (s, m) => {
      const next = setCondition(
        s.conditions,
        this.#cond(m, BMC_REACHABLE, "False", reasonOf(error), describeBmcError(error)),
        this.#now(),
      );
      return sameConditions(s.conditions, next) ? UNCHANGED : { ...s, conditions: next };
    });
  }

  #attemptCondition(machine: Machine, counter: number, attempt: number): ConditionUpdate {
    const max = this.ctx.options.repaveMaxAttempts;
    return this.#cond(
      machine,
      REPAVE_ATTEMPTS,
      "True",
      "InProgress",
      `repaveCounter=${counter} attempt=${attempt} of ${max}`,
    );
  }

  #cond(machine: Machine, type: string, status: Condition["status"], reason: string, message: string): ConditionUpdate {
    return { type, status, reason, message, observedGeneration: machine.metadata.generation };
  }

  #now(): Date {
    return new Date(this.ctx.clock.now());
  }

  async #write(name: string, edit: StatusEdit): Promise<void> {
    try {
      await this.ctx.backend.updateStatus(name, (machine) =>
        edit({ ...(machine.status ?? {}), operations: { ...machine.status?.operations } }, machine),
      );
    } catch (err) {
      // Gone or quarantined meanwhile: the next watch event (or none) decides.
      if (err instanceof NotFoundError || err instanceof QuarantinedError) return;
      throw err;
    }
  }
}

/** `RepaveAttempts` for this counter, or undefined (none, or an earlier request's). */
export function repaveAttempts(
  conditions: readonly Condition[] | undefined,
  counter: number,
): { attempt: number } | undefined {
  const c = findCondition(conditions, REPAVE_ATTEMPTS);
  const match = c?.message.match(/^repaveCounter=(\d+) attempt=(\d+) of \d+$/);
  if (!match || Number(match[1]) !== counter) return undefined;
  return { attempt: Number(match[2]) };
}

function isFalse(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === "False";
}

function reasonOf(error: BmcError): string {
  // Condition reasons are CamelCase identifiers: `tls-pin-mismatch` → `TlsPinMismatch`.
  return error.code
    .split("-")
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join("");
}

function sameConditions(a: readonly Condition[] | undefined, b: readonly Condition[]): boolean {
  return JSON.stringify(a ?? []) === JSON.stringify(b);
}

export function minDelay(a: Requeue, b: Requeue): Requeue {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}
