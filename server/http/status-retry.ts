import { setTimeout as sleep } from "node:timers/promises";
import { ConflictError, type MachineBackend } from "../inventory/backend.js";
import type { Machine, MachineStatus } from "../inventory/types.js";

export interface ConflictRetryOptions {
  /** Total attempts, first one included. Default 5 (client-go retry.DefaultRetry). */
  attempts: number;
  /** Pause between attempts. Default 10 ms. */
  delayMs: number;
}

export const DEFAULT_CONFLICT_RETRY: ConflictRetryOptions = { attempts: 5, delayMs: 10 };

export type StatusWriteOutcome =
  | { outcome: "updated"; machine: Machine; attempts: number }
  | { outcome: "unchanged"; machine: Machine }
  | { outcome: "gone" };

function isConflict(error: unknown): boolean {
  return error instanceof ConflictError || (error as { code?: unknown } | null)?.code === "CONFLICT";
}

/**
 * Read-decide-write with optimistic concurrency: `decide` sees the Machine as read and
 * returns the status mutation, or undefined when nothing needs writing. The write carries
 * the resourceVersion that was read; on ConflictError the Machine is re-read and `decide`
 * runs again (so the decision always matches the state it is written over). Other errors,
 * and a conflict on the last attempt, are thrown.
 */
export async function writeStatusWithRetry(
  backend: MachineBackend,
  name: string,
  decide: (machine: Machine) => ((status: MachineStatus) => MachineStatus) | undefined,
  retry: ConflictRetryOptions = DEFAULT_CONFLICT_RETRY,
): Promise<StatusWriteOutcome> {
  const attempts = Math.max(1, retry.attempts);
  for (let attempt = 1; ; attempt++) {
    const machine = backend.get(name);
    if (machine === undefined) return { outcome: "gone" };
    const mutate = decide(machine);
    if (mutate === undefined) return { outcome: "unchanged", machine };
    try {
      const expectedResourceVersion = machine.metadata.resourceVersion;
      const updated = await backend.updateStatus(
        name,
        mutate,
        expectedResourceVersion ? { expectedResourceVersion } : {},
      );
      return { outcome: "updated", machine: updated, attempts: attempt };
    } catch (error) {
      if (!isConflict(error) || attempt >= attempts) throw error;
      await sleep(retry.delayMs);
    }
  }
}
