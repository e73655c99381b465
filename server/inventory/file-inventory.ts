import { randomUUID } from "node:crypto";
import { type FSWatcher, watch as fsWatch, type Stats, statSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import {
  type BackendProblem,
  type MachineBackend,
  type MachineEvent,
  type MachineList,
  NotFoundError,
  type Quarantine,
  QuarantinedError,
  type StatusMutation,
  type StatusUpdate,
  type StatusUpdateOptions,
  UNCHANGED,
  type WatchOptions,
} from "./backend.js";
import { canonicalJson } from "./canonical-json.js";
import { removeCondition, setCondition } from "./conditions.js";
import { deepFreeze } from "./deep-freeze.js";
import { FileMachineOperationStore } from "./file-operation-store.js";
import { FileSecretStore, type ManifestObject, readableByOthers } from "./file-secrets.js";
import { parseInventoryFile } from "./inventory-file.js";
import { KeyedLock } from "./keyed-lock.js";
import { MachineValidator } from "./machine-schema.js";
import { type MachineState, MachineStateStore, type SuspectStateFile } from "./machine-state-store.js";
import { answerRequest, type OperatorRequest, pendingRequests } from "./operator-requests.js";
import { QUARANTINE_CONDITION } from "./quarantine.js";
import { ResourceVersionClock } from "./resource-version.js";
import { stateFileName } from "./state-file-name.js";
import { type Machine, type MachineStatus, SITE_LABEL } from "./types.js";
import { WatchHub } from "./watch-hub.js";

export interface FileInventoryOptions {
  /** Folder of `*.yaml` / `*.yml` files (top level only; multi-document files allowed). */
  dir: string;
  /** metalman's own state; Machine status lives in `<stateDir>/status/<name>.json`. */
  stateDir: string;
  /** `--site`: only Machines labelled with it; empty or absent: only Machines without the label (§1.3). */
  site?: string;
  log: Logger;
  metrics?: Registry;
  /** Reload on change (fs.watch plus a periodic rescan). Default true. */
  watch?: boolean;
  /** Quiet time after a change event before reloading. Default 200 ms. */
  debounceMs?: number;
  /**
   * Periodic rescan for filesystems where fs.watch misses events. Every tick stats the folder
   * (a changed listing is re-read); every file is stat'ed on a tick only while there is no
   * working folder watch, or once per `fullRescanIntervalMs`. Default 5000 ms.
   */
  rescanIntervalMs?: number;
  /** While the folder watch works: how often a tick stats every file anyway. Default 60 s. */
  fullRescanIntervalMs?: number;
  /**
   * A Machine that vanished from the inventory keeps serving this long, and is deleted only if
   * it is still gone then: an editor that deletes and re-creates a file, or a file caught
   * half-written at a document boundary, never deletes Machines. Default 2000 ms.
   */
  deletionGraceMs?: number;
  /** How often operator requests (`metalman state ...`) are looked for while running. Default 1000 ms. */
  requestPollMs?: number;
  /** `load()` rejects when any file is invalid (instead of skipping it). Default false. */
  strict?: boolean;
  /** Bounds: files beyond `maxFiles` and files larger than `maxFileBytes` are reported, not read. */
  maxFiles?: number;
  maxFileBytes?: number;
  now?: () => Date;
}

/** An invalid file or document, for /readyz and the console. `message` names file and field. */
export interface InventoryProblem {
  file: string;
  message: string;
}

/** Two Machines claiming one name, MAC or IPv4. The first (by file order for names, by name otherwise) wins. */
export interface InventoryConflict {
  kind: "name" | "mac" | "ipv4";
  key: string;
  winner: string;
  losers: string[];
  message: string;
}

interface FileRecord {
  label: string;
  /** Of the file a symlink points to (ConfigMap mounts): a swapped target is a new inode. */
  ino: number;
  mtimeMs: number;
  ctimeMs: number;
  size: number;
  machines: Machine[];
  problems: string[];
  /** Secrets and ConfigMaps (never logged: their values stay inside FileSecretStore). */
  manifests: ManifestObject[];
}

interface Entry {
  /** Deep-frozen: handed to callers as is. */
  machine: Machine;
  file: string;
  /** The file record's Machine this entry was built from: the same object means nothing to compare. */
  source: Machine;
  /** Canonical JSON of spec, and of the user-owned metadata (labels, annotations). */
  spec: string;
  meta: string;
}

interface Candidate {
  machine: Machine;
  file: string;
}

const YAML_FILE = /\.ya?ml$/;
/** Files stat'ed per turn of the event loop during a scan: keeps each burst around a millisecond. */
const STAT_BATCH = 128;
/** A folder modified this recently may still change within its mtime granularity: list it again. */
const RACY_DIR_MS = 2000;

/**
 * MachineBackend over a folder of Machine YAML files (the appliance's inventory).
 *
 * - The user's files are read-only to us: status goes to the state folder, written atomically
 *   before an update resolves, and merged onto the Machine on read.
 * - A file that turns invalid on reload keeps serving its last valid Machines (a half-saved file
 *   must not make DHCP forget a host); the problem is reported through `errors()`.
 * - Duplicate names, MACs and IPs are never resolved silently: the deterministic winner serves,
 *   and the conflict is logged and listed by `conflicts()` (spec §12 item 24).
 */
export class FileInventory implements MachineBackend {
  private readonly dir: string;
  private readonly site: string;
  private readonly log: Logger;
  private readonly validator = new MachineValidator();
  private readonly stateStore: MachineStateStore;
  private readonly locks = new KeyedLock();
  private readonly clock: ResourceVersionClock;
  private readonly hub: WatchHub<MachineEvent>;
  readonly operations: FileMachineOperationStore;
  /** The folder's `v1` Secrets and ConfigMaps (BMC passwords, user-data), for the rooms that need them. */
  readonly secrets = new FileSecretStore();
  /** State files that could not be trusted at load, by file name; matched to Machines as they appear. */
  private suspects = new Map<string, SuspectStateFile>();
  /** Machines whose state must not be written (their suspect file could not be moved aside). */
  private readonly frozenStates = new Set<string>();
  /** Machines absent from the inventory since (ms): deleted once the grace has passed. */
  private readonly missingSince = new Map<string, number>();
  private graceTimer: NodeJS.Timeout | undefined;
  private requestTimer: NodeJS.Timeout | undefined;
  private pendingApply = false;
  private applyingRequests: Promise<void> | undefined;
  private stateProblems = new Map<string, BackendProblem>();
  private readonly now: () => Date;
  private readonly collate = new Intl.Collator().compare;

  private files = new Map<string, FileRecord>();
  /** The folder's YAML files (sorted, capped at maxFiles) as of `listingStamp`. */
  private listing: string[] = [];
  private listed = new Set<string>();
  /** mtime/ctime of the folder when `listing` was read; "" = read it again next time. */
  private listingStamp = "";
  /** Work for the next reload pass. */
  private pendingReadAll = false;
  private pendingStatAll = false;
  private pendingList = false;
  private dirtyFiles = new Set<string>();
  private lastStatAll = 0;
  private entries = new Map<string, Entry>();
  private states = new Map<string, MachineState>();
  private macIndex = new Map<string, string>();
  private ipIndex = new Map<string, string>();
  private conflictList: InventoryConflict[] = [];
  private dirProblems: string[] = [];

  private watcher: FSWatcher | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private debounceStarted = 0;
  private reloading: Promise<void> | undefined;
  private closed = false;
  private readonly metrics: InventoryMetrics | undefined;

  constructor(private readonly options: FileInventoryOptions) {
    this.dir = path.resolve(options.dir);
    this.site = options.site ?? "";
    this.log = options.log.child({ component: "inventory" });
    this.stateStore = new MachineStateStore(options.stateDir, this.log);
    this.now = options.now ?? (() => new Date());
    this.clock = new ResourceVersionClock(path.join(options.stateDir, "resource-version.json"));
    this.hub = new WatchHub(this.log, () => this.clock.now());
    this.operations = new FileMachineOperationStore(options.stateDir, this.clock, this.log, this.now);
    this.metrics = options.metrics ? new InventoryMetrics(options.metrics) : undefined;
  }

  /** Initial load: persisted state, then every file. Starts watching unless `watch: false`. */
  async load(): Promise<void> {
    const clockProblem = this.clock.open();
    if (clockProblem) this.log.error(`inventory: ${clockProblem}`);
    this.hub.reset();
    const loaded = await this.stateStore.loadAll();
    this.states = loaded.states;
    this.suspects = loaded.suspects;
    for (const suspect of this.suspects.values()) {
      if (!suspect.movedTo) this.frozenStates.add(suspect.fileName);
    }
    await this.operations.load();
    await this.reload();
    // Requests queued while we were down are applied before anyone is served.
    await this.applyOperatorRequests();
    if (this.options.strict) {
      const problems = this.errors();
      if (problems.length > 0) {
        await this.close();
        throw new Error(
          `inventory ${this.dir} has ${problems.length} problem(s):\n` +
            problems.map((p) => `  ${p.message}`).join("\n"),
        );
      }
    }
    if (this.options.watch ?? true) this.startWatching();
    this.refreshStateProblems();
  }

  /** Re-reads every file now (also used for SIGHUP). Concurrent calls share one pass plus one follow-up. */
  async reload(): Promise<void> {
    this.pendingReadAll = true;
    await this.requestReload();
  }

  /**
   * What the periodic rescan does: stats the folder and every file, and re-reads only files
   * whose mtime, ctime or size changed (plus added and removed ones). Nothing changed: no
   * parsing, no index rebuild, no events.
   */
  async rescan(): Promise<void> {
    this.pendingStatAll = true;
    await this.requestReload();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    clearInterval(this.rescanTimer);
    clearInterval(this.requestTimer);
    clearTimeout(this.debounceTimer);
    clearTimeout(this.graceTimer);
    this.hub.clear();
    await this.reloading?.catch(() => undefined);
    await this.locks.idle();
    await this.operations.close();
  }

  /** Machines are deep-frozen and shared, not copied: a caller that wants to change one copies it. */
  get(name: string): Machine | undefined {
    return this.entries.get(name)?.machine;
  }

  list(): MachineList {
    // Read synchronously with the entries: the version is exactly the state this list shows.
    const items = [...this.entries.keys()].sort().map((name) => this.entries.get(name)!.machine);
    return Object.assign(items, { resourceVersion: this.clock.now() });
  }

  byMac(mac: string): Machine | undefined {
    const name = this.macIndex.get(mac.toLowerCase());
    return name === undefined ? undefined : this.entries.get(name)?.machine;
  }

  byIp(ip: string): Machine | undefined {
    // Dual-stack sockets report IPv4 peers as IPv4-mapped IPv6 addresses.
    const v4 = ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip;
    const name = this.ipIndex.get(v4);
    return name === undefined ? undefined : this.entries.get(name)?.machine;
  }

  /** Folder of the file that defines `name`: relative `dir:` image paths resolve against it. */
  sourceDirOf(name: string): string | undefined {
    const entry = this.entries.get(name);
    return entry ? path.dirname(entry.file) : undefined;
  }

  /** The file that defines `name` (the console's writer edits it: server/inventory/file-inventory-writer.ts). */
  sourceFileOf(name: string): string | undefined {
    return this.entries.get(name)?.file;
  }

  errors(): InventoryProblem[] {
    const problems: InventoryProblem[] = this.dirProblems.map((message) => ({ file: this.dir, message }));
    for (const [file, record] of [...this.files.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      for (const message of record.problems) problems.push({ file, message });
    }
    problems.push(...this.secrets.conflicts());
    return problems;
  }

  conflicts(): InventoryConflict[] {
    return this.conflictList.map((c) => ({ ...c, losers: [...c.losers] }));
  }

  watch(listener: (event: MachineEvent) => void, options: WatchOptions = {}): () => void {
    return this.hub.watch(listener, options.resourceVersion);
  }

  problems(): BackendProblem[] {
    const inventory = this.errors().map((p): BackendProblem => ({ kind: "inventory", ...p }));
    return [...inventory, ...[...this.stateProblems.values()], ...this.operations.problems()];
  }

  quarantine(name: string): Quarantine | undefined {
    return this.states.get(name)?.quarantine;
  }

  /**
   * Standalone there is one writer per Machine at a time (a per-Machine lock), and `mutate`
   * runs on the live Machine inside it: no write is ever based on a stale read, so there is
   * nothing to retry, and 60 concurrent writers all land, in arrival order.
   */
  updateStatus(name: string, mutate: StatusMutation, options: StatusUpdateOptions = {}): Promise<StatusUpdate> {
    return this.locks.run(name, async () => {
      const entry = this.entries.get(name);
      if (!entry) throw new NotFoundError(name);
      const quarantine = this.states.get(name)?.quarantine;
      if (quarantine && !options.allowQuarantined) throw new QuarantinedError(quarantine);
      const result = mutate(entry.machine);
      if (result === UNCHANGED) return { outcome: "unchanged", machine: entry.machine, attempts: 1 };
      // A quarantined Machine keeps its condition whatever a writer does.
      const status = quarantine ? withQuarantine(structuredClone(result), quarantine) : structuredClone(result);
      if (canonicalJson(status) === canonicalJson(entry.machine.status ?? {})) {
        return { outcome: "unchanged", machine: entry.machine, attempts: 1 };
      }
      const state = { ...this.stateFor(entry), status: structuredClone(status) };
      await this.saveState(state, true);
      this.states.set(name, state);
      // The entry may have been replaced by a reload while we were writing; update the live one.
      const live = this.entries.get(name);
      if (!live) throw new NotFoundError(name);
      live.machine = deepFreeze({
        ...live.machine,
        metadata: { ...live.machine.metadata, resourceVersion: this.clock.next() },
        status,
      });
      this.emit({ type: "MODIFIED", machine: live.machine });
      return { outcome: "updated", machine: live.machine, attempts: 1 };
    });
  }

  /** Writes a state file unless it is frozen (its suspect predecessor could not be moved aside). */
  private async saveState(state: MachineState, rethrow: boolean): Promise<void> {
    if (this.frozenStates.has(stateFileName(state.name))) {
      const error = new Error(`state file of ${state.name} cannot be trusted and could not be moved aside`);
      if (rethrow) throw error;
      this.log.error({ machine: state.name }, `inventory: ${error.message}; not writing it`);
      return;
    }
    try {
      await this.stateStore.save(state);
      this.metrics?.statusWrites.inc({ result: "ok" });
    } catch (err) {
      this.metrics?.statusWrites.inc({ result: "error" });
      if (rethrow) throw err;
      // Serving beats bookkeeping: carry on in memory and say so.
      this.log.error({ err, machine: state.name }, "inventory: cannot persist machine state");
    }
  }

  // ---- operator requests (metalman state ...) -------------------------------------------------

  /** Applies queued `metalman state` requests, one at a time, each under its Machine's lock. */
  applyOperatorRequests(): Promise<void> {
    // Single flight: a poll tick must not pick up a request the previous one is still applying.
    this.applyingRequests ??= this.applyPendingRequests().finally(() => {
      this.applyingRequests = undefined;
    });
    return this.applyingRequests;
  }

  private async applyPendingRequests(): Promise<void> {
    for (const file of await pendingRequests(this.options.stateDir)) {
      const request = file.request;
      let ok = true;
      let message: string;
      try {
        message = await this.locks.run(request.machine, () => this.applyRequest(request));
      } catch (err) {
        ok = false;
        message = (err as Error).message;
      }
      this.log.warn({ request, ok, result: message }, "inventory: operator request applied");
      await answerRequest(this.options.stateDir, file.id, ok, message);
    }
    this.refreshStateProblems();
  }

  private async applyRequest(request: OperatorRequest): Promise<string> {
    const name = request.machine;
    const current = this.states.get(name);
    const entry = this.entries.get(name);
    let next: MachineState;
    switch (request.action) {
      case "accept-reset": {
        const suspect = this.suspects.get(stateFileName(name));
        if (!current && suspect) {
          // The suspect file's Machine is not in the inventory: just stop reporting it.
          this.suspects.delete(suspect.fileName);
          this.frozenStates.delete(suspect.fileName);
          await this.stateStore.archiveCorruptCopies(name);
          return `machine ${name}: suspect state file ${suspect.file} set aside for good`;
        }
        if (!current?.quarantine) throw new Error(`machine ${name} is not quarantined; nothing to accept`);
        const status: MachineStatus = {};
        if (request.asInstalled) {
          // The operator vouches that the disk holds the installed system: nothing is pending.
          const ops = entry?.machine.spec.operations;
          status.operations = { rebootCounter: ops?.rebootCounter ?? 0, repaveCounter: ops?.repaveCounter ?? 0 };
        }
        next = { ...current, status };
        delete next.quarantine;
        break;
      }
      case "restore": {
        if (!current) throw new Error(`machine ${name} has no state to restore over`);
        next = {
          ...current,
          uid: request.uid || current.uid,
          creationTimestamp: request.creationTimestamp || current.creationTimestamp,
          status: removeConditionOf(request.status),
        };
        delete next.quarantine;
        break;
      }
      case "adopt": {
        const archived = (await this.stateStore.loadArchive()).find((a) => a.uid === request.uid);
        if (!archived) throw new Error(`no archived state with uid ${request.uid}`);
        if (archived.name !== name)
          throw new Error(`archived state ${request.uid} belonged to ${archived.name}, not ${name}`);
        const { deletedAt: _d, ...state } = archived;
        // The spec it was created under may differ: keep the generation monotonic from there.
        next = {
          ...state,
          spec: current?.spec ?? state.spec,
          generation: Math.max(state.generation, current?.generation ?? 1),
        };
        break;
      }
      default:
        throw new Error(`unknown action ${(request as { action: string }).action}`);
    }
    this.frozenStates.delete(stateFileName(name));
    this.suspects.delete(stateFileName(name));
    await this.stateStore.save(next);
    await this.stateStore.archiveCorruptCopies(name);
    if (request.action === "adopt") await this.stateStore.dropArchived(request.uid);
    this.states.set(name, next);
    const live = this.entries.get(name);
    if (live) {
      live.machine = deepFreeze({
        ...live.machine,
        metadata: {
          ...live.machine.metadata,
          uid: next.uid,
          creationTimestamp: next.creationTimestamp,
          generation: next.generation,
          resourceVersion: this.clock.next(),
        },
        status: structuredClone(next.status),
      });
      this.emit({ type: "MODIFIED", machine: live.machine });
    }
    return `machine ${name}: ${request.action} done${live ? "" : " (not in the inventory now; applies when it appears)"}`;
  }

  private refreshStateProblems(): void {
    const problems = new Map<string, BackendProblem>();
    for (const state of this.states.values()) {
      const q = state.quarantine;
      if (q) problems.set(state.name, { kind: "state", file: q.file, machine: state.name, message: q.message });
    }
    for (const suspect of this.suspects.values()) {
      if ([...problems.values()].some((p) => p.file === suspect.file)) continue;
      problems.set(suspect.fileName, {
        kind: "state",
        file: suspect.file,
        message: `state file ${suspect.file} cannot be trusted (${suspect.error})${suspect.movedTo ? `; moved to ${suspect.movedTo}` : ""}; its Machine will be quarantined`,
      });
    }
    this.stateProblems = problems;
  }

  // ---- reload -------------------------------------------------------------------------------

  private hasPendingWork(): boolean {
    return this.pendingReadAll || this.pendingStatAll || this.pendingList || this.dirtyFiles.size > 0;
  }

  private requestReload(): Promise<void> {
    if (this.reloading) return this.reloading;
    this.reloading = (async () => {
      try {
        do await this.reloadOnce();
        while (this.hasPendingWork() && !this.closed);
      } finally {
        this.reloading = undefined;
      }
    })();
    return this.reloading;
  }

  private async reloadOnce(): Promise<void> {
    const problemsBefore = this.dirProblems.join("\n");
    try {
      const changed = (await this.scanFiles()) || this.pendingApply;
      this.pendingApply = false;
      if (changed) {
        this.indexManifests();
        await this.applyCandidates(this.composeCandidates());
        this.metrics?.reloads.inc({ result: "ok" });
      }
      if (changed || this.dirProblems.join("\n") !== problemsBefore) this.updateGauges();
    } catch (err) {
      this.metrics?.reloads.inc({ result: "error" });
      this.log.error({ err }, "inventory: reload failed");
      this.updateGauges();
    }
  }

  /**
   * Brings `files` up to date with the folder and says whether any record changed. Takes the
   * pending work: read everything (reload), stat everything (rescan), or only the folder
   * listing and the files a watch event named. Unchanged files keep their record object.
   */
  private async scanFiles(): Promise<boolean> {
    const readAll = this.pendingReadAll;
    const statAll = readAll || this.pendingStatAll;
    // A full stat pass trusts the folder's mtime for the listing; only a reload re-lists for sure.
    const forceList = readAll;
    const dirty = this.dirtyFiles;
    this.pendingReadAll = false;
    this.pendingStatAll = false;
    this.pendingList = false;
    this.dirtyFiles = new Set();
    this.metrics?.scans.inc();

    const fresh = await this.readListing(forceList);
    if (fresh === undefined) return false;
    if (!fresh && !statAll && dirty.size === 0) return false;
    const listing = this.listing;
    let changed = false;
    if (fresh) {
      for (const file of this.files.keys()) {
        if (!this.listed.has(file)) {
          this.files.delete(file);
          changed = true;
        }
      }
    }
    // Which files to look at: all of them on a full pass; otherwise new ones and named ones.
    // A changed listing stats every file: a ConfigMap update (kubelet swaps the `..data`
    // symlink) changes every file behind unchanged names, and moves the folder's mtime.
    let examine: string[];
    if (statAll || fresh) examine = listing;
    else examine = [...dirty].filter((file) => this.listed.has(file)).sort();
    if (statAll) this.lastStatAll = Date.now();
    // First stat (synchronously, in small batches between which packets get served), then read
    // the few files that changed.
    const toRead: Array<{ file: string; info: Stats }> = [];
    for (let i = 0; i < examine.length; i++) {
      if (i > 0 && i % STAT_BATCH === 0) {
        await yieldToEventLoop();
        if (this.closed) return false;
      }
      const file = examine[i]!;
      const previous = this.files.get(file);
      const info = statFile(file);
      if (!info) {
        if (previous) {
          this.files.delete(file);
          changed = true;
        }
        continue;
      }
      const force = readAll || dirty.has(file);
      if (!force && previous && sameFile(previous, info)) continue;
      toRead.push({ file, info });
    }
    for (const { file, info } of toRead) {
      if (this.closed) return false;
      const record = await this.readFileRecord(file, info, this.files.get(file));
      changed = true;
      if (record) this.files.set(file, record);
      else this.files.delete(file);
    }
    return changed;
  }

  /**
   * Updates `listing`, the folder's YAML files, sorted. Read again only when the folder's mtime
   * or ctime moved (files added, removed or renamed), when forced, or when the last listing was
   * taken while the folder was still within its mtime granularity. Resolves true when it was
   * read again, false when the cached one still holds, undefined when the folder is unreadable.
   */
  private async readListing(force: boolean): Promise<boolean | undefined> {
    let stamp = "";
    try {
      const info = await stat(this.dir);
      if (Date.now() - info.mtimeMs > RACY_DIR_MS) stamp = `${info.mtimeMs}/${info.ctimeMs}`;
    } catch {
      // readdir below reports the problem.
    }
    if (!force && stamp !== "" && stamp === this.listingStamp) return false;
    const maxFiles = this.options.maxFiles ?? 10_000;
    let names: string[];
    try {
      names = (await readdir(this.dir)).filter((n) => YAML_FILE.test(n) && !n.startsWith(".")).sort();
      this.dirProblems = [];
    } catch (err) {
      // Keep serving what we had: a briefly missing folder (remount, swap) must not empty the inventory.
      const problem = `${this.dir}: cannot read the inventory folder: ${(err as NodeJS.ErrnoException).code ?? err}`;
      if (this.dirProblems[0] !== problem) this.log.warn(problem);
      this.dirProblems = [problem];
      this.listingStamp = "";
      return undefined;
    }
    if (names.length > maxFiles) {
      this.dirProblems.push(`${this.dir}: ${names.length} files, only the first ${maxFiles} are read`);
      names = names.slice(0, maxFiles);
    }
    this.listing = names.map((name) => path.join(this.dir, name));
    this.listed = new Set(this.listing);
    this.listingStamp = stamp;
    return true;
  }

  /** Reads and parses one file; undefined when it vanished meanwhile. */
  private async readFileRecord(
    file: string,
    info: Stats,
    previous: FileRecord | undefined,
  ): Promise<FileRecord | undefined> {
    const label = path.join(path.basename(this.dir), path.relative(this.dir, file));
    this.metrics?.fileReads.inc();
    const base = { label, ino: info.ino, mtimeMs: info.mtimeMs, ctimeMs: info.ctimeMs, size: info.size };
    const maxBytes = this.options.maxFileBytes ?? 4 * 1024 * 1024;
    let parsed: { machines: Machine[]; problems: string[]; manifests: ManifestObject[] };
    if (info.size > maxBytes) {
      parsed = { machines: [], manifests: [], problems: [`${label}: file is larger than ${maxBytes} bytes; not read`] };
    } else {
      try {
        const text = await readFile(file, "utf8");
        parsed = parseInventoryFile(text, label, this.validator, this.log, this.now());
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        parsed = { machines: [], manifests: [], problems: [`${label}: cannot read: ${(err as Error).message}`] };
      }
    }
    refuseExposedSecrets(parsed, label, info.mode);
    if (
      parsed.problems.length === 0 &&
      parsed.machines.length === 0 &&
      parsed.manifests.length === 0 &&
      previous &&
      (previous.machines.length > 0 || previous.manifests.length > 0)
    ) {
      // Empty (truncated by an editor about to write, or caught mid-write): never "no Machines".
      // Only removing the file deletes them.
      parsed.problems.push(`${label}: file has no documents (being written?)`);
    }
    if (parsed.problems.length > 0 && previous) {
      // Keep the last valid version of Machines the broken file no longer yields.
      const kept = previous.machines.filter((m) => !parsed.machines.some((n) => n.metadata.name === m.metadata.name));
      // Secrets and ConfigMaps likewise, unless the file itself became readable by others.
      if (!readableByOthers(info.mode)) {
        const keptManifests = previous.manifests.filter(
          (o) => !parsed.manifests.some((n) => n.kind === o.kind && n.namespace === o.namespace && n.name === o.name),
        );
        parsed.manifests.push(...keptManifests);
      }
      if (kept.length > 0) {
        parsed.machines.push(...kept);
        parsed.problems.push(
          `${label}: serving the last valid version of ${kept.map((m) => m.metadata.name).join(", ")} until the file is fixed`,
        );
      }
    }
    for (const problem of parsed.problems) this.log.warn({ file }, `inventory: ${problem}`);
    const outOfScope = parsed.machines.filter((m) => !this.inScope(m)).map((m) => m.metadata.name);
    if (outOfScope.length > 0) {
      this.log.debug(
        { file, machines: outOfScope, site: this.site },
        "inventory: Machines of another site are not served",
      );
    }
    for (const machine of parsed.machines) deepFreeze(machine);
    return { ...base, ...parsed };
  }

  /** Rebuilds the Secret/ConfigMap index from the file records (file order: the first definition wins). */
  private indexManifests(): void {
    this.secrets.replace(
      [...this.files.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([file, record]) => ({ file, objects: record.manifests })),
    );
  }

  /** Machines in scope, first definition of a name (in file order) wins. */
  private composeCandidates(): { candidates: Map<string, Candidate>; nameConflicts: InventoryConflict[] } {
    const candidates = new Map<string, Candidate>();
    const losers = new Map<string, string[]>();
    for (const file of [...this.files.keys()].sort()) {
      const record = this.files.get(file)!;
      for (const machine of record.machines) {
        if (!this.inScope(machine)) continue;
        const name = machine.metadata.name;
        const existing = candidates.get(name);
        if (existing) {
          const list = losers.get(name) ?? [];
          list.push(record.label);
          losers.set(name, list);
          continue;
        }
        candidates.set(name, { machine, file });
      }
    }
    const nameConflicts = [...losers.entries()].map(([name, files]) => {
      const winner = this.files.get(candidates.get(name)!.file)!.label;
      return {
        kind: "name" as const,
        key: name,
        winner,
        losers: files,
        message: `Machine ${name} is defined in ${[winner, ...files].join(", ")}; using ${winner}`,
      };
    });
    return { candidates, nameConflicts };
  }

  private inScope(machine: Machine): boolean {
    const labels = machine.metadata.labels ?? {};
    return this.site === "" ? !(SITE_LABEL in labels) : labels[SITE_LABEL] === this.site;
  }

  private async applyCandidates(plan: {
    candidates: Map<string, Candidate>;
    nameConflicts: InventoryConflict[];
  }): Promise<void> {
    interface Planned {
      name: string;
      file: string;
      source: Machine;
      /** Built from the very same file record Machine: reused without comparing anything. */
      unchanged?: Entry;
      fileMachine?: Omit<Machine, "status">;
      spec?: string;
      meta?: string;
      state?: Promise<MachineState>;
    }
    const planned: Planned[] = [];
    for (const [name, candidate] of [...plan.candidates.entries()].sort(([a], [b]) => this.collate(a, b))) {
      const old = this.entries.get(name);
      if (old && old.source === candidate.machine && old.file === candidate.file) {
        planned.push({ name, file: candidate.file, source: candidate.machine, unchanged: old });
        continue;
      }
      const { status: fileStatus, ...fileMachine } = candidate.machine;
      const spec = canonicalJson(fileMachine.spec);
      const meta = canonicalJson({
        labels: fileMachine.metadata.labels,
        annotations: fileMachine.metadata.annotations,
      });
      const item: Planned = { name, file: candidate.file, source: candidate.machine, fileMachine, spec, meta };
      if (!(old && old.spec === spec && old.meta === meta && old.file === candidate.file)) {
        // Started together: a first start with many Machines should not pay one fsync at a time.
        item.state = this.locks.run(name, () => this.adoptSpec(name, spec, fileStatus));
      }
      planned.push(item);
    }
    const states = await Promise.all(planned.map((p) => p.state));
    // From here to the end nothing awaits, so no status update can interleave with the swap.
    const events: MachineEvent[] = [];
    const next = new Map<string, Entry>();
    for (const [i, item] of planned.entries()) {
      const { name, file, source } = item;
      const state = states[i];
      const old = this.entries.get(name);
      if (item.unchanged && old === item.unchanged) {
        next.set(name, old);
        continue;
      }
      const fileMachine = item.fileMachine ?? (({ status: _s, ...rest }) => rest)(source);
      const spec = item.spec ?? canonicalJson(fileMachine.spec);
      const meta =
        item.meta ??
        canonicalJson({ labels: fileMachine.metadata.labels, annotations: fileMachine.metadata.annotations });
      if (!state && old && old.spec === spec && old.meta === meta && old.file === file) {
        // Same content re-read (or re-parsed): keep the entry, remember the new source object.
        next.set(name, old.source === source ? old : { ...old, source });
        continue;
      }
      const current = state ?? this.states.get(name)!;
      // The live entry's status wins: a status update may have landed while we waited for the lock.
      const status = old?.machine.status ?? current.status;
      const machine: Machine = deepFreeze({
        ...fileMachine,
        metadata: {
          ...fileMachine.metadata,
          uid: current.uid,
          creationTimestamp: current.creationTimestamp,
          generation: current.generation,
          resourceVersion: this.clock.next(),
        },
        // A live entry's status is frozen already and can be shared; the state store's is not.
        status: Object.isFrozen(status) ? status : structuredClone(status),
      });
      next.set(name, { machine, file, source, spec, meta });
      events.push({ type: old ? "MODIFIED" : "ADDED", machine });
    }
    const grace = this.options.deletionGraceMs ?? 2000;
    const nowMs = Date.now();
    const deleted: string[] = [];
    for (const name of next.keys()) this.missingSince.delete(name);
    for (const [name, entry] of this.entries) {
      if (next.has(name)) continue;
      const since = this.missingSince.get(name) ?? nowMs;
      if (nowMs - since < grace) {
        // Still serving: a file being rewritten must not make DHCP forget a host.
        this.missingSince.set(name, since);
        next.set(name, entry);
        this.scheduleGraceCheck(since + grace - nowMs);
        continue;
      }
      this.missingSince.delete(name);
      const machine = deepFreeze({
        ...entry.machine,
        metadata: { ...entry.machine.metadata, resourceVersion: this.clock.next() },
      });
      events.push({ type: "DELETED", machine });
      deleted.push(name);
    }
    this.entries = next;
    this.rebuildIndexes(plan.nameConflicts);
    for (const event of events) this.emit(event);
    for (const name of deleted) {
      this.locks
        .run(name, () => this.archiveState(name))
        .catch((err: unknown) => this.log.error({ err, machine: name }, "inventory: cannot archive machine state"));
    }
  }

  private scheduleGraceCheck(ms: number): void {
    if (this.graceTimer || this.closed) return;
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined;
      this.pendingApply = true;
      void this.requestReload();
    }, Math.max(0, ms) + 10);
    this.graceTimer.unref();
  }

  /**
   * A deleted Machine's state leaves the live folder: the same name created again is a new
   * Machine (new uid, no pins, no counters) unless an operator adopts the archived state.
   */
  private async archiveState(name: string): Promise<void> {
    if (this.entries.has(name)) return; // Created again meanwhile: it was never gone for long.
    const state = this.states.get(name);
    if (!state || this.frozenStates.has(stateFileName(name))) return;
    const target = await this.stateStore.archive(state, this.now().toISOString());
    this.states.delete(name);
    this.refreshStateProblems();
    this.log.info({ machine: name, uid: state.uid, archive: target }, "inventory: Machine deleted; state archived");
  }

  /**
   * Brings the persisted state in line with the file's spec: a new Machine gets a uid and
   * generation 1 (and any status written in the file, as a starting point); a changed spec
   * bumps the generation. Saved before use so the generation never goes backwards.
   */
  private async adoptSpec(name: string, spec: string, fileStatus: MachineStatus | undefined): Promise<MachineState> {
    const existing = this.states.get(name);
    if (existing && existing.spec === spec) return existing;
    const suspect = existing ? undefined : this.suspects.get(stateFileName(name));
    if (suspect) return this.quarantineState(name, spec, suspect);
    const state: MachineState = existing
      ? { ...existing, spec, generation: existing.spec === "" ? existing.generation : existing.generation + 1 }
      : {
          name,
          uid: randomUUID(),
          creationTimestamp: this.now()
            .toISOString()
            .replace(/\.\d{3}Z$/, "Z"),
          generation: 1,
          spec,
          status: structuredClone(fileStatus ?? {}),
        };
    if (!state.uid) state.uid = randomUUID();
    if (!state.creationTimestamp)
      state.creationTimestamp = this.now()
        .toISOString()
        .replace(/\.\d{3}Z$/, "Z");
    await this.saveState(state, false);
    this.states.set(name, state);
    return state;
  }

  /**
   * The Machine's state file could not be trusted: its counters and pins are unknown. It gets
   * a quarantined state (persisted, so a restart keeps it) instead of a fresh one, whose empty
   * counters would offer the install again.
   */
  private async quarantineState(name: string, spec: string, suspect: SuspectStateFile): Promise<MachineState> {
    const since = formatSeconds(this.now());
    const what = suspect.reason === "UnreadableStateFile" ? "could not be read" : "was corrupt";
    const where = suspect.movedTo ? `; moved to ${suspect.movedTo}` : "; it could not be moved aside";
    const quarantine: Quarantine = {
      machine: name,
      reason: suspect.reason,
      file: suspect.file,
      ...(suspect.movedTo ? { movedTo: suspect.movedTo } : {}),
      message:
        `state file ${suspect.file} ${what} (${suspect.error})${where}. Counters and pins are unknown: ` +
        `no install, attestation or BMC action until an operator runs "metalman state accept-reset ${name}" ` +
        `or "metalman state restore ${name} FILE"`,
      since,
    };
    const state: MachineState = {
      name,
      uid: randomUUID(),
      creationTimestamp: since,
      generation: 1,
      spec,
      status: withQuarantine({}, quarantine, this.now()),
      quarantine,
    };
    this.suspects.delete(suspect.fileName);
    await this.saveState(state, false);
    this.states.set(name, state);
    this.refreshStateProblems();
    this.log.error({ machine: name, file: suspect.file, movedTo: suspect.movedTo }, `inventory: ${quarantine.message}`);
    return state;
  }

  private stateFor(entry: Entry): MachineState {
    const name = entry.machine.metadata.name;
    return (
      this.states.get(name) ?? {
        name,
        uid: entry.machine.metadata.uid ?? randomUUID(),
        creationTimestamp: entry.machine.metadata.creationTimestamp ?? "",
        generation: entry.machine.metadata.generation ?? 1,
        spec: entry.spec,
        status: {},
      }
    );
  }

  private rebuildIndexes(nameConflicts: InventoryConflict[]): void {
    const macs = new Map<string, string>();
    const ips = new Map<string, string>();
    const clashes = new Map<string, InventoryConflict>();
    const claim = (kind: "mac" | "ipv4", index: Map<string, string>, key: string, name: string) => {
      const winner = index.get(key);
      if (winner === undefined) {
        index.set(key, name);
        return;
      }
      if (winner === name) return;
      const id = `${kind}/${key}`;
      const conflict = clashes.get(id) ?? { kind, key, winner, losers: [], message: "" };
      if (!conflict.losers.includes(name)) conflict.losers.push(name);
      conflict.message = `${kind === "mac" ? "MAC" : "IPv4"} ${key} is claimed by Machines ${[winner, ...conflict.losers].join(", ")}; answering as ${winner}`;
      clashes.set(id, conflict);
    };
    for (const name of [...this.entries.keys()].sort()) {
      for (const lease of this.entries.get(name)!.machine.spec.pxe?.dhcpLeases ?? []) {
        claim("mac", macs, lease.mac.toLowerCase(), name);
        if (lease.ipv4) claim("ipv4", ips, lease.ipv4, name);
      }
    }
    this.macIndex = macs;
    this.ipIndex = ips;
    const conflicts = [...nameConflicts, ...clashes.values()];
    const before = new Set(this.conflictList.map((c) => c.message));
    for (const conflict of conflicts) {
      if (!before.has(conflict.message)) this.log.warn({ conflict }, `inventory: conflict: ${conflict.message}`);
    }
    this.conflictList = conflicts;
  }

  // ---- watching -----------------------------------------------------------------------------

  private startWatching(): void {
    if (this.closed) return;
    this.tryWatchDir();
    this.lastStatAll = Date.now();
    this.rescanTimer = setInterval(() => {
      if (!this.watcher) this.tryWatchDir();
      // With a working watch, a tick only checks the folder listing; every file is stat'ed
      // on each tick only without one (NFS and friends), else once per fullRescanIntervalMs.
      const fullEvery = this.options.fullRescanIntervalMs ?? 60_000;
      if (!this.watcher || Date.now() - this.lastStatAll >= fullEvery) this.pendingStatAll = true;
      else this.pendingList = true;
      void this.requestReload();
    }, this.options.rescanIntervalMs ?? 5000);
    this.rescanTimer.unref();
    this.requestTimer = setInterval(() => {
      void this.applyOperatorRequests().catch((err: unknown) =>
        this.log.error({ err }, "inventory: applying operator requests failed"),
      );
    }, this.options.requestPollMs ?? 1000);
    this.requestTimer.unref();
  }

  private tryWatchDir(): void {
    try {
      const watcher = fsWatch(this.dir, { persistent: false }, (_event, filename) => {
        const name = filename?.toString();
        if (name === undefined || name === "") {
          this.pendingStatAll = true; // The platform did not say which file: look at all of them.
        } else if (YAML_FILE.test(name) && !name.startsWith(".")) {
          this.dirtyFiles.add(path.join(this.dir, name));
        } else if (name.startsWith("..")) {
          // kubelet's ConfigMap update: `..data` now points at a new folder; every file may differ.
          this.pendingStatAll = true;
        } else {
          return; // Editor swap files and other non-inventory names.
        }
        this.scheduleReload();
      });
      watcher.on("error", (err) => {
        // The folder went away or was replaced: fall back to the periodic rescan, re-watch there.
        this.log.debug({ err }, "inventory: folder watch stopped");
        watcher.close();
        if (this.watcher === watcher) this.watcher = undefined;
      });
      this.watcher = watcher;
    } catch (err) {
      this.log.debug({ err }, "inventory: cannot watch the folder; relying on the periodic rescan");
    }
  }

  /** Trailing debounce, capped so a file rewritten continuously still gets loaded. */
  private scheduleReload(): void {
    if (this.closed) return;
    const delay = this.options.debounceMs ?? 200;
    const now = Date.now();
    if (!this.debounceTimer) this.debounceStarted = now;
    clearTimeout(this.debounceTimer);
    const wait = Math.max(0, Math.min(delay, this.debounceStarted + delay * 10 - now));
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      void this.requestReload();
    }, wait);
    this.debounceTimer.unref();
  }

  /** The Machine is frozen: listeners share it. The event's version is its Machine's. */
  private emit(event: MachineEvent): void {
    this.hub.emit(event.machine.metadata.resourceVersion!, event);
  }

  private updateGauges(): void {
    if (!this.metrics) return;
    this.metrics.machines.set(this.entries.size);
    let problems = this.dirProblems.length;
    for (const record of this.files.values()) problems += record.problems.length;
    this.metrics.problems.set(problems);
    this.metrics.conflicts.set(this.conflictList.length);
  }
}

/**
 * Synchronous on purpose: a scan stats thousands of files and a sync stat costs a fifth of an
 * async one in CPU; scans yield to the event loop every STAT_BATCH files instead.
 * Undefined when the path is gone or is not a regular file.
 */
/**
 * A file holding a Secret that anyone but its owner can read is refused: its Secrets are dropped
 * (Machines and ConfigMaps in it still load) and the problem says how to fix it.
 */
function refuseExposedSecrets(
  parsed: { problems: string[]; manifests: ManifestObject[] },
  label: string,
  mode: number,
): void {
  if (!readableByOthers(mode)) return;
  // A Secret without values exposes nothing.
  const exposed = parsed.manifests.filter((o) => o.kind === "Secret" && o.values.size > 0);
  if (exposed.length === 0) return;
  parsed.manifests = parsed.manifests.filter((o) => !exposed.includes(o));
  const names = exposed.map((o) => `${o.namespace}/${o.name}`).join(", ");
  const octal = (mode & 0o777).toString(8).padStart(4, "0");
  parsed.problems.push(
    `${label}: Secret ${names} refused: the file is readable by other users (mode ${octal}); run chmod 600 on it`,
  );
}

function statFile(file: string): Stats | undefined {
  try {
    const info = statSync(file, { throwIfNoEntry: false });
    return info?.isFile() ? info : undefined;
  } catch {
    return undefined;
  }
}

function sameFile(record: FileRecord, info: Stats): boolean {
  return (
    record.ino === info.ino &&
    record.mtimeMs === info.mtimeMs &&
    record.ctimeMs === info.ctimeMs &&
    record.size === info.size
  );
}

class InventoryMetrics {
  readonly machines: Gauge;
  readonly problems: Gauge;
  readonly conflicts: Gauge;
  readonly reloads: Counter<"result">;
  readonly statusWrites: Counter<"result">;
  readonly scans: Counter;
  readonly fileReads: Counter;

  constructor(registry: Registry) {
    this.machines = reuse(registry, "metalman_inventory_machines", () => {
      return new Gauge({
        name: "metalman_inventory_machines",
        help: "Machines served from the inventory",
        registers: [registry],
      });
    });
    this.problems = reuse(registry, "metalman_inventory_problems", () => {
      return new Gauge({
        name: "metalman_inventory_problems",
        help: "Invalid inventory files or documents",
        registers: [registry],
      });
    });
    this.conflicts = reuse(registry, "metalman_inventory_conflicts", () => {
      return new Gauge({
        name: "metalman_inventory_conflicts",
        help: "Duplicate Machine names, MACs or IPs in the inventory",
        registers: [registry],
      });
    });
    this.reloads = reuse(registry, "metalman_inventory_reloads_total", () => {
      return new Counter({
        name: "metalman_inventory_reloads_total",
        help: "Inventory passes that found a change and applied it",
        labelNames: ["result"] as const,
        registers: [registry],
      });
    });
    this.scans = reuse(registry, "metalman_inventory_scans_total", () => {
      return new Counter({
        name: "metalman_inventory_scans_total",
        help: "Inventory change checks (watch events, periodic rescans, reloads)",
        registers: [registry],
      });
    });
    this.fileReads = reuse(registry, "metalman_inventory_file_reads_total", () => {
      return new Counter({
        name: "metalman_inventory_file_reads_total",
        help: "Inventory files read and parsed (new or changed files only)",
        registers: [registry],
      });
    });
    this.statusWrites = reuse(registry, "metalman_inventory_status_writes_total", () => {
      return new Counter({
        name: "metalman_inventory_status_writes_total",
        help: "Machine status writes to the state folder",
        labelNames: ["result"] as const,
        registers: [registry],
      });
    });
  }
}

/** Two inventories (e.g. in tests) may share one registry; reuse the metric instead of throwing. */
function reuse<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

function formatSeconds(now: Date): string {
  return now.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The status with the quarantine condition set (True, reason and message of the quarantine). */
function withQuarantine(status: MachineStatus, quarantine: Quarantine, now = new Date()): MachineStatus {
  return {
    ...status,
    conditions: setCondition(
      status.conditions,
      { type: QUARANTINE_CONDITION, status: "True", reason: quarantine.reason, message: quarantine.message },
      now,
    ),
  };
}

/** A restored status never carries the quarantine condition it may have been copied with. */
function removeConditionOf(status: MachineStatus): MachineStatus {
  const conditions = removeCondition(status.conditions, QUARANTINE_CONDITION);
  const { conditions: _c, ...rest } = status;
  return conditions.length > 0 ? { ...rest, conditions } : rest;
}
