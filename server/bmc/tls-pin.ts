import { createHash } from "node:crypto";
import type { MachineBackend } from "../inventory/backend.js";
import { UNCHANGED } from "../inventory/backend.js";
import { removeCondition, setCondition } from "../inventory/conditions.js";
import type { MachineStatus } from "../inventory/types.js";
import { BmcError } from "./driver.js";

/**
 * TLS trust on first use for BMCs (issue 6 §3, spec §8.1). The SHA-256 of the BMC's leaf
 * certificate is pinned in `status.redfish.certFingerprint` at first contact; afterwards every
 * new connection is compared with the pin as it is *now* (the pool re-reads it, upstream's
 * cached one did not), and a mismatch refuses the connection. Re-pinning is an explicit operator
 * action (`repinBmc`, called by the management API).
 */

/** Spec §2.2 format: lowercase hex pairs joined by `:` (95 characters for SHA-256). */
export function certFingerprint(der: Buffer): string {
  const hex = createHash("sha256").update(der).digest("hex");
  return hex.match(/../g)!.join(":");
}

const FINGERPRINT = /^[0-9a-f]{2}(?::[0-9a-f]{2}){31}$/;

/** Accepts upper-case and bare hex (what `openssl x509 -fingerprint` or a user pastes); undefined when it is not a SHA-256. */
export function normalizeFingerprint(value: string): string | undefined {
  const hex = value
    .trim()
    .toLowerCase()
    .replace(/^sha256 fingerprint=/, "")
    .replace(/[:\s]/g, "");
  if (!/^[0-9a-f]{64}$/.test(hex)) return undefined;
  const formatted = hex.match(/../g)!.join(":");
  return FINGERPRINT.test(formatted) ? formatted : undefined;
}

/** Where a BMC connection reads and writes its pin. The transport never caches `current()`. */
export interface PinStore {
  /** The pin in force now, or undefined before first contact. Called on every new connection. */
  current(): string | undefined;
  /** First contact: pin `fingerprint` unless a pin appeared meanwhile. Resolves to the pin now in force. */
  capture(fingerprint: string): Promise<string>;
  /** A connection was refused because of a mismatch (record it: condition, event). Must not throw. */
  mismatch(presented: string, pinned: string): void;
}

/** The condition a mismatch sets (True means trusted; it is only ever set False, and removed by a re-pin). */
export const CERT_CONDITION = "RedfishCertificateTrusted";

export interface PinEvents {
  emit(event: {
    step: `bmc.${string}`;
    result: "ok" | "error";
    machine: string;
    reason?: string;
    detail?: Record<string, string | number | boolean | undefined>;
  }): unknown;
}

export interface PinLog {
  warn(obj: object, msg: string): void;
}

/** `PinStore` over a Machine's status, through the backend (so it is durable and seen by every reader). */
export class MachinePinStore implements PinStore {
  /** The last mismatch recorded, so a BMC retried in a loop writes one condition and one event, not thousands. */
  private recorded = "";

  constructor(
    private readonly backend: MachineBackend,
    private readonly machine: string,
    private readonly events?: PinEvents,
    private readonly log?: PinLog,
  ) {}

  current(): string | undefined {
    const pin = this.backend.get(this.machine)?.status?.redfish?.certFingerprint;
    return pin ? pin : undefined;
  }

  async capture(fingerprint: string): Promise<string> {
    const result = await this.backend
      .updateStatus(this.machine, (machine) => {
        if (machine.status?.redfish?.certFingerprint) return UNCHANGED;
        const status: MachineStatus = { ...machine.status };
        status.redfish = { ...status.redfish, certFingerprint: fingerprint };
        // Spec §2.2 note: the first Redfish write creates `status.operations: {}` (templates rely on it).
        status.operations = status.operations ?? {};
        return status;
      })
      .catch((err: Error & { code?: string }) => {
        // No trust is taken for a Machine whose state is not trusted (docs/backend-contract.md).
        if (err.code === "QUARANTINED")
          throw new BmcError("quarantined", `machine ${this.machine} is quarantined; its BMC is not pinned`);
        throw err;
      });
    const pin = result.machine.status?.redfish?.certFingerprint ?? fingerprint;
    if (result.outcome === "updated") {
      this.events?.emit({
        step: "bmc.tls-pin",
        result: "ok",
        machine: this.machine,
        detail: { action: "pinned", fingerprint },
      });
    }
    return pin;
  }

  mismatch(presented: string, pinned: string): void {
    const key = `${presented}/${pinned}`;
    if (this.recorded === key) return;
    this.recorded = key;
    const event = () =>
      this.events?.emit({
        step: "bmc.tls-pin",
        result: "error",
        machine: this.machine,
        reason: "tls-pin-mismatch",
        detail: { presented, pinned },
      });
    const message =
      `BMC certificate SHA-256 ${presented} does not match the pinned ${pinned}; every BMC call is refused. ` +
      `If the certificate was replaced on purpose, re-pin it (metalman machine repin-bmc ${this.machine})`;
    this.backend
      .updateStatus(this.machine, (machine) => {
        const existing = machine.status?.conditions?.find((c) => c.type === CERT_CONDITION);
        if (existing && existing.status === "False" && existing.message === message) return UNCHANGED;
        return {
          ...machine.status,
          conditions: setCondition(machine.status?.conditions, {
            type: CERT_CONDITION,
            status: "False",
            reason: "FingerprintMismatch",
            message,
            observedGeneration: machine.metadata.generation,
          }),
        };
      })
      .then((result) => {
        // One event per distinct mismatch, also across drivers made for the same Machine: the
        // condition already showing it means it was recorded.
        if (result.outcome === "updated") event();
      })
      .catch((err: Error) => {
        // No condition (quarantined, gone, I/O): the event still records it.
        event();
        this.log?.warn({ machine: this.machine, err: err.message }, "bmc: cannot record the certificate mismatch");
      });
  }
}

export interface RepinOptions {
  /**
   * The fingerprint to trust (the one the mismatch condition showed, after the operator checked
   * it on the BMC). Without it the pin is cleared and the next contact pins what it finds.
   */
  fingerprint?: string;
  events?: PinEvents;
  /** Who asked (the management API records it in the event). */
  actor?: { user: string; transport: string };
}

/**
 * The operator's re-pin (management API `POST /machines/:name/bmc/repin`): sets or clears
 * `status.redfish.certFingerprint` and removes the mismatch condition. Refused for a
 * quarantined Machine (the backend throws QuarantinedError). Resolves to the pin now in force.
 */
export async function repinBmc(
  backend: MachineBackend,
  machine: string,
  options: RepinOptions = {},
): Promise<string | undefined> {
  let pin: string | undefined;
  if (options.fingerprint !== undefined) {
    pin = normalizeFingerprint(options.fingerprint);
    if (!pin)
      throw new TypeError("fingerprint must be a SHA-256 fingerprint (64 hex digits, optionally colon-separated)");
  }
  let previous: string | undefined;
  const result = await backend.updateStatus(machine, (m) => {
    previous = m.status?.redfish?.certFingerprint || undefined;
    const status: MachineStatus = { ...m.status };
    const redfish = { ...status.redfish };
    if (pin) redfish.certFingerprint = pin;
    else delete redfish.certFingerprint;
    status.redfish = redfish;
    status.conditions = removeCondition(m.status?.conditions, CERT_CONDITION);
    return status;
  });
  const now = result.machine.status?.redfish?.certFingerprint;
  options.events?.emit({
    step: "bmc.repin",
    result: "ok",
    machine,
    reason: now === undefined ? "cleared" : "pinned",
    detail: { previous, pinned: now, user: options.actor?.user, transport: options.actor?.transport },
  });
  return now;
}
