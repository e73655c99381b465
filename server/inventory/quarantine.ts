import { findCondition } from "./conditions.js";
import type { Machine } from "./types.js";

/**
 * The condition a Machine carries while its persisted state is quarantined (a corrupt or
 * unreadable state file). Rooms that act on trust (install entry, attestation pins, BMC power
 * actions) check it: the counters and pins they would compare against were lost, so acting
 * could wipe a disk or re-open a pin. Only an operator lifts it (`metalman state ...`).
 */
export const QUARANTINE_CONDITION = "StateQuarantined";

export function isQuarantined(machine: Pick<Machine, "status">): boolean {
  return findCondition(machine.status?.conditions, QUARANTINE_CONDITION)?.status === "True";
}
