/**
 * The one interface the BMC flows, the management API and the console use to act on a server's
 * BMC. Redfish (server/bmc/redfish/) and IPMI implement it; flows never import a client.
 *
 * Every method is bounded in time (the driver owns its timeouts and retries) and rejects with a
 * `BmcError` whose message is safe to show: it never contains credentials.
 */
export type PowerState = "On" | "Off" | "PoweringOn" | "PoweringOff" | "Unknown";

/** What the operator or a flow asks for; a driver maps it onto what its BMC allows. */
export type PowerAction = "On" | "ForceOff" | "GracefulShutdown" | "ForceRestart" | "PowerCycle";

export type BootTarget = "Pxe" | "Hdd" | "None";

export interface BootOverride {
  target: BootTarget;
  /**
   * Read back from the BMC: its own `BootSourceOverrideTarget` when that is not one of
   * `BootTarget` (`Cd`, `UefiHttp`, `BiosSetup`...; `target` is then "None"). Ignored when setting.
   */
  reportedTarget?: string;
  /** "Once" where the BMC allows it; the driver reports what it actually set. */
  enabled: "Once" | "Continuous" | "Disabled";
  mode?: "UEFI" | "Legacy";
}

export interface BmcDriver {
  /** A short description for logs and events, e.g. `redfish https://10.0.0.5/redfish/v1/Systems/1`. */
  readonly description: string;
  powerState(): Promise<PowerState>;
  /** Resolves once the BMC accepted the action (task monitors are polled to completion). */
  power(action: PowerAction): Promise<void>;
  /** Sets a boot override and resolves to what the BMC now reports. */
  setBootOverride(override: BootOverride): Promise<BootOverride>;
  bootOverride(): Promise<BootOverride>;
  /** Ends sessions and closes connections. */
  close(): Promise<void>;
}

export type BmcErrorCode =
  | "unreachable"
  | "timeout"
  | "auth"
  | "tls-pin-mismatch"
  | "not-supported"
  | "bad-response"
  | "bmc-error"
  /** The Machine's state is quarantined (docs/backend-contract.md): no BMC action until an operator lifts it. */
  | "quarantined";

export class BmcError extends Error {
  constructor(
    readonly code: BmcErrorCode,
    message: string,
    /** `@Message.ExtendedInfo` messages of the BMC, when it sent any. */
    readonly bmcMessages: readonly string[] = [],
  ) {
    super(message);
    this.name = "BmcError";
  }
}

/** A BMC answered with an HTTP error status (Redfish). `status` lets flows tell "unsupported" (400/404/405/501) from "busy". */
export class BmcHttpError extends BmcError {
  constructor(
    readonly status: number,
    message: string,
    bmcMessages: readonly string[] = [],
    code: BmcErrorCode = "bmc-error",
  ) {
    super(code, message, bmcMessages);
    this.name = "BmcHttpError";
  }
}

/** The leaf certificate of the BMC does not match the pinned fingerprint: every call is refused. */
export class BmcPinMismatchError extends BmcError {
  constructor(
    /** SHA-256 of the certificate presented now (spec §2.2 format). */
    readonly presented: string,
    /** The pinned `status.redfish.certFingerprint`. */
    readonly pinned: string,
  ) {
    super(
      "tls-pin-mismatch",
      `BMC TLS certificate SHA-256 ${presented} does not match the pinned ${pinned}; re-pin only if the certificate was replaced on purpose`,
    );
    this.name = "BmcPinMismatchError";
  }
}
