import { NotFoundError, UNCHANGED } from "../../inventory/backend.js";
import { findCondition, setCondition } from "../../inventory/conditions.js";
import type {
  LabelSelector,
  MachineOperation,
  MachineOperationStatus,
  OperationPhase,
  OperationTarget,
} from "../../inventory/machine-operation.js";
import { type Condition, type Machine, SITE_LABEL } from "../../inventory/types.js";
import { type BmcDriver, BmcError, type BootOverride } from "../driver.js";
import { asBmcError, describeBmcError, RecordedDriver } from "./bmc-calls.js";
import { BOOT_OVERRIDE_CONTINUOUS, REPAVED } from "./conditions.js";
import type { FlowContext, Requeue } from "./machine-flow.js";
import { goDuration } from "./options.js";

export const HOST_KINDS = new Set(["HostReboot", "HostPowerOff", "HostPowerOn", "HostReplace"]);
const TERMINAL = new Set<OperationPhase>(["Complete", "Failed"]);
/** Target condition (upstream name): the BMC refused `Disabled`, later calls go straight to Hdd/Continuous. */
const DISABLE_UNSUPPORTED = "RedfishDisableBootOverrideUnsupported";
/** Target condition (ours): power cycles used by HostReplace, `attempt=K of M`. */
const REPLACE_ATTEMPTS = "RepaveAttempts";
const REPLACE_CONDITIONS = ["BootLoaderDownloaded", "BootImageWritten", "CloudInitDone"];

export interface OperationDeps extends FlowContext {
  /** The Machine's driver (cached by the reconciler), undefined when it has no BMC. */
  driverFor(machine: Machine): BmcDriver | undefined;
}

export function isHostOperation(op: MachineOperation): boolean {
  return HOST_KINDS.has(op.spec.operationKind);
}

export function isTerminal(op: MachineOperation): boolean {
  return op.status?.phase !== undefined && TERMINAL.has(op.status.phase);
}

/** A bare-metal Machine (spec §8.9): no cloud provider. The backend already scoped it to our site. */
function isBareMetal(machine: Machine): boolean {
  return !machine.spec.provider && !machine.spec.providerID;
}

/**
 * MachineOperation host operations for bare metal (spec §2.7, §8.9): HostReboot,
 * HostPowerOff, HostPowerOn and HostReplace, with `status.targets`, stages, bounded attempts,
 * aggregation into the operation's phase, and deletion `ttlSecondsAfterFinished` after the end.
 */
export class OperationFlow {
  constructor(private readonly ctx: OperationDeps) {}

  async reconcile(op: MachineOperation): Promise<Requeue> {
    if (!isHostOperation(op)) return undefined; // the in-host agent's kinds
    if (isTerminal(op)) return this.#expire(op);
    const name = op.metadata.name;
    if (!op.status?.targets) {
      const snapshot = this.#snapshot(op);
      if (snapshot === "ignore") return undefined;
      await this.ctx.backend.operations.updateStatus(name, (current) =>
        current.status?.targets ? UNCHANGED : snapshot,
      );
      this.ctx.events.emit({
        step: "operation.snapshot",
        result: snapshot.phase === "Failed" ? "error" : "ok",
        machine: op.spec.machineRef,
        reason: snapshot.phase === "Failed" ? snapshot.message : undefined,
        detail: { operation: name, kind: op.spec.operationKind, targets: snapshot.targets?.length ?? 0 },
      });
      return 0;
    }
    const blocker = this.#olderConflict(op);
    if (blocker) {
      const message = `waiting for older host operation ${blocker}`;
      await this.ctx.backend.operations.updateStatus(name, (current) =>
        current.status?.message === message ? UNCHANGED : { ...current.status, phase: "Pending", message },
      );
      return this.ctx.options.operationPollMs;
    }

    const targets = op.status.targets.map((t) => ({ ...t }));
    let inProgress = targets.filter((t) => t.phase === "InProgress").length;
    for (const target of targets) {
      if (target.phase === "Pending" && inProgress < this.ctx.options.operationMaxConcurrentMachines) {
        target.phase = "InProgress";
        target.startedAt = this.#iso();
        target.stage = "";
        inProgress++;
      }
    }
    let requeue: Requeue;
    for (let i = 0; i < targets.length; i++) {
      const target = targets[i]!;
      if (target.phase !== "InProgress") continue;
      const next = await this.#advance(op, target);
      targets[i] = next;
      if (next.phase === "InProgress") requeue = this.ctx.options.operationPollMs;
      if (next.phase !== "InProgress" || next.stage !== target.stage) {
        this.ctx.events.emit({
          step: "operation.target",
          result: next.phase === "Failed" ? "error" : next.phase === "Complete" ? "ok" : "progress",
          machine: target.machineRef,
          detail: { operation: name, kind: op.spec.operationKind, stage: next.stage, message: next.message },
        });
      }
    }
    const status = aggregate(op.status, targets, this.#iso(), op);
    const written = await this.ctx.backend.operations.updateStatus(name, () => status);
    if (isTerminal(written)) {
      this.ctx.events.emit({
        step: "operation.done",
        result: written.status?.phase === "Complete" ? "ok" : "error",
        machine: op.spec.machineRef,
        detail: { operation: name, kind: op.spec.operationKind, message: written.status?.message },
      });
      return this.#expire(written);
    }
    // Pending targets wait for a free slot: come back soon even when none is in progress.
    return requeue ?? (targets.some((t) => t.phase === "Pending") ? 0 : undefined);
  }

  /** Machine names an operation acts on, and the BMC URLs behind them (conflict keys). */
  conflictKeys(op: MachineOperation): Set<string> {
    const names =
      op.status?.targets?.map((t) => t.machineRef) ??
      (op.spec.machineRef
        ? [op.spec.machineRef]
        : this.#select(op.spec.machineSelector ?? {}).map((m) => m.metadata.name));
    const keys = new Set<string>();
    for (const name of names) {
      keys.add(`machine:${name}`);
      const pxe = this.ctx.backend.get(name)?.spec.pxe;
      const url = pxe?.redfish?.url;
      if (url) keys.add(`bmc:${url.replace(/\/+$/, "")}`);
      if (pxe?.ipmi) keys.add(`bmc:ipmi://${pxe.ipmi.host}:${pxe.ipmi.port ?? 623}`);
    }
    return keys;
  }

  #olderConflict(op: MachineOperation): string | undefined {
    const mine = this.conflictKeys(op);
    const older = this.ctx.backend.operations
      .list()
      .filter((o) => o.metadata.name !== op.metadata.name && isHostOperation(o) && !isTerminal(o))
      .filter((o) => compareAge(o, op) < 0)
      .sort(compareAge);
    for (const other of older) {
      for (const key of this.conflictKeys(other)) if (mine.has(key)) return other.metadata.name;
    }
    return undefined;
  }

  #snapshot(op: MachineOperation): MachineOperationStatus | "ignore" {
    const now = this.#iso();
    const fail = (reason: string, message: string): MachineOperationStatus => ({
      phase: "Failed",
      message: `${reason}: ${message}`,
      startedAt: now,
      completedAt: now,
      conditions: setCondition([], { type: "Completed", status: "False", reason, message }, this.#now()),
      targets: [],
    });
    let machines: Machine[];
    if (op.spec.machineRef !== undefined) {
      const machine = this.ctx.backend.get(op.spec.machineRef);
      if (!machine) return fail("MachineNotFound", `machine ${op.spec.machineRef} not found`);
      if (!isBareMetal(machine)) return "ignore"; // a cloud provider's Machine: another controller's
      if (!this.ctx.driverFor(machine))
        return fail(
          "UnsupportedTarget",
          `machine ${op.spec.machineRef} has no BMC (spec.pxe.redfish or spec.pxe.ipmi)`,
        );
      machines = [machine];
    } else {
      const selector = op.spec.machineSelector ?? {};
      const site = this.ctx.options.site;
      if (site !== "" && !pinsSite(selector, site)) {
        return fail("InvalidTargetScope", `machineSelector must pin ${SITE_LABEL}=${site}`);
      }
      machines = this.#select(selector);
      if (machines.length === 0)
        return fail("NoMatchingOwnedMachines", "no bare-metal Machine with a BMC matches machineSelector");
    }
    let conditions: Condition[] = setCondition(
      [],
      { type: "Completed", status: "False", reason: "InProgress", message: "" },
      this.#now(),
    );
    if (op.spec.operationKind === "HostReplace") {
      for (const type of REPLACE_CONDITIONS) {
        conditions = setCondition(conditions, { type, status: "Unknown", reason: "Pending", message: "" }, this.#now());
      }
    }
    const targets: OperationTarget[] = machines.map((m) => ({
      machineRef: m.metadata.name,
      phase: "Pending",
      message: "target snapshotted",
      observedGeneration: m.metadata.generation,
    }));
    return {
      phase: "InProgress",
      message: summary(targets),
      startedAt: now,
      observedMachineGeneration: machines.length === 1 ? machines[0]!.metadata.generation : undefined,
      conditions,
      targets,
    };
  }

  #select(selector: LabelSelector): Machine[] {
    return this.ctx.backend
      .list()
      .filter(
        (m) => isBareMetal(m) && this.ctx.driverFor(m) !== undefined && matches(selector, m.metadata.labels ?? {}),
      )
      .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  }

  /** One step of one target. Never throws: a BMC failure counts as a failed attempt. */
  async #advance(op: MachineOperation, target: OperationTarget): Promise<OperationTarget> {
    const machine = this.ctx.backend.get(target.machineRef);
    if (!machine) return finish(target, "Failed", "MachineNotFound", this.#iso());
    const quarantine = this.ctx.backend.quarantine(target.machineRef);
    if (quarantine) {
      this.ctx.events.emit({
        step: "bmc.refused",
        result: "ignored",
        machine: target.machineRef,
        reason: "quarantined",
        detail: { operation: op.metadata.name },
      });
      return finish(target, "Failed", `Quarantined: ${quarantine.message}`, this.#iso());
    }
    const driver = this.ctx.driverFor(machine);
    if (!driver) return finish(target, "Failed", "UnsupportedTarget", this.#iso());
    const bmc = new RecordedDriver(driver, target.machineRef, this.ctx.events, this.ctx.clock, op.metadata.name);
    try {
      return await this.#step(op, machine, target, bmc);
    } catch (err) {
      const error = asBmcError(err);
      const attempts = (target.attempts ?? 0) + 1;
      if (attempts >= this.ctx.options.operationMaxAttempts) {
        return finish(target, "Failed", `ExecutionFailed: ${describeBmcError(error)}`, this.#iso(), attempts);
      }
      return { ...target, attempts, lastAttemptAt: this.#iso(), message: describeBmcError(error) };
    }
  }

  async #step(
    op: MachineOperation,
    machine: Machine,
    t: OperationTarget,
    bmc: RecordedDriver,
  ): Promise<OperationTarget> {
    const kind = op.spec.operationKind;
    const stage = t.stage ?? "";
    const done = (message = `${kind} completed`) => finish(t, "Complete", message, this.#iso());
    switch (kind) {
      case "HostPowerOff": {
        const off = await this.#powerOff(t, bmc);
        return off === "off" ? done() : off;
      }
      case "HostPowerOn": {
        const prepared = stage === "" ? await this.#disableOverride(t, bmc) : t;
        const on = await this.#powerOn(prepared, bmc);
        return on === "on" ? done() : on;
      }
      case "HostReboot": {
        if (stage === "" || stage === "PoweringOff" || stage === "WaitingOff") {
          const prepared = stage === "" ? await this.#disableOverride(t, bmc) : t;
          const off = await this.#powerOff(prepared, bmc);
          if (off !== "off") return off;
          return { ...prepared, stage: "PoweringOn", attempts: 0, message: "powered off" };
        }
        const on = await this.#powerOn(t, bmc);
        return on === "on" ? done() : on;
      }
      case "HostReplace":
        return this.#replace(op, machine, t, bmc);
      default:
        return finish(t, "Failed", `UnsupportedOperation: ${kind}`, this.#iso());
    }
  }

  /**
   * HostReplace: ForceOff, a one-time PXE override, On, then wait for the installer
   * (`BootImageWritten` on the operation, or the Machine's `Repaved=True` after this target
   * started) and for cloud-init. A repave that never completes is cycled again, bounded.
   */
  async #replace(
    op: MachineOperation,
    machine: Machine,
    t: OperationTarget,
    bmc: RecordedDriver,
  ): Promise<OperationTarget> {
    const { options } = this.ctx;
    const stage = t.stage ?? "";
    const attempt = replaceAttempt(t);
    if (stage === "" || stage === "PoweringOff" || stage === "WaitingOff") {
      const off = await this.#powerOff(t, bmc);
      if (off !== "off") return off;
      return { ...t, stage: "RepaveRequested", attempts: 0, message: "powered off" };
    }
    if (stage === "RepaveRequested") {
      let conditions = setCondition(
        t.conditions,
        {
          type: REPLACE_ATTEMPTS,
          status: "True",
          reason: "InProgress",
          message: `attempt=${attempt} of ${options.repaveMaxAttempts}`,
        },
        this.#now(),
      );
      let set: BootOverride;
      try {
        set = await bmc.setBootOverride({ target: "Pxe", enabled: "Once" });
      } catch (err) {
        if (!(err instanceof BmcError) || err.code !== "not-supported") throw err;
        set = await bmc.setBootOverride({ target: "Pxe", enabled: "Continuous" });
      }
      if (set.enabled === "Continuous") {
        conditions = setCondition(
          conditions,
          { type: BOOT_OVERRIDE_CONTINUOUS, status: "True", reason: "OnceNotSupported", message: "" },
          this.#now(),
        );
      }
      return { ...t, stage: "PoweringOn", attempts: 0, conditions, message: `boot override Pxe/${set.enabled}` };
    }
    if (stage === "PoweringOn" || stage === "WaitingOn") {
      const on = await this.#powerOn(t, bmc);
      if (on !== "on") return on;
      return {
        ...t,
        stage: "WaitingRepave",
        lastAttemptAt: this.#iso(),
        message: "waiting for the installer (/pxe/disable)",
      };
    }
    const since = Date.parse(t.startedAt ?? "") || 0;
    if (stage === "WaitingRepave") {
      const written = findCondition(op.status?.conditions, "BootImageWritten")?.status === "True";
      const repaved = findCondition(machine.status?.conditions, REPAVED);
      // A Repaved=True counts only when it turned True after this operation started: one from a
      // repave that ended just before (the old 1 s slack took it for this image) must not. Condition
      // times are whole seconds, and a real install takes far longer than one.
      if (written || (repaved?.status === "True" && Date.parse(repaved.lastTransitionTime) > since)) {
        await this.#restoreIfContinuous(t, bmc);
        return {
          ...t,
          stage: "WaitingCloudInit",
          lastAttemptAt: this.#iso(),
          message: "image written, waiting for cloud-init",
        };
      }
      const waited = this.ctx.clock.now() - (Date.parse(t.lastAttemptAt ?? "") || 0);
      if (waited < options.repaveTimeoutMs) return t;
      if (attempt >= options.repaveMaxAttempts) {
        return finish(
          t,
          "Failed",
          `TimedOut: image not written after ${attempt} attempt(s) of ${goDuration(options.repaveTimeoutMs)}`,
          this.#iso(),
        );
      }
      const conditions = setCondition(
        t.conditions,
        {
          type: REPLACE_ATTEMPTS,
          status: "True",
          reason: "InProgress",
          message: `attempt=${attempt + 1} of ${options.repaveMaxAttempts}`,
        },
        this.#now(),
      );
      return { ...t, stage: "", attempts: 0, conditions, message: `repave timed out, attempt ${attempt + 1}` };
    }
    // WaitingCloudInit (WaitingNode needs a cluster: standalone there is no Node to wait for).
    const cloudInit = findCondition(machine.status?.conditions, "CloudInitDone");
    const fresh = cloudInit && Date.parse(cloudInit.lastTransitionTime) >= since - 1000;
    if (fresh && cloudInit.status === "True") return finish(t, "Complete", "HostReplace completed", this.#iso());
    if (fresh && cloudInit.status === "False" && cloudInit.reason === "Failed") {
      return finish(t, "Failed", `CloudInitFailed: ${cloudInit.message}`, this.#iso());
    }
    const waited = this.ctx.clock.now() - (Date.parse(t.lastAttemptAt ?? "") || 0);
    if (waited >= options.cloudInitTimeoutMs) {
      return finish(
        t,
        "Failed",
        `TimedOut: cloud-init did not complete within ${goDuration(options.cloudInitTimeoutMs)}`,
        this.#iso(),
      );
    }
    return t;
  }

  /** ForceOff until the BMC reports Off; resent after the power timeout, bounded by attempts. */
  async #powerOff(t: OperationTarget, bmc: RecordedDriver): Promise<OperationTarget | "off"> {
    const state = await bmc.powerState();
    if (state === "Off") return "off";
    return this.#send(t, bmc, "ForceOff", "PoweringOff", "WaitingOff", "power off");
  }

  async #powerOn(t: OperationTarget, bmc: RecordedDriver): Promise<OperationTarget | "on"> {
    const state = await bmc.powerState();
    if (state === "On") return "on";
    if (state === "PoweringOn" && t.stage === "WaitingOn") return t;
    return this.#send(t, bmc, "On", "PoweringOn", "WaitingOn", "power on");
  }

  async #send(
    t: OperationTarget,
    bmc: RecordedDriver,
    action: "ForceOff" | "On",
    sending: OperationTarget["stage"],
    waiting: OperationTarget["stage"],
    what: string,
  ): Promise<OperationTarget> {
    const { options, clock } = this.ctx;
    if (t.stage === waiting && clock.now() - (Date.parse(t.lastAttemptAt ?? "") || 0) < options.powerTimeoutMs)
      return t;
    const attempts = t.attempts ?? 0;
    if (attempts >= options.operationMaxAttempts) {
      return finish(
        t,
        "Failed",
        `ExecutionFailed: timed out waiting for ${what} after ${attempts} attempts`,
        this.#iso(),
      );
    }
    void sending;
    await bmc.power(action);
    return { ...t, stage: waiting, attempts: attempts + 1, lastAttemptAt: this.#iso(), message: `sent ${action}` };
  }

  /** Upstream: Disabled, or Hdd/Continuous where Disabled is refused (remembered on the target). */
  async #disableOverride(t: OperationTarget, bmc: RecordedDriver): Promise<OperationTarget> {
    if (findCondition(t.conditions, DISABLE_UNSUPPORTED)?.status !== "True") {
      try {
        await bmc.setBootOverride({ target: "None", enabled: "Disabled" });
        return t;
      } catch (err) {
        if (!(err instanceof BmcError) || err.code !== "not-supported") throw err;
      }
    }
    await bmc.setBootOverride({ target: "Hdd", enabled: "Continuous" });
    const conditions = setCondition(
      t.conditions,
      { type: DISABLE_UNSUPPORTED, status: "True", reason: "Unsupported", message: "" },
      this.#now(),
    );
    return { ...t, conditions };
  }

  async #restoreIfContinuous(t: OperationTarget, bmc: RecordedDriver): Promise<void> {
    if (findCondition(t.conditions, BOOT_OVERRIDE_CONTINUOUS)?.status !== "True") return;
    await this.#disableOverride(t, bmc);
  }

  /** Deletes a finished operation `ttlSecondsAfterFinished` after `completedAt`. */
  async #expire(op: MachineOperation): Promise<Requeue> {
    const ttl = op.spec.ttlSecondsAfterFinished;
    if (ttl === undefined || !op.status?.completedAt) return undefined;
    const due = Date.parse(op.status.completedAt) + ttl * 1000 - this.ctx.clock.now();
    if (due > 0) return due;
    try {
      await this.ctx.backend.operations.delete(op.metadata.name);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    this.ctx.events.emit({
      step: "operation.deleted",
      result: "ok",
      machine: op.spec.machineRef,
      detail: { operation: op.metadata.name, ttlSecondsAfterFinished: ttl },
    });
    return undefined;
  }

  #now(): Date {
    return new Date(this.ctx.clock.now());
  }

  #iso(): string {
    return new Date(Math.floor(this.ctx.clock.now() / 1000) * 1000).toISOString().replace(".000Z", "Z");
  }
}

function finish(
  t: OperationTarget,
  phase: "Complete" | "Failed",
  message: string,
  now: string,
  attempts?: number,
): OperationTarget {
  return {
    ...t,
    phase,
    message,
    completedAt: now,
    ...(attempts !== undefined ? { attempts, lastAttemptAt: now } : {}),
  };
}

function replaceAttempt(t: OperationTarget): number {
  const m = findCondition(t.conditions, REPLACE_ATTEMPTS)?.message.match(/^attempt=(\d+) of \d+$/);
  return m ? Number(m[1]) : 1;
}

function summary(targets: readonly OperationTarget[]): string {
  const count = (p: OperationPhase) => targets.filter((t) => t.phase === p).length;
  return `targets complete=${count("Complete")} failed=${count("Failed")} inProgress=${count("InProgress")} pending=${count("Pending")}`;
}

/** Spec §8.9 aggregation: all terminal → completedAt; any failed → Failed, else Complete. */
function aggregate(
  status: MachineOperationStatus,
  targets: OperationTarget[],
  now: string,
  op: MachineOperation,
): MachineOperationStatus {
  const message = summary(targets);
  const allDone = targets.every((t) => t.phase === "Complete" || t.phase === "Failed");
  if (!allDone) return { ...status, phase: "InProgress", message, targets };
  const failed = targets.some((t) => t.phase === "Failed");
  const conditions = setCondition(
    status.conditions,
    failed
      ? { type: "Completed", status: "False", reason: "TargetFailed", message }
      : { type: "Completed", status: "True", reason: "Succeeded", message },
    new Date(Date.parse(now)),
  );
  void op;
  return { ...status, phase: failed ? "Failed" : "Complete", message, completedAt: now, conditions, targets };
}

function compareAge(a: MachineOperation, b: MachineOperation): number {
  const ta = a.metadata.creationTimestamp ?? "";
  const tb = b.metadata.creationTimestamp ?? "";
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

/** A selector pins the site with matchLabels, or one `In` expression with exactly that value. */
function pinsSite(selector: LabelSelector, site: string): boolean {
  if (selector.matchLabels?.[SITE_LABEL] === site) return true;
  return (selector.matchExpressions ?? []).some(
    (e) => e.key === SITE_LABEL && e.operator === "In" && e.values?.length === 1 && e.values[0] === site,
  );
}

function matches(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    if (e.operator === "In" && !(has && e.values?.includes(value!))) return false;
    if (e.operator === "NotIn" && has && e.values?.includes(value!)) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}
