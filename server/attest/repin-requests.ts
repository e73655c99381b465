import path from "node:path";
import type { BootEventBus } from "../events/boot-events.js";
import type { MachineBackend } from "../inventory/backend.js";
import {
  answerRequest,
  awaitResult,
  type OperatorRequest,
  type OperatorResult,
  pendingRequests,
  submitRequest,
} from "../inventory/operator-requests.js";
import { parseOperatorEk, repinTpm } from "./repin.js";

/**
 * How `metalman tpm repin` reaches a running serve-pxe: the same request-file mechanism as
 * `metalman state` (server/inventory/operator-requests.ts), in a folder of its own
 * (`<stateDir>/attest/requests/`), so the inventory never sees these requests. The state
 * folder's permissions are the access control. The management API calls `repinTpm` directly.
 */
export interface RepinRequest {
  action: "repin-tpm";
  machine: string;
  /** PEM of the new EK, to pin it at once. */
  ek?: string;
}

export function repinRequestsRoot(stateDir: string): string {
  return path.join(stateDir, "attest");
}

export async function submitRepin(
  stateDir: string,
  request: RepinRequest,
  waitMs: number,
): Promise<OperatorResult | undefined> {
  const root = repinRequestsRoot(stateDir);
  const id = await submitRequest(root, request as unknown as OperatorRequest);
  return awaitResult(root, id, waitMs);
}

/** Applies what is queued; answers every request (a failure names why). */
export async function applyRepinRequests(
  stateDir: string,
  backend: MachineBackend,
  events: BootEventBus,
): Promise<number> {
  const root = repinRequestsRoot(stateDir);
  let applied = 0;
  for (const file of await pendingRequests(root)) {
    const request = file.request as unknown as RepinRequest;
    try {
      if (request.action !== "repin-tpm") throw new Error(`unknown action ${request.action}`);
      const ek = request.ek ? parseOperatorEk(request.ek) : undefined;
      const { previous, pinned } = await repinTpm(backend, events, request.machine, { ek, by: "metalman tpm repin" });
      const was = previous ? `sha256:${previous.slice(0, 16)}` : "none";
      const now = pinned
        ? `pinned sha256:${pinned.slice(0, 16)}`
        : "cleared; the next attestation pins the TPM it sees";
      await answerRequest(root, file.id, true, `machine ${request.machine}: EK pin was ${was}, now ${now}`);
      applied++;
    } catch (error) {
      await answerRequest(root, file.id, false, `machine ${request.machine}: ${(error as Error).message}`);
    }
  }
  return applied;
}

/** Polls every `intervalMs` (default 1 s) while serve-pxe runs; returns the stop function. */
export function pollRepinRequests(
  stateDir: string,
  backend: MachineBackend,
  events: BootEventBus,
  onError: (error: unknown) => void,
  intervalMs = 1000,
): () => void {
  let busy = false;
  const tick = () => {
    if (busy) return;
    busy = true;
    applyRepinRequests(stateDir, backend, events)
      .catch(onError)
      .finally(() => {
        busy = false;
      });
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
