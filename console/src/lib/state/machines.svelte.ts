/**
 * The Machines table: every summary (all pages), filtered and sorted in the browser so a filter
 * applies in milliseconds at 5,000 rows, and patched live from the event stream. Items are kept
 * as a raw (non-proxied) array that is replaced, never mutated: 5,000 deep proxies would make
 * every render slow.
 */
import type { ApiClient } from "../api/client";
import type { BootEvent, MachineSummary } from "../api/types";
import type { LiveManager } from "./live.svelte";

export interface MachineFilters {
  q: string;
  power: string;
  phase: string;
  site: string;
  failed: boolean;
  repavePending: boolean;
}

export type SortKey = "name" | "phase" | "power" | "site" | "lastEvent";

const collator = new Intl.Collator(undefined, { numeric: true });
const EMPTY: MachineFilters = { q: "", power: "", phase: "", site: "", failed: false, repavePending: false };
/** Steps after which the summary (phase, power, conditions) is re-read. */
const REFRESH_STEPS = /^(operation\.|bmc\.power|pxe\.disable|cloudinit\.)/;

function failedOf(event: BootEvent): boolean {
  return event.result === "error" || event.result === "not-found" || event.result === "aborted";
}

export class MachinesManager {
  items = $state.raw<MachineSummary[]>([]);
  loaded = $state(false);
  loading = $state(false);
  error = $state("");
  filters = $state<MachineFilters>({ ...EMPTY });
  sortKey = $state<SortKey>("name");
  sortDesc = $state(false);
  /** Performance marks for the bench: the time the last filter change was applied. */
  filterAppliedAt = 0;

  #index = new Map<string, number>();
  #pending = new Map<string, BootEvent>();
  #flushScheduled = false;
  #dirty = new Set<string>();
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #unsubscribe: Array<() => void> = [];

  /** Sorted once per list or sort change; a filter then only walks it (filtering keeps the order). */
  readonly sorted = $derived.by(() => this.#sort(this.items, this.sortKey, this.sortDesc));
  readonly filtered = $derived.by(() => this.#filter(this.sorted, this.filters));

  readonly options = $derived.by(() => {
    const powers = new Set<string>();
    const phases = new Set<string>();
    const sites = new Set<string>();
    for (const item of this.items) {
      powers.add(item.power);
      if (item.phase) phases.add(item.phase);
      if (item.site) sites.add(item.site);
    }
    const sorted = (set: Set<string>) => [...set].sort();
    return { powers: sorted(powers), phases: sorted(phases), sites: sorted(sites) };
  });

  readonly activeFilterCount = $derived(
    Object.entries(this.filters).filter(([, value]) => value !== "" && value !== false).length,
  );

  constructor(
    private readonly api: ApiClient,
    private readonly live: LiveManager,
  ) {}

  start(): void {
    if (this.#unsubscribe.length > 0) return;
    this.#unsubscribe.push(
      this.live.subscribe((event) => this.#onEvent(event)),
      this.live.onGone(() => void this.load()),
    );
    void this.load();
  }

  stop(): void {
    for (const off of this.#unsubscribe) off();
    this.#unsubscribe = [];
  }

  async load(): Promise<void> {
    this.loading = true;
    try {
      const all: MachineSummary[] = [];
      let cont: string | undefined;
      for (let page = 0; page < 1000; page++) {
        // The server's default page size applies; `continue` walks the rest.
        const list = await this.api.machines({}, undefined, cont);
        all.push(...list.items);
        cont = list.continue;
        if (!cont) break;
      }
      this.#setItems(all);
      this.error = "";
    } catch (error) {
      this.error = error instanceof Error ? error.message : String(error);
    } finally {
      this.loading = false;
      this.loaded = true;
    }
  }

  setFilter<K extends keyof MachineFilters>(key: K, value: MachineFilters[K]): void {
    this.filters = { ...this.filters, [key]: value };
    this.filterAppliedAt = performance.now();
  }

  clearFilters(): void {
    this.filters = { ...EMPTY };
  }

  sortBy(key: SortKey): void {
    if (this.sortKey === key) this.sortDesc = !this.sortDesc;
    else {
      this.sortKey = key;
      this.sortDesc = false;
    }
  }

  get(name: string): MachineSummary | undefined {
    const at = this.#index.get(name);
    return at === undefined ? undefined : this.items[at];
  }

  /** A summary the detail view or an action re-read: put it in the table at once. */
  upsert(summary: MachineSummary): void {
    const at = this.#index.get(summary.name);
    const next = [...this.items];
    if (at === undefined) next.push(summary);
    else next[at] = { ...next[at], ...summary };
    this.#setItems(next);
  }

  remove(name: string): void {
    this.#setItems(this.items.filter((item) => item.name !== name));
  }

  #setItems(items: MachineSummary[]): void {
    this.#index = new Map(items.map((item, i) => [item.name, i]));
    this.items = items;
  }

  #onEvent(event: BootEvent): void {
    if (!event.machine || !this.#index.has(event.machine)) return;
    this.#pending.set(event.machine, event);
    if (REFRESH_STEPS.test(event.step)) this.#markDirty(event.machine);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // One table update per frame however many events arrive (a boot storm sends thousands a second).
    requestAnimationFrame(() => this.#flush());
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#pending.size === 0) return;
    const next = [...this.items];
    for (const [name, event] of this.#pending) {
      const at = this.#index.get(name);
      if (at === undefined) continue;
      const item = next[at]!;
      const failed = failedOf(event);
      next[at] = {
        ...item,
        lastEvent: { seq: event.seq, time: event.time, step: event.step, result: event.result, reason: event.reason },
        failed: failed || (event.result === "ok" && event.step !== "pxe.disable" ? item.failed : false),
        failureReason: failed ? (event.reason ?? event.result) : item.failureReason,
        ip: event.ip && event.step.startsWith("dhcp.") ? event.ip : item.ip,
      };
    }
    this.#pending.clear();
    this.items = next;
  }

  #markDirty(name: string): void {
    this.#dirty.add(name);
    if (this.#refreshTimer) return;
    this.#refreshTimer = setTimeout(() => void this.#refreshDirty(), 400);
  }

  async #refreshDirty(): Promise<void> {
    this.#refreshTimer = undefined;
    const names = [...this.#dirty];
    this.#dirty.clear();
    if (names.length > 25) {
      await this.load();
      return;
    }
    for (const name of names) {
      try {
        const detail = await this.api.machine(name);
        const {
          metadata: _m,
          spec: _s,
          status: _st,
          bmcDetail: _b,
          operations: _o,
          quarantine: _q,
          ...summary
        } = detail;
        const current = this.get(name);
        this.upsert({ ...summary, lastEvent: current?.lastEvent ?? summary.lastEvent });
      } catch {
        // Deleted meanwhile, or the session ended: the next list load settles it.
      }
    }
  }

  /** Lower-case text a search matches, made once per summary object (summaries are replaced, never mutated). */
  #searchText = new WeakMap<MachineSummary, string>();

  #textOf(m: MachineSummary): string {
    let text = this.#searchText.get(m);
    if (text === undefined) {
      text = `${m.name}\n${m.ip ?? ""}\n${m.mac ?? ""}\n${m.image ?? ""}`.toLowerCase();
      this.#searchText.set(m, text);
    }
    return text;
  }

  #filter(items: MachineSummary[], f: MachineFilters): MachineSummary[] {
    const q = f.q.trim().toLowerCase();
    if (q === "" && f.power === "" && f.phase === "" && f.site === "" && !f.failed && !f.repavePending) return items;
    return items.filter(
      (m) =>
        (f.power === "" || m.power === f.power) &&
        (f.phase === "" || m.phase === f.phase) &&
        (f.site === "" || m.site === f.site) &&
        (!f.failed || m.failed === true) &&
        (!f.repavePending || m.repavePending) &&
        (q === "" || this.#textOf(m).includes(q)),
    );
  }

  #sort(items: MachineSummary[], key: SortKey, desc: boolean): MachineSummary[] {
    const value = (m: MachineSummary): string | number => {
      switch (key) {
        case "lastEvent":
          return m.lastEvent?.seq ?? 0;
        case "site":
          return m.site ?? "";
        default:
          return m[key];
      }
    };
    const out = [...items];
    out.sort((a, b) => {
      const va = value(a);
      const vb = value(b);
      const cmp = typeof va === "number" && typeof vb === "number" ? va - vb : collator.compare(String(va), String(vb));
      return desc ? -cmp : cmp;
    });
    return out;
  }
}
