import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { writeFileAtomic } from "../util/atomic-file.js";
import type { MachineStatus } from "./types.js";

/**
 * What metalman owns about a Machine and keeps outside the user's files: the status, and the
 * bookkeeping that must survive a restart so `metadata.generation` never goes backwards
 * (conditions carry `observedGeneration`). One file per Machine: `<stateDir>/status/<name>.json`.
 * Files of Machines that vanished from the inventory are kept, so re-adding the Machine keeps
 * its EK pin, BMC certificate pin and counters.
 */
export interface MachineState {
  name: string;
  uid: string;
  creationTimestamp: string;
  generation: number;
  /** Canonical JSON of the spec the generation belongs to. */
  spec: string;
  status: MachineStatus;
}

export class MachineStateStore {
  readonly dir: string;

  constructor(
    stateDir: string,
    private readonly log: Logger,
  ) {
    this.dir = path.join(stateDir, "status");
  }

  /** Reads every state file; unreadable ones are logged and skipped (the Machine starts fresh). */
  async loadAll(): Promise<Map<string, MachineState>> {
    const states = new Map<string, MachineState>();
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return states;
      throw err;
    }
    for (const file of names.sort()) {
      if (!file.endsWith(".json") || file.startsWith(".")) continue;
      const full = path.join(this.dir, file);
      try {
        const state = parseState(JSON.parse(await readFile(full, "utf8")));
        if (state && `${state.name}.json` === file) states.set(state.name, state);
        else this.log.warn({ file: full }, "inventory: ignoring a malformed machine state file");
      } catch (err) {
        this.log.warn(
          { file: full, err: (err as Error).message },
          "inventory: ignoring an unreadable machine state file",
        );
      }
    }
    return states;
  }

  /** Durable once it resolves (temp file, fsync, rename, fsync of the folder). */
  async save(state: MachineState): Promise<void> {
    await writeFileAtomic(path.join(this.dir, `${state.name}.json`), JSON.stringify(state, null, 2) + "\n");
  }
}

function parseState(value: unknown): MachineState | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.name !== "string" || !/^[a-z0-9][-a-z0-9.]*$/.test(v.name)) return undefined;
  if (typeof v.status !== "object" || v.status === null || Array.isArray(v.status)) return undefined;
  return {
    name: v.name,
    uid: typeof v.uid === "string" ? v.uid : "",
    creationTimestamp: typeof v.creationTimestamp === "string" ? v.creationTimestamp : "",
    generation: Number.isSafeInteger(v.generation) && (v.generation as number) > 0 ? (v.generation as number) : 1,
    spec: typeof v.spec === "string" ? v.spec : "",
    status: v.status as MachineStatus,
  };
}
