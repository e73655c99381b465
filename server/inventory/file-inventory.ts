import { randomUUID } from "node:crypto";
import { type FSWatcher, watch as fsWatch, type Stats, statSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import { ConflictError, type MachineBackend, type MachineEvent, NotFoundError } from "./backend.js";
import { canonicalJson } from "./canonical-json.js";
import { deepFreeze } from "./deep-freeze.js";
import { parseInventoryFile } from "./inventory-file.js";
import { KeyedLock } from "./keyed-lock.js";
import { MachineValidator } from "./machine-schema.js";
import { type MachineState, MachineStateStore } from "./machine-state-store.js";
import { type Machine, type MachineStatus, SITE_LABEL } from "./types.js";

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
  mtimeMs: number;
  ctimeMs: number;
  size: number;
  machines: Machine[];
  problems: string[];
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
  private readonly listeners = new Set<(event: MachineEvent) => void>();
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
  private resourceVersion = 0;

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
    this.metrics = options.metrics ? new InventoryMetrics(options.metrics) : undefined;
  }

  /** Initial load: persisted state, then every file. Starts watching unless `watch: false`. */
  async load(): Promise<void> {
    this.states = await this.stateStore.loadAll();
    await this.reload();
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
    clearTimeout(this.debounceTimer);
    this.listeners.clear();
    await this.reloading?.catch(() => undefined);
    await this.locks.idle();
  }

  /** Machines are deep-frozen and shared, not copied: a caller that wants to change one copies it. */
  get(name: string): Machine | undefined {
    return this.entries.get(name)?.machine;
  }

  list(): Machine[] {
    return [...this.entries.keys()].sort().map((name) => this.entries.get(name)!.machine);
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

  errors(): InventoryProblem[] {
    const problems: InventoryProblem[] = this.dirProblems.map((message) => ({ file: this.dir, message }));
    for (const [file, record] of [...this.files.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      for (const message of record.problems) problems.push({ file, message });
    }
    return problems;
  }

  conflicts(): InventoryConflict[] {
    return this.conflictList.map((c) => ({ ...c, losers: [...c.losers] }));
  }

  watch(listener: (event: MachineEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  updateStatus(
    name: string,
    mutate: (status: MachineStatus) => MachineStatus,
    options: { expectedResourceVersion?: string } = {},
  ): Promise<Machine> {
    return this.locks.run(name, async () => {
      const entry = this.entries.get(name);
      if (!entry) throw new NotFoundError(name);
      const current = entry.machine.metadata.resourceVersion!;
      if (options.expectedResourceVersion !== undefined && options.expectedResourceVersion !== current) {
        throw new ConflictError(name, options.expectedResourceVersion, current);
      }
      // The stored status is frozen: `mutate` gets its own copy to change.
      const status = mutate(structuredClone(entry.machine.status ?? {}));
      if (canonicalJson(status) === canonicalJson(entry.machine.status ?? {})) return entry.machine;
      const state = { ...this.stateFor(entry), status: structuredClone(status) };
      try {
        await this.stateStore.save(state);
        this.metrics?.statusWrites.inc({ result: "ok" });
      } catch (err) {
        this.metrics?.statusWrites.inc({ result: "error" });
        throw err;
      }
      this.states.set(name, state);
      // The entry may have been replaced by a reload while we were writing; update the live one.
      const live = this.entries.get(name);
      if (!live) throw new NotFoundError(name);
      live.machine = deepFreeze({
        ...live.machine,
        metadata: { ...live.machine.metadata, resourceVersion: this.nextResourceVersion() },
        status: structuredClone(status),
      });
      this.emit({ type: "MODIFIED", machine: live.machine });
      return live.machine;
    });
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
      const changed = await this.scanFiles();
      if (changed) {
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
    let examine: string[];
    if (statAll) examine = listing;
    else if (fresh) examine = listing.filter((file) => dirty.has(file) || !this.files.has(file));
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
    const base = { label, mtimeMs: info.mtimeMs, ctimeMs: info.ctimeMs, size: info.size };
    const maxBytes = this.options.maxFileBytes ?? 4 * 1024 * 1024;
    let parsed: { machines: Machine[]; problems: string[] };
    if (info.size > maxBytes) {
      parsed = { machines: [], problems: [`${label}: file is larger than ${maxBytes} bytes; not read`] };
    } else {
      try {
        const text = await readFile(file, "utf8");
        parsed = parseInventoryFile(text, label, this.validator, this.log, this.now());
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        parsed = { machines: [], problems: [`${label}: cannot read: ${(err as Error).message}`] };
      }
    }
    if (parsed.problems.length > 0 && previous) {
      // Keep the last valid version of Machines the broken file no longer yields.
      const kept = previous.machines.filter((m) => !parsed.machines.some((n) => n.metadata.name === m.metadata.name));
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
          resourceVersion: this.nextResourceVersion(),
        },
        // A live entry's status is frozen already and can be shared; the state store's is not.
        status: Object.isFrozen(status) ? status : structuredClone(status),
      });
      next.set(name, { machine, file, source, spec, meta });
      events.push({ type: old ? "MODIFIED" : "ADDED", machine });
    }
    for (const [name, entry] of this.entries) {
      if (!next.has(name)) events.push({ type: "DELETED", machine: entry.machine });
    }
    this.entries = next;
    this.rebuildIndexes(plan.nameConflicts);
    for (const event of events) this.emit(event);
  }

  /**
   * Brings the persisted state in line with the file's spec: a new Machine gets a uid and
   * generation 1 (and any status written in the file, as a starting point); a changed spec
   * bumps the generation. Saved before use so the generation never goes backwards.
   */
  private async adoptSpec(name: string, spec: string, fileStatus: MachineStatus | undefined): Promise<MachineState> {
    const existing = this.states.get(name);
    if (existing && existing.spec === spec) return existing;
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
    try {
      await this.stateStore.save(state);
    } catch (err) {
      // Serving beats bookkeeping: carry on in memory and say so.
      this.log.error({ err, machine: name }, "inventory: cannot persist machine state");
    }
    this.states.set(name, state);
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
  }

  private tryWatchDir(): void {
    try {
      const watcher = fsWatch(this.dir, { persistent: false }, (_event, filename) => {
        const name = filename?.toString();
        if (name === undefined || name === "") {
          this.pendingStatAll = true; // The platform did not say which file: look at all of them.
        } else if (YAML_FILE.test(name) && !name.startsWith(".")) {
          this.dirtyFiles.add(path.join(this.dir, name));
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

  private emit(event: MachineEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event); // The Machine is frozen: listeners share it.
      } catch (err) {
        this.log.error({ err }, "inventory: watch listener failed");
      }
    }
  }

  private nextResourceVersion(): string {
    this.resourceVersion += 1;
    return String(this.resourceVersion);
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
function statFile(file: string): Stats | undefined {
  try {
    const info = statSync(file, { throwIfNoEntry: false });
    return info?.isFile() ? info : undefined;
  } catch {
    return undefined;
  }
}

function sameFile(record: FileRecord, info: Stats): boolean {
  return record.mtimeMs === info.mtimeMs && record.ctimeMs === info.ctimeMs && record.size === info.size;
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
