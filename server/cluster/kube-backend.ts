/**
 * The Kubernetes backend of `MachineBackend` (docs/backend-contract.md, docs/cluster.md): the
 * Machines of one site from the API server (list + watch through a Reflector), indexed by lease
 * MAC and IP, status written through the status subresource with conflict retry, and an offline
 * mode: the last-known state is persisted and served while the API server is unreachable, and
 * status writes made meanwhile are queued durably and replayed (per field) on reconnect.
 */
import type { Logger } from "pino";
import { Gauge, type Registry } from "prom-client";
import {
  type BackendProblem,
  ConflictError,
  type MachineBackend,
  type MachineEvent,
  type MachineList,
  NotFoundError,
  type Quarantine,
  type StatusMutation,
  type StatusUpdate,
  type StatusUpdateOptions,
  UNCHANGED,
  type WatchOptions,
} from "../inventory/backend.js";
import {
  type ConflictRetryOptions,
  DEFAULT_CONFLICT_RETRY,
  updateWithConflictRetry,
} from "../inventory/conflict-retry.js";
import { deepFreeze } from "../inventory/deep-freeze.js";
import { MachineValidator } from "../inventory/machine-schema.js";
import { compareVersions, isVersion } from "../inventory/resource-version.js";
import type { SecretReader } from "../inventory/secrets.js";
import { type Machine, type MachineStatus, SITE_LABEL } from "../inventory/types.js";
import { WatchHub } from "../inventory/watch-hub.js";
import { isUnreachable, type KubeApi, statusOf } from "./kube-api.js";
import { KubeOperationStore } from "./kube-operations.js";
import { type ClusterFacts, type LastKnownState, LastKnownStore } from "./last-known.js";
import { type KubeObject, Reflector } from "./reflector.js";
import { applyStatusPatches, diffStatus, isEmptyPatch } from "./status-patch.js";
import { StatusQueue } from "./status-queue.js";
import type { UpstreamStatus } from "./upstream-status.js";

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

export const MACHINES_PATH = "/apis/unbounded-cloud.io/v1alpha3/machines";

export interface KubeBackendOptions {
  api: KubeApi;
  site: string;
  stateDir: string;
  log: Logger;
  metrics?: Registry;
  retry?: ConflictRetryOptions;
  /** Reflector back-off (tests shorten it). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Debounce of the last-known file (default 2 s: one serialisation of a large site per burst, not per event). */
  saveDelayMs?: number;
}

/** The site's label selector (spec §1.3): `site=S`, or "no site label" for an empty --site. */
export function siteSelector(site: string): string {
  return site === "" ? `!${SITE_LABEL}` : `${SITE_LABEL}=${site}`;
}

type Connection = UpstreamStatus["connection"];

export class KubeMachineBackend implements MachineBackend {
  readonly operations: KubeOperationStore;
  readonly secrets: SecretReader;
  readonly #o: KubeBackendOptions;
  readonly #log: Logger;
  readonly #validator = new MachineValidator();
  /**
   * Upstream Machines (validated, CRD defaults applied, frozen; null: present but invalid) and the
   * served ones: the same object unless status updates are queued for it (then a copy with them
   * applied), so a large site is held once.
   */
  readonly #upstream = new Map<string, Machine | null>();
  readonly #upstreamVersion = new Map<string, string>();
  readonly #machines = new Map<string, Machine>();
  readonly #invalid = new Map<string, string>();
  readonly #macIndex = new Map<string, string[]>();
  readonly #ipIndex = new Map<string, string[]>();
  readonly #hub: WatchHub<MachineEvent>;
  readonly #reflector: Reflector;
  readonly #store: LastKnownStore;
  readonly #queue: StatusQueue;
  readonly #problems: BackendProblem[] = [];
  readonly #configMaps = new Map<string, Record<string, string> | null>();
  readonly #secretData = new Map<string, Record<string, string> | null>();
  #facts: ClusterFacts = {};
  #version = "0";
  #connection: Connection = "connecting";
  #offlineSince: string | undefined;
  #lastSyncAt: string | undefined;
  #lastError: string | undefined;
  #servedFrom: "api" | "last-known" | "none" = "none";
  #saveTimer: NodeJS.Timeout | undefined;
  #saving: Promise<void> = Promise.resolve();
  #replaying: Promise<void> | undefined;
  #synced = false;
  #syncWaiters: Array<() => void> = [];
  #closed = false;
  readonly #replayed = { total: 0 };
  readonly #gauges: { connected?: Gauge; queued?: Gauge; machines?: Gauge } = {};

  constructor(options: KubeBackendOptions) {
    this.#o = options;
    this.#log = options.log.child({ component: "cluster" });
    this.#hub = new WatchHub<MachineEvent>(this.#log, () => this.#version);
    this.#store = new LastKnownStore(options.stateDir);
    this.#queue = new StatusQueue(options.stateDir);
    this.#reflector = new Reflector(
      {
        api: options.api,
        path: MACHINES_PATH,
        labelSelector: siteSelector(options.site),
        log: this.#log,
        backoffMs: options.backoffMs,
        maxBackoffMs: options.maxBackoffMs,
      },
      {
        onList: (items, rv) => this.#onList(items, rv),
        onEvent: (type, object) => this.#onEvent(type, object),
        onVersion: (rv) => {
          this.#version = rv;
        },
        onConnection: (connected, error) => this.#setConnection(connected, error),
      },
    );
    this.operations = new KubeOperationStore({
      api: options.api,
      log: this.#log,
      retry: options.retry,
      backoffMs: options.backoffMs,
      maxBackoffMs: options.maxBackoffMs,
    });
    this.secrets = this.#secretReader();
    if (options.metrics) {
      this.#gauges.connected = new Gauge({
        name: "metalman_cluster_connected",
        help: "1 while the Kubernetes API server answers, 0 while serving from the last-known state",
        registers: [options.metrics],
      });
      this.#gauges.queued = new Gauge({
        name: "metalman_cluster_status_queue",
        help: "Status updates queued while offline, waiting to be replayed",
        registers: [options.metrics],
      });
      this.#gauges.machines = new Gauge({
        name: "metalman_cluster_machines",
        help: "Machines of this site in the cache",
        registers: [options.metrics],
      });
    }
  }

  /**
   * Loads the last-known state and the status queue, then starts the watches. Resolves when the
   * first list arrived, or (API unreachable) as soon as the last-known state is served, or after
   * `waitMs` with nothing at all (the appliance starts and says so).
   */
  async start(waitMs = 10_000): Promise<void> {
    const queueProblem = await this.#queue.load();
    if (queueProblem) this.#problems.push({ kind: "state", file: this.#queue.file, message: queueProblem });
    const loaded = await this.#store.load();
    if (loaded.ok) this.#restore(loaded.state);
    else if (!loaded.missing) {
      this.#problems.push({ kind: "state", file: loaded.file, message: loaded.message });
      this.#log.error({ file: loaded.file, movedTo: loaded.movedTo }, loaded.message);
    }
    this.#updateGauges();
    this.#reflector.start();
    this.operations.start();
    if (this.#servedFrom === "last-known") {
      // Serve at once from the last-known state; the list replaces it when the API answers.
      await Promise.race([this.#waitSynced(), new Promise((r) => setTimeout(r, Math.min(waitMs, 1500)).unref())]);
      return;
    }
    await Promise.race([this.#waitSynced(), new Promise((r) => setTimeout(r, waitMs).unref())]);
  }

  /** SIGHUP: nothing to re-read (the watch is live); the queue gets another replay attempt. */
  async reload(): Promise<void> {
    if (this.#connection === "connected") await this.#replay();
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#reflector.stop();
    await this.operations.stop();
    clearTimeout(this.#saveTimer);
    if (this.#synced || this.#servedFrom !== "none") await this.#saveNow().catch(() => undefined);
    await this.#saving;
    await this.#replaying;
    this.#hub.clear();
  }

  // ---- reads --------------------------------------------------------------------------

  get(name: string): Machine | undefined {
    return this.#machines.get(name);
  }

  list(): MachineList {
    const items = [...this.#machines.values()].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    return Object.assign(items, { resourceVersion: this.#version });
  }

  byMac(mac: string): Machine | undefined {
    const name = this.#macIndex.get(mac.toLowerCase())?.[0];
    return name === undefined ? undefined : this.#machines.get(name);
  }

  byIp(ip: string): Machine | undefined {
    const name = this.#ipIndex.get(ip)?.[0];
    return name === undefined ? undefined : this.#machines.get(name);
  }

  watch(listener: (event: MachineEvent) => void, options: WatchOptions = {}): () => void {
    return this.#hub.watch(listener, options.resourceVersion);
  }

  problems(): BackendProblem[] {
    const out = [...this.#problems];
    for (const [name, message] of this.#invalid) {
      out.push({ kind: "inventory", file: `kubernetes:machines/${name}`, machine: name, message });
    }
    // MAC/IP duplicates across Machines are reported, as the file inventory does (spec §12 item 24).
    for (const [key, names] of [...this.#macIndex, ...this.#ipIndex]) {
      if (names.length > 1) {
        out.push({
          kind: "inventory",
          file: `kubernetes:machines/${names[1]}`,
          machine: names[1],
          message: `lease ${key} is claimed by ${names.join(", ")}; ${names[0]} is served`,
        });
      }
    }
    return out;
  }

  quarantine(_name: string): Quarantine | undefined {
    // Cluster mode keeps no per-Machine state files: the API server is the source of truth.
    return undefined;
  }

  /** The console's view of the uplink (docs/cluster.md "upstream"). */
  upstream(): Omit<UpstreamStatus, "leader"> {
    return {
      mode: "cluster",
      server: this.#o.api.server,
      site: this.#o.site,
      connection: this.#connection,
      offlineSince: this.#offlineSince,
      lastSyncAt: this.#lastSyncAt,
      lastError: this.#lastError,
      servingFrom: this.#servedFrom,
      queuedUpdates: this.#queue.size,
      replayedUpdates: this.#replayed.total,
      machines: this.#machines.size,
      resourceVersion: this.#version,
    };
  }

  get facts(): ClusterFacts {
    return this.#facts;
  }

  /** Cluster facts are gathered by ClusterFacts (server/cluster/cluster-facts.ts) and persisted here. */
  setFacts(facts: ClusterFacts): void {
    this.#facts = { ...this.#facts, ...facts };
    this.#scheduleSave();
  }

  /** Resolves once the queue is empty (tests, and a graceful stop that wants to wait). */
  async drainQueue(): Promise<void> {
    await this.#replay();
  }

  // ---- status writes ------------------------------------------------------------------

  async updateStatus(name: string, mutate: StatusMutation, _options: StatusUpdateOptions = {}): Promise<StatusUpdate> {
    // Earlier offline writes of this Machine go first: a live write must not overtake them.
    if (this.#connection !== "connected" || this.#queue.forMachine(name).length > 0) {
      return this.#queueWrite(name, mutate);
    }
    try {
      const result = await this.#writeLive(name, mutate);
      return result;
    } catch (err) {
      if (isUnreachable(err)) {
        this.#setConnection(false, err);
        return this.#queueWrite(name, mutate);
      }
      throw err;
    }
  }

  /** Offline: decide on the served Machine, queue the change durably, serve it at once. */
  async #queueWrite(name: string, mutate: StatusMutation): Promise<StatusUpdate> {
    const machine = this.#machines.get(name);
    if (!machine) throw new NotFoundError(name);
    const status = mutate(machine);
    if (status === UNCHANGED) return { outcome: "unchanged", machine, attempts: 1 };
    const patch = diffStatus(machine.status, status);
    if (isEmptyPatch(patch)) return { outcome: "unchanged", machine, attempts: 1 };
    await this.#queue.push({ machine: name, uid: machine.metadata.uid, at: new Date().toISOString(), patch });
    this.#updateGauges();
    const served = this.#serve(name, "MODIFIED");
    if (this.#connection === "connected") void this.#replay();
    return { outcome: "updated", machine: served ?? machine, attempts: 1 };
  }

  /** Replays the queue, Machine by Machine, each as one status write over a fresh GET. */
  #replay(): Promise<void> {
    this.#replaying ??= (async () => {
      // Yield first: with nothing to do the body would finish (and clear #replaying) before
      // `??=` stores this promise, leaving a settled promise that blocks every later replay.
      await Promise.resolve();
      try {
        for (let round = 0; round < 100 && this.#queue.size > 0 && this.#connection === "connected"; round++) {
          const name = this.#queue.entries()[0]!.machine;
          const entries = this.#queue.forMachine(name);
          const ids = new Set(entries.map((e) => e.id));
          const uid = entries[0]!.uid;
          this.#log.debug({ machine: name, updates: entries.length }, "replaying queued status updates");
          try {
            await this.#writeLive(name, (fresh) => {
              if (uid !== undefined && fresh.metadata.uid !== uid) return UNCHANGED;
              const next = applyStatusPatches(
                fresh.status,
                entries.map((e) => e.patch),
              );
              return JSON.stringify(next) === JSON.stringify(fresh.status ?? {}) ? UNCHANGED : next;
            });
            this.#replayed.total += entries.length;
            this.#log.info({ machine: name, updates: entries.length }, "replayed queued status updates");
          } catch (err) {
            if (err instanceof NotFoundError) {
              this.#log.warn(
                { machine: name, updates: entries.length },
                "queued status updates dropped: the Machine is gone",
              );
            } else {
              if (isUnreachable(err)) this.#setConnection(false, err);
              else this.#log.warn({ err, machine: name }, "replaying queued status failed; will retry");
              break;
            }
          }
          await this.#queue.remove(ids);
          this.#updateGauges();
          this.#serve(name, "MODIFIED");
        }
      } catch (err) {
        this.#log.warn({ err }, "replaying queued status failed; will retry");
      } finally {
        this.#replaying = undefined;
      }
      if (this.#queue.size > 0 && this.#connection === "connected" && !this.#closed) {
        setTimeout(() => void this.#replay(), 1000).unref();
      }
    })();
    return this.#replaying;
  }

  /** GET from the API server (never the cache), mutate, PUT /status with the version read; 409 starts over. */
  #writeLive(name: string, mutate: StatusMutation): Promise<StatusUpdate> {
    const path = `${MACHINES_PATH}/${encodeURIComponent(name)}`;
    let raw: KubeObject | undefined;
    return updateWithConflictRetry(
      name,
      async () => {
        try {
          raw = await this.#o.api.request<KubeObject>("GET", path);
        } catch (err) {
          if (statusOf(err) === 404) return undefined;
          throw err;
        }
        if (!this.#inSite(raw)) return undefined;
        return this.#normalise(raw) ?? undefined;
      },
      async (read, status) => {
        try {
          const body = { ...raw!, status };
          return this.#acceptWrite(await this.#o.api.request<KubeObject>("PUT", `${path}/status`, body));
        } catch (err) {
          if (statusOf(err) === 409) throw new ConflictError(name, read.metadata.resourceVersion ?? "", "newer");
          if (statusOf(err) === 404) throw new NotFoundError(name);
          throw err;
        }
      },
      mutate,
      this.#o.retry ?? DEFAULT_CONFLICT_RETRY,
    );
  }

  /** Read-your-writes: the written object replaces the cache unless the watch already has a newer one. */
  #acceptWrite(written: KubeObject): Machine {
    const name = written.metadata.name;
    const cached = this.#upstreamVersion.get(name);
    if (cached === undefined || newer(written.metadata.resourceVersion ?? "", cached)) {
      this.#store1(written);
      this.#serve(name, "ADDED", written.metadata.resourceVersion);
    }
    const served = this.#machines.get(name);
    return served ?? (deepFreeze(this.#normalise(written)!) as Machine);
  }

  // ---- cache maintenance ----------------------------------------------------------------

  #inSite(o: KubeObject): boolean {
    const labels = (o.metadata.labels ?? {}) as Record<string, string>;
    return this.#o.site === "" ? !(SITE_LABEL in labels) : labels[SITE_LABEL] === this.#o.site;
  }

  /** API object → Machine (CRD defaults applied), or undefined with the reason recorded. */
  #normalise(o: KubeObject): Machine | undefined {
    const m = o.metadata as Record<string, unknown>;
    const doc = {
      apiVersion: o.apiVersion,
      kind: o.kind,
      metadata: Object.fromEntries(
        ["name", "labels", "annotations", "uid", "resourceVersion", "creationTimestamp"]
          .filter((k) => m[k] !== undefined)
          .map((k) => [k, m[k]]),
      ),
      spec: o.spec ?? {},
      ...(o.status !== undefined ? { status: o.status } : {}),
    };
    // kubectl's bookkeeping (the whole last applied manifest, newlines included) is not Machine data.
    const annotations = doc.metadata.annotations as Record<string, string> | undefined;
    if (annotations && LAST_APPLIED in annotations) {
      const { [LAST_APPLIED]: _applied, ...rest } = annotations;
      if (Object.keys(rest).length > 0) doc.metadata.annotations = rest;
      else delete doc.metadata.annotations;
    }
    const result = this.#validator.validate(doc, `machines/${o.metadata.name}`);
    if (!result.ok) {
      this.#invalid.set(o.metadata.name, result.errors.join("; "));
      return undefined;
    }
    this.#invalid.delete(o.metadata.name);
    const machine = result.machine;
    if (typeof m.generation === "number") machine.metadata.generation = m.generation;
    return machine;
  }

  /** Validates and keeps an API object as the upstream Machine of its name. */
  #store1(o: KubeObject): void {
    const normal = this.#normalise(o);
    this.#upstream.set(o.metadata.name, normal ? (deepFreeze(normal) as Machine) : null);
    this.#upstreamVersion.set(o.metadata.name, o.metadata.resourceVersion ?? "");
  }

  #forget(name: string): void {
    this.#upstream.delete(name);
    this.#upstreamVersion.delete(name);
    this.#invalid.delete(name);
  }

  /** Rebuilds the served Machine of `name` from upstream plus queued status, and emits the change. */
  #serve(name: string, type: "ADDED" | "MODIFIED", version?: string): Machine | undefined {
    const up = this.#upstream.get(name);
    const before = this.#machines.get(name);
    if (!up) {
      if (before) this.#drop(name, before, version);
      return undefined;
    }
    const queued = this.#queue.forMachine(name);
    const machine =
      queued.length === 0
        ? up
        : (deepFreeze({
            ...up,
            status: applyStatusPatches(
              up.status,
              queued.map((e) => e.patch),
            ),
          }) as Machine);
    this.#unindex(before);
    this.#machines.set(name, machine);
    this.#index(machine);
    this.#updateGauges();
    this.#scheduleSave();
    this.#hub.emit(version ?? this.#version, { type: before ? "MODIFIED" : type, machine });
    return machine;
  }

  #drop(name: string, before: Machine, version?: string): void {
    this.#unindex(before);
    this.#machines.delete(name);
    this.#updateGauges();
    this.#scheduleSave();
    const gone = deepFreeze({
      ...before,
      metadata: { ...before.metadata, resourceVersion: version ?? this.#version },
    }) as Machine;
    this.#hub.emit(version ?? this.#version, { type: "DELETED", machine: gone });
  }

  #onList(items: KubeObject[], rv: string): void {
    const seen = new Set<string>();
    for (const item of items) {
      if (!this.#inSite(item)) continue;
      seen.add(item.metadata.name);
      const cached = this.#upstreamVersion.get(item.metadata.name);
      if (cached !== undefined && cached === item.metadata.resourceVersion) continue;
      this.#store1(item);
      this.#serve(item.metadata.name, "ADDED", rv);
    }
    for (const name of [...this.#upstream.keys()]) {
      if (seen.has(name)) continue;
      this.#forget(name);
      const before = this.#machines.get(name);
      if (before) this.#drop(name, before, rv);
    }
    this.#version = rv;
    this.#servedFrom = "api";
    this.#lastSyncAt = new Date().toISOString();
    // The list is the truth now: a corrupt last-known file no longer matters for serving.
    for (let i = this.#problems.length - 1; i >= 0; i--) {
      if (this.#problems[i]!.file === this.#store.file) this.#problems.splice(i, 1);
    }
    if (!this.#synced) {
      this.#synced = true;
      for (const w of this.#syncWaiters.splice(0)) w();
    }
    this.#scheduleSave();
  }

  #onEvent(type: "ADDED" | "MODIFIED" | "DELETED", object: KubeObject): void {
    const name = object.metadata.name;
    const cached = this.#upstreamVersion.get(name);
    const rv = object.metadata.resourceVersion;
    this.#lastSyncAt = new Date().toISOString();
    if (type === "DELETED" || !this.#inSite(object)) {
      // Relabelled out of the site counts as deleted here (the selector no longer matches).
      if (cached === undefined) return;
      this.#forget(name);
      const before = this.#machines.get(name);
      if (before) this.#drop(name, before, rv);
      return;
    }
    if (cached !== undefined && !newer(rv ?? "", cached)) return; // our own write got here first
    this.#store1(object);
    this.#serve(name, type, rv);
  }

  #setConnection(connected: boolean, error?: unknown): void {
    const next: Connection = connected ? "connected" : "offline";
    if (error) this.#lastError = (error as Error).message;
    if (next === this.#connection) return;
    const was = this.#connection;
    this.#connection = next;
    if (next === "offline") {
      this.#offlineSince = new Date().toISOString();
      this.#log.warn(
        { error: this.#lastError, servingFrom: this.#servedFrom },
        "Kubernetes API unreachable: serving the last-known state, status updates are queued",
      );
    } else {
      if (was === "offline") this.#log.info({ offlineSince: this.#offlineSince }, "Kubernetes API reachable again");
      this.#offlineSince = undefined;
      void this.#replay();
    }
    this.#updateGauges();
  }

  #waitSynced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  #index(machine: Machine): void {
    for (const lease of machine.spec.pxe?.dhcpLeases ?? []) {
      addSorted(this.#macIndex, lease.mac.toLowerCase(), machine.metadata.name);
      if (lease.ipv4) addSorted(this.#ipIndex, lease.ipv4, machine.metadata.name);
    }
  }

  #unindex(machine: Machine | undefined): void {
    if (!machine) return;
    for (const lease of machine.spec.pxe?.dhcpLeases ?? []) {
      removeFrom(this.#macIndex, lease.mac.toLowerCase(), machine.metadata.name);
      if (lease.ipv4) removeFrom(this.#ipIndex, lease.ipv4, machine.metadata.name);
    }
  }

  #updateGauges(): void {
    this.#gauges.connected?.set(this.#connection === "connected" ? 1 : 0);
    this.#gauges.queued?.set(this.#queue.size);
    this.#gauges.machines?.set(this.#machines.size);
  }

  // ---- last-known state ---------------------------------------------------------------

  #restore(state: LastKnownState): void {
    if (state.site !== this.#o.site) {
      this.#log.warn({ was: state.site, now: this.#o.site }, "last-known state is of another site; not served");
      return;
    }
    this.#version = isVersion(state.resourceVersion) ? state.resourceVersion : "0";
    for (const item of state.machines as KubeObject[]) {
      if (typeof item?.metadata?.name !== "string") continue;
      this.#store1(item);
      this.#serve(item.metadata.name, "ADDED", this.#version);
    }
    for (const [k, v] of Object.entries(state.configMaps)) this.#configMaps.set(k, v);
    for (const [k, v] of Object.entries(state.secrets)) this.#secretData.set(k, v);
    this.#facts = state.facts;
    this.#servedFrom = "last-known";
    this.#lastSyncAt = state.savedAt;
    this.#hub.reset();
    this.#log.info({ machines: this.#machines.size, savedAt: state.savedAt }, "loaded the last-known cluster state");
  }

  #scheduleSave(): void {
    if (this.#closed || this.#saveTimer) return;
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = undefined;
      void this.#saveNow().catch((err: unknown) => this.#log.warn({ err }, "cannot write the last-known state"));
    }, this.#o.saveDelayMs ?? 2000);
    this.#saveTimer.unref();
  }

  #saveNow(): Promise<void> {
    const state: LastKnownState = {
      savedAt: this.#lastSyncAt ?? new Date().toISOString(),
      site: this.#o.site,
      resourceVersion: this.#version,
      machines: [...this.#upstream.values()].filter((m): m is Machine => m !== null) as unknown as Record<
        string,
        unknown
      >[],
      configMaps: Object.fromEntries(this.#configMaps),
      secrets: Object.fromEntries(this.#secretData),
      facts: this.#facts,
    };
    const run = this.#saving.then(() => this.#store.save(state));
    this.#saving = run.catch(() => undefined);
    return run;
  }

  /** Test hook: write the last-known state now. */
  flush(): Promise<void> {
    clearTimeout(this.#saveTimer);
    this.#saveTimer = undefined;
    return this.#saveNow();
  }

  // ---- Secrets and ConfigMaps by reference ---------------------------------------------

  /**
   * Direct GETs (never list/watch: the RBAC grants `get` only, spec §10.5 gap (a)), remembered for
   * offline boots. Values never reach logs or events.
   */
  #secretReader(): SecretReader {
    const fetch = async (kind: "secrets" | "configmaps", namespace: string, name: string) => {
      const key = `${namespace}/${name}`;
      const cache = kind === "secrets" ? this.#secretData : this.#configMaps;
      try {
        const o = await this.#o.api.request<{ data?: Record<string, string> }>(
          "GET",
          `/api/v1/namespaces/${encodeURIComponent(namespace)}/${kind}/${encodeURIComponent(name)}`,
        );
        const data = o.data ?? {};
        const changed = JSON.stringify(cache.get(key)) !== JSON.stringify(data);
        cache.set(key, data);
        if (changed) this.#scheduleSave();
        return data;
      } catch (err) {
        if (statusOf(err) === 404) {
          if (cache.get(key) !== null) {
            cache.set(key, null);
            this.#scheduleSave();
          }
          return null;
        }
        if (isUnreachable(err) && cache.has(key)) return cache.get(key) ?? null;
        throw err;
      }
    };
    const ns = (ref: { namespace?: string }, fallback?: string) => ref.namespace || fallback || "default";
    return {
      secretValue: async (ref, defaultNamespace) => {
        const data = await fetch("secrets", ns(ref, defaultNamespace), ref.name);
        const value = data?.[ref.key ?? ""];
        return value === undefined ? undefined : Buffer.from(value, "base64");
      },
      hasSecret: async (ref, defaultNamespace) =>
        (await fetch("secrets", ns(ref, defaultNamespace), ref.name)) !== null,
      configMapValue: async (ref, defaultNamespace) =>
        (await fetch("configmaps", ns(ref, defaultNamespace), ref.name))?.[ref.key ?? "user-data"],
      hasConfigMap: async (ref, defaultNamespace) =>
        (await fetch("configmaps", ns(ref, defaultNamespace), ref.name)) !== null,
    };
  }
}

function newer(x: string, y: string): boolean {
  if (!isVersion(x) || !isVersion(y)) return x !== y;
  return compareVersions(x, y) > 0;
}

function addSorted(index: Map<string, string[]>, key: string, name: string): void {
  const names = index.get(key) ?? [];
  if (names.includes(name)) return;
  names.push(name);
  names.sort();
  index.set(key, names);
}

function removeFrom(index: Map<string, string[]>, key: string, name: string): void {
  const names = index.get(key);
  if (!names) return;
  const i = names.indexOf(name);
  if (i >= 0) names.splice(i, 1);
  if (names.length === 0) index.delete(key);
}

export type { MachineStatus };
