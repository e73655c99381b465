import { BmcError, type PowerAction, type PowerState } from "../driver.js";

/** The DMTF ResetType enum. Anything else in an allowable list (Supermicro's glued
 *  `GracefulShutdownGracefulRestart`) is junk and ignored. */
export const RESET_TYPES = new Set([
  "On",
  "ForceOff",
  "GracefulShutdown",
  "GracefulRestart",
  "ForceRestart",
  "Nmi",
  "ForceOn",
  "PushPowerButton",
  "PowerCycle",
  "Suspend",
  "Pause",
  "Resume",
  "FullPowerCycle",
]);

/** What to send for an action. `off-then-on`: ForceOff, wait until Off, then `on`. */
export type ResetPlan =
  | { kind: "none"; why: string }
  | { kind: "single"; resetType: string }
  | { kind: "off-then-on"; on: string };

/** Known values of an allowable list; undefined when the BMC does not say (then every standard value is assumed). */
export function cleanAllowable(values: unknown): string[] | undefined {
  if (!Array.isArray(values)) return undefined;
  const known = values.filter((v): v is string => typeof v === "string" && RESET_TYPES.has(v));
  return known.length > 0 ? known : undefined;
}

/**
 * Maps an operator intent onto what this BMC allows (fixtures README items 3 and 7):
 * - a cycle uses PowerCycle or ForceRestart when allowed, else ForceOff then On;
 * - a cycle or restart of a host that is Off is a plain On (iLO refuses to reset a host that is off);
 * - graceful off is GracefulShutdown, else PushPowerButton (iLO has no GracefulShutdown);
 * - On is On, else ForceOn, else PushPowerButton (only when the host is Off).
 */
export function planReset(action: PowerAction, allowed: readonly string[] | undefined, state: PowerState): ResetPlan {
  const may = (t: string) => allowed === undefined || allowed.includes(t);
  const first = (...types: string[]) => types.find(may);
  const onType = first("On", "ForceOn") ?? (state === "Off" ? first("PushPowerButton") : undefined);
  switch (action) {
    case "On": {
      if (state === "On") return { kind: "none", why: "already On" };
      if (!onType) throw unsupported(action, allowed);
      return { kind: "single", resetType: onType };
    }
    case "ForceOff": {
      if (state === "Off") return { kind: "none", why: "already Off" };
      if (!may("ForceOff")) throw unsupported(action, allowed);
      return { kind: "single", resetType: "ForceOff" };
    }
    case "GracefulShutdown": {
      if (state === "Off") return { kind: "none", why: "already Off" };
      const t = first("GracefulShutdown", "PushPowerButton");
      if (!t) throw unsupported(action, allowed);
      return { kind: "single", resetType: t };
    }
    case "ForceRestart":
    case "PowerCycle": {
      if (state === "Off") {
        if (!onType) throw unsupported(action, allowed);
        return { kind: "single", resetType: onType };
      }
      const preferred =
        action === "PowerCycle" ? first("PowerCycle", "ForceRestart") : first("ForceRestart", "PowerCycle");
      if (preferred) return { kind: "single", resetType: preferred };
      if (may("ForceOff") && onType) return { kind: "off-then-on", on: onType };
      throw unsupported(action, allowed);
    }
  }
}

function unsupported(action: PowerAction, allowed: readonly string[] | undefined): BmcError {
  return new BmcError(
    "not-supported",
    `the BMC allows no reset for ${action} (ResetType allowed: ${allowed?.join(", ") ?? "unknown"})`,
  );
}

/** Redfish PowerState, case-insensitively; `Paused` and anything unknown are "Unknown". */
export function parsePowerState(value: unknown): PowerState {
  if (typeof value !== "string") return "Unknown";
  switch (value.toLowerCase()) {
    case "on":
      return "On";
    case "off":
      return "Off";
    case "poweringon":
      return "PoweringOn";
    case "poweringoff":
      return "PoweringOff";
    default:
      return "Unknown";
  }
}
