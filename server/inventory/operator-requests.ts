import { randomBytes } from "node:crypto";
import { readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../util/atomic-file.js";
import type { MachineStatus } from "./types.js";

/**
 * How `metalman state ...` (the operator CLI) talks to a running appliance without a network
 * port: it drops a request file into `<stateDir>/requests/`; the backend applies it (at once
 * when running, polled every second; else at its next start, before it serves anyone) and
 * answers with `<id>.result.json`. The state folder's permissions are the access control.
 */
export type OperatorRequest =
  | { action: "accept-reset"; machine: string; asInstalled?: boolean }
  | { action: "restore"; machine: string; status: MachineStatus; uid?: string; creationTimestamp?: string }
  | { action: "adopt"; machine: string; uid: string };

export interface OperatorRequestFile {
  id: string;
  createdAt: string;
  request: OperatorRequest;
}

export interface OperatorResult {
  id: string;
  ok: boolean;
  message: string;
  appliedAt: string;
}

export function requestsDir(stateDir: string): string {
  return path.join(stateDir, "requests");
}

export async function submitRequest(stateDir: string, request: OperatorRequest): Promise<string> {
  const id = `${Date.now()}-${randomBytes(4).toString("hex")}`;
  const body: OperatorRequestFile = { id, createdAt: new Date().toISOString(), request };
  await writeFileAtomic(path.join(requestsDir(stateDir), `${id}.request.json`), `${JSON.stringify(body, null, 2)}\n`);
  return id;
}

/** Pending requests, oldest first; unreadable ones are answered as failed and removed. */
export async function pendingRequests(stateDir: string): Promise<OperatorRequestFile[]> {
  const dir = requestsDir(stateDir);
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(".request.json") && !n.startsWith(".")).sort();
  } catch {
    return [];
  }
  const out: OperatorRequestFile[] = [];
  for (const name of names) {
    const id = name.slice(0, -".request.json".length);
    try {
      const value = JSON.parse(await readFile(path.join(dir, name), "utf8")) as OperatorRequestFile;
      if (value.id !== id || typeof value.request?.action !== "string" || typeof value.request.machine !== "string") {
        throw new Error("not a request");
      }
      out.push(value);
    } catch (err) {
      await answerRequest(stateDir, id, false, `unreadable request: ${(err as Error).message}`);
    }
  }
  return out;
}

export async function answerRequest(stateDir: string, id: string, ok: boolean, message: string): Promise<void> {
  const dir = requestsDir(stateDir);
  const result: OperatorResult = { id, ok, message, appliedAt: new Date().toISOString() };
  await writeFileAtomic(path.join(dir, `${id}.result.json`), `${JSON.stringify(result, null, 2)}\n`);
  await rm(path.join(dir, `${id}.request.json`), { force: true });
}

/** Polls for the answer to `id`; undefined when none came within `timeoutMs`. */
export async function awaitResult(
  stateDir: string,
  id: string,
  timeoutMs: number,
): Promise<OperatorResult | undefined> {
  const file = path.join(requestsDir(stateDir), `${id}.result.json`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const result = JSON.parse(await readFile(file, "utf8")) as OperatorResult;
      await rm(file, { force: true });
      return result;
    } catch {
      // Not answered yet.
    }
    if (Date.now() >= deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
