/**
 * Operator actions on Machines, as the management API performs them. Power, reboot and repave
 * become MachineOperations in `backend.operations` (spec §2.7), which the BMC flows execute; the
 * API never talks to a BMC itself, so an action survives a restart and shows its progress in
 * the operation's status. Re-pinning the BMC certificate is a status write (the pin lives in
 * `status.redfish.certFingerprint`, and the Redfish pool re-reads it). docs/management-api.md
 * records these decisions.
 */
import { randomBytes } from "node:crypto";
import { CERT_CONDITION, repinBmc } from "../bmc/tls-pin.js";
import type { BootEventBus } from "../events/boot-events.js";
import { type MachineBackend, type MachineOperation, NotFoundError, QuarantinedError } from "../inventory/backend.js";
import { KeyedLock } from "../inventory/keyed-lock.js";
import {
  AlreadyExistsError,
  InvalidOperationError,
  type MachineOperationInput,
  type OperationKind,
} from "../inventory/machine-operation.js";
import type { Machine } from "../inventory/types.js";
import type { Actor } from "./actor.js";
import { ApiError } from "./errors.js";
import { bmcOf, isTerminal, REQUESTED_BY, REQUESTED_VIA } from "./views.js";

/** The actions of `POST /machines/NAME/...` and what each becomes. */
export const MACHINE_ACTIONS = {
  "power-on": { kind: "HostPowerOn", parameters: undefined },
  "power-off": { kind: "HostPowerOff", parameters: undefined },
  // A hard cycle: the flow uses PowerCycle when the BMC allows it, else ForceOff then On.
  "power-cycle": { kind: "HostReboot", parameters: { resetType: "PowerCycle" } },
  // The flow picks the best reset the BMC allows (ForceRestart, PowerCycle, else ForceOff then On).
  reboot: { kind: "HostReboot", parameters: undefined },
  // One-time PXE boot override, power cycle, then the installer's /pxe/disable completes it.
  repave: { kind: "HostReplace", parameters: undefined },
} as const satisfies Record<string, { kind: OperationKind; parameters: Record<string, string> | undefined }>;

export type MachineAction = keyof typeof MACHINE_ACTIONS;

/** The condition the Redfish driver sets on a certificate mismatch (server/bmc/tls-pin.ts). */
export const PIN_MISMATCH_CONDITION = CERT_CONDITION;

/** Default `ttlSecondsAfterFinished` of operations the API creates: a finished action stays visible for a day. */
export const DEFAULT_OPERATION_TTL_SECONDS = 86_400;

const FINGERPRINT = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){31}$/;

export interface ActionResult {
  operation: MachineOperation;
  /** The event stream's lastSeq just before the request was recorded: follow the Machine's events from here. */
  eventsSince: number;
}

export interface RepinResult {
  machine: string;
  /** The pin before, or undefined. */
  previous?: string;
  /** The new pin, or undefined when cleared (captured again at the next contact: trust on first use). */
  pinned?: string;
  eventsSince: number;
}

export class MachineActions {
  /** One request at a time per Machine: the "already pending" check and the create are one step. */
  readonly #lock = new KeyedLock();

  constructor(
    private readonly backend: MachineBackend,
    private readonly events: BootEventBus,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** A Machine the caller may act on through its BMC, or the ApiError saying why not. */
  actionable(name: string): Machine {
    const machine = this.backend.get(name);
    if (!machine) throw new ApiError("MACHINE_NOT_FOUND", name, { machine: name });
    const quarantine = this.backend.quarantine(name);
    if (quarantine) throw new ApiError("MACHINE_QUARANTINED", quarantine.message, { machine: name });
    if (bmcOf(machine).kind === "none") throw new ApiError("NO_BMC", name, { machine: name });
    // A provider Machine (AzureVM, OCIInstance...) is not bare metal: its host operations belong to
    // another controller (spec §8.9), so an operation for it would wait forever here.
    if (machine.spec.provider) {
      throw new ApiError("NO_BMC", `${name} is a ${machine.spec.provider} Machine (spec.provider): not bare metal`, {
        machine: name,
      });
    }
    return machine;
  }

  async request(
    name: string,
    action: MachineAction,
    actor: Actor,
    options: { ttlSecondsAfterFinished?: number } = {},
  ): Promise<ActionResult> {
    return this.#lock.run(name, async () => {
      this.actionable(name);
      const { kind, parameters } = MACHINE_ACTIONS[action];
      const pending = this.backend.operations
        .list()
        .find((op) => op.spec.machineRef === name && op.spec.operationKind === kind && !isTerminal(op));
      if (pending) {
        throw new ApiError("OPERATION_PENDING", `${pending.metadata.name} (${kind}) has not finished`, {
          operation: pending.metadata.name,
        });
      }
      const input: MachineOperationInput = {
        metadata: { name: operationName(name, action, this.now()), annotations: actorAnnotations(actor) },
        spec: {
          machineRef: name,
          operationKind: kind,
          ttlSecondsAfterFinished: options.ttlSecondsAfterFinished ?? DEFAULT_OPERATION_TTL_SECONDS,
        },
      };
      if (parameters) input.spec.parameters = { ...parameters };
      const eventsSince = this.events.lastSeq;
      const operation = await this.create(input, actor);
      return { operation, eventsSince };
    });
  }

  /**
   * `POST /operations`: any operation the store accepts, with the actor recorded. A machineRef
   * must name a Machine that exists and is not quarantined; a selector's targets are checked by
   * the flows when they snapshot it (the quarantine rule holds there too).
   */
  async create(input: MachineOperationInput, actor: Actor): Promise<MachineOperation> {
    const ref = input.spec?.machineRef;
    if (typeof ref === "string") {
      if (!this.backend.get(ref)) throw new ApiError("MACHINE_NOT_FOUND", ref, { machine: ref });
      const quarantine = this.backend.quarantine(ref);
      if (quarantine) throw new ApiError("MACHINE_QUARANTINED", quarantine.message, { machine: ref });
    }
    const withActor: MachineOperationInput = {
      ...input,
      metadata: { ...input.metadata, annotations: { ...input.metadata?.annotations, ...actorAnnotations(actor) } },
    };
    let operation: MachineOperation;
    try {
      operation = await this.backend.operations.create(withActor);
    } catch (err) {
      if (err instanceof AlreadyExistsError) {
        throw new ApiError("OPERATION_EXISTS", input.metadata.name, { operation: input.metadata.name });
      }
      if (err instanceof InvalidOperationError) throw new ApiError("INVALID_OPERATION", err.errors.join("; "));
      throw err;
    }
    this.events.emit({
      step: "operation.requested",
      result: "ok",
      machine: typeof ref === "string" ? ref : undefined,
      detail: {
        operation: operation.metadata.name,
        kind: operation.spec.operationKind,
        user: actor.user,
        transport: actor.transport,
      },
    });
    return operation;
  }

  /**
   * Re-pins the Redfish certificate: an explicit operator action (issue 6 §3). With a
   * fingerprint (checked out of band), the pin is set to it; without, the pin is cleared and the
   * next contact captures the certificate again (trust on first use). Either way the mismatch
   * condition goes. Refused for a quarantined Machine (the backend refuses the write too).
   */
  async repin(name: string, actor: Actor, fingerprint?: string): Promise<RepinResult> {
    const machine = this.actionable(name);
    if (bmcOf(machine).kind !== "redfish") {
      throw new ApiError("NO_BMC", `${name} has no Redfish BMC: only a TLS certificate can be pinned`, {
        machine: name,
      });
    }
    if (fingerprint !== undefined && !FINGERPRINT.test(fingerprint)) {
      throw new ApiError("VALIDATION_FAILED", "body/fingerprint must be 32 hex pairs separated by ':' (SHA-256)");
    }
    const eventsSince = this.events.lastSeq;
    let pinned: string | undefined;
    const previous = machine.status?.redfish?.certFingerprint || undefined;
    try {
      // One re-pin for every caller: the driver's (server/bmc/tls-pin.ts), which the BMC pool re-reads.
      pinned = await repinBmc(this.backend, name, { fingerprint, events: this.events, actor });
    } catch (err) {
      if (err instanceof NotFoundError) throw new ApiError("MACHINE_NOT_FOUND", name, { machine: name });
      if (err instanceof QuarantinedError) {
        throw new ApiError("MACHINE_QUARANTINED", err.quarantine.message, { machine: name });
      }
      throw err;
    }
    const result: RepinResult = { machine: name, eventsSince };
    if (previous) result.previous = previous;
    if (pinned) result.pinned = pinned;
    return result;
  }
}

function actorAnnotations(actor: Actor): Record<string, string> {
  return { [REQUESTED_BY]: actor.user, [REQUESTED_VIA]: actor.transport };
}

/**
 * `<machine>-<action>-<time><random>`: one DNS-1123 label (at most 63 characters), so it is a
 * valid name whatever the Machine's name (dots become dashes, long names are cut).
 */
export function operationName(machine: string, action: string, now: Date): string {
  const suffix = `-${action}-${now.getTime().toString(36)}${randomBytes(3).toString("hex")}`;
  const head = machine
    .replace(/\./g, "-")
    .slice(0, 63 - suffix.length)
    .replace(/-+$/, "");
  return `${head}${suffix}`;
}
