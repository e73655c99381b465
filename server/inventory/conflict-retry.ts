import { setTimeout as sleep } from "node:timers/promises";
import { ConflictError, NotFoundError, type StatusMutation, type StatusUpdate, UNCHANGED } from "./backend.js";
import type { Machine, MachineStatus } from "./types.js";

export interface ConflictRetryOptions {
  /** Total attempts, first one included. Default 8. */
  attempts: number;
  /** Pause before the second attempt; doubles each time, with jitter. Default 5 ms. */
  delayMs: number;
}

export const DEFAULT_CONFLICT_RETRY: ConflictRetryOptions = { attempts: 8, delayMs: 5 };

export function isConflict(error: unknown): boolean {
  return error instanceof ConflictError || (error as { code?: unknown } | null)?.code === "CONFLICT";
}

/**
 * The `updateStatus` loop of a backend with optimistic concurrency (the cluster sync, the
 * test fakes): read the Machine from the source of truth (`readFresh`: a GET from the API
 * server, never an informer cache that may be behind), let `mutate` decide on it, write with
 * the version read (`write` rejects with ConflictError when it moved on), and on conflict start
 * over. The decision is always made on the state it is written over.
 */
export async function updateWithConflictRetry(
  name: string,
  readFresh: () => Promise<Machine | undefined>,
  write: (read: Machine, status: MachineStatus) => Promise<Machine>,
  mutate: StatusMutation,
  retry: ConflictRetryOptions = DEFAULT_CONFLICT_RETRY,
): Promise<StatusUpdate> {
  const attempts = Math.max(1, retry.attempts);
  for (let attempt = 1; ; attempt++) {
    const machine = await readFresh();
    if (machine === undefined) throw new NotFoundError(name);
    const status = mutate(machine);
    if (status === UNCHANGED) return { outcome: "unchanged", machine, attempts: attempt };
    try {
      return { outcome: "updated", machine: await write(machine, status), attempts: attempt };
    } catch (error) {
      if (!isConflict(error) || attempt >= attempts) throw error;
      const base = retry.delayMs * 2 ** (attempt - 1);
      await sleep(base / 2 + Math.random() * base);
    }
  }
}
