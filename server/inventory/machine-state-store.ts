import { readdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { writeFileAtomic } from "../util/atomic-file.js";
import type { Quarantine } from "./backend.js";
import { moveAside } from "./corrupt-file.js";
import { isDns1123Subdomain } from "./formats.js";
import { stateFileName } from "./state-file-name.js";
import type { MachineStatus } from "./types.js";

/**
 * What metalman owns about a Machine and keeps outside the user's files: the status, and the
 * bookkeeping that must survive a restart so `metadata.generation` never goes backwards
 * (conditions carry `observedGeneration`). One file per Machine: `<stateDir>/status/<file>`
 * (state-file-name.ts). A Machine deleted from the inventory has its state moved to
 * `status/archive/<uid>.json`: a Machine created again under that name is a new Machine
 * (new uid, no pins, no counters) unless an operator adopts the archived state.
 */
export interface MachineState {
  name: string;
  uid: string;
  creationTimestamp: string;
  generation: number;
  /** Canonical JSON of the spec the generation belongs to. */
  spec: string;
  status: MachineStatus;
  /** Set while the state is quarantined (its earlier file was corrupt); lifted only by an operator. */
  quarantine?: Quarantine;
}

/** A state file that could not be trusted at load; it was moved aside (never overwritten). */
export interface SuspectStateFile {
  /** The state file name it had, which is `stateFileName()` of the Machine it belonged to. */
  fileName: string;
  file: string;
  movedTo?: string;
  reason: Quarantine["reason"];
  error: string;
}

export interface LoadedStates {
  states: Map<string, MachineState>;
  /** By `fileName`. */
  suspects: Map<string, SuspectStateFile>;
}

export class MachineStateStore {
  readonly dir: string;
  readonly archiveDir: string;

  constructor(
    stateDir: string,
    private readonly log: Logger,
  ) {
    this.dir = path.join(stateDir, "status");
    this.archiveDir = path.join(this.dir, "archive");
  }

  fileOf(name: string): string {
    return path.join(this.dir, stateFileName(name));
  }

  /**
   * Reads every state file. A file that does not read, parse or validate, or whose name does not
   * match the Machine inside, is moved to `<file>.corrupt` and returned as a suspect: its Machine
   * is quarantined instead of starting afresh (a fresh status would offer the install again).
   * A `<file>.corrupt` left without a new `<file>` (a crash right after the move) is a suspect too.
   */
  async loadAll(): Promise<LoadedStates> {
    const states = new Map<string, MachineState>();
    const suspects = new Map<string, SuspectStateFile>();
    let names: string[];
    try {
      names = (await readdir(this.dir)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { states, suspects };
      throw err;
    }
    const present = new Set(names);
    for (const file of names) {
      if (file.startsWith(".")) continue;
      const full = path.join(this.dir, file);
      const corrupt = /^(.+\.json)\.corrupt(\.\d+)?$/.exec(file);
      if (corrupt) {
        const fileName = corrupt[1]!;
        if (!present.has(fileName) && !suspects.has(fileName)) {
          suspects.set(fileName, {
            fileName,
            file: path.join(this.dir, fileName),
            movedTo: full,
            reason: "CorruptStateFile",
            error: "left corrupt by an earlier run",
          });
        }
        continue;
      }
      if (!file.endsWith(".json")) continue;
      let text: string;
      try {
        text = await readFile(full, "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EISDIR") continue;
        suspects.set(file, await this.setAside(file, full, "UnreadableStateFile", (err as Error).message));
        continue;
      }
      let error = "";
      let state: MachineState | undefined;
      try {
        state = parseState(JSON.parse(text));
        if (!state) error = "not a machine state (fields missing or of the wrong type)";
        else if (stateFileName(state.name) !== file)
          error = `holds Machine ${state.name}, which belongs in another file`;
      } catch (err) {
        error = `invalid JSON: ${(err as Error).message}`;
      }
      if (state && error === "") states.set(state.name, state);
      else suspects.set(file, await this.setAside(file, full, "CorruptStateFile", error));
    }
    return { states, suspects };
  }

  /** Durable once it resolves (temp file, fsync, rename, fsync of the folder). */
  async save(state: MachineState): Promise<void> {
    await writeFileAtomic(this.fileOf(state.name), `${JSON.stringify(state, null, 2)}\n`);
  }

  /**
   * A deleted Machine's state (pins, counters, uid) goes to `archive/<uid>.json` and leaves the
   * live folder, together with any `.corrupt` copies of its file.
   */
  async archive(state: MachineState, deletedAt: string): Promise<string> {
    const target = path.join(this.archiveDir, `${state.uid}.json`);
    await writeFileAtomic(target, `${JSON.stringify({ ...state, deletedAt }, null, 2)}\n`);
    await rm(this.fileOf(state.name), { force: true });
    await this.archiveCorruptCopies(state.name);
    return target;
  }

  /** Moves `<file>.corrupt*` of `name` into the archive folder (after an operator resolved them). */
  async archiveCorruptCopies(name: string): Promise<void> {
    const fileName = stateFileName(name);
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    for (const file of names) {
      if (!file.startsWith(`${fileName}.corrupt`)) continue;
      const stamp = new Date().toISOString().replace(/[:.]/g, "-");
      await writeFileAtomic(path.join(this.archiveDir, `${stamp}.${file}`), await readFile(path.join(this.dir, file)));
      await rm(path.join(this.dir, file), { force: true });
    }
  }

  /** Archived states (deleted Machines), for `metalman state list` and `adopt`. */
  async loadArchive(): Promise<Array<MachineState & { deletedAt?: string }>> {
    let names: string[];
    try {
      names = (await readdir(this.archiveDir)).filter((n) => n.endsWith(".json") && !n.startsWith(".")).sort();
    } catch {
      return [];
    }
    const out: Array<MachineState & { deletedAt?: string }> = [];
    for (const file of names) {
      try {
        const raw = JSON.parse(await readFile(path.join(this.archiveDir, file), "utf8")) as Record<string, unknown>;
        const state = parseState(raw);
        if (state && `${state.uid}.json` === file) {
          out.push({ ...state, ...(typeof raw.deletedAt === "string" ? { deletedAt: raw.deletedAt } : {}) });
        }
      } catch {
        // Not ours to judge: archived files are only read, never acted on automatically.
      }
    }
    return out;
  }

  /** Removes an archived state once it was adopted (it now lives in the live folder again). */
  async dropArchived(uid: string): Promise<void> {
    await rm(path.join(this.archiveDir, `${uid}.json`), { force: true });
  }

  private async setAside(
    fileName: string,
    full: string,
    reason: SuspectStateFile["reason"],
    error: string,
  ): Promise<SuspectStateFile> {
    let movedTo: string | undefined;
    try {
      movedTo = await moveAside(full);
    } catch (err) {
      this.log.error({ file: full, err: (err as Error).message }, "inventory: cannot move a suspect state file aside");
    }
    this.log.error(
      { file: full, movedTo, error },
      "inventory: machine state file cannot be trusted; its Machine is quarantined",
    );
    return { fileName, file: full, movedTo, reason, error };
  }
}

/** Strict: a state file that is valid JSON but has the wrong shape is as suspect as torn bytes. */
export function parseState(value: unknown): MachineState | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.name !== "string" || !isDns1123Subdomain(v.name)) return undefined;
  if (typeof v.status !== "object" || v.status === null || Array.isArray(v.status)) return undefined;
  if (typeof v.uid !== "string" || v.uid === "") return undefined;
  if (typeof v.creationTimestamp !== "string") return undefined;
  if (!Number.isSafeInteger(v.generation) || (v.generation as number) < 1) return undefined;
  if (typeof v.spec !== "string") return undefined;
  const status = v.status as Record<string, unknown>;
  if (status.conditions !== undefined && !Array.isArray(status.conditions)) return undefined;
  if (status.operations !== undefined && (typeof status.operations !== "object" || status.operations === null)) {
    return undefined;
  }
  const state: MachineState = {
    name: v.name,
    uid: v.uid,
    creationTimestamp: v.creationTimestamp,
    generation: v.generation as number,
    spec: v.spec,
    status: v.status as MachineStatus,
  };
  if (typeof v.quarantine === "object" && v.quarantine !== null) state.quarantine = v.quarantine as Quarantine;
  return state;
}
