/**
 * The smaller views (Discovered, Images, Operations, Appliance, Audit): each a list read on open
 * and re-read when the event stream says it changed, or on a slow timer for the ones without
 * events (images, appliance).
 */
import { type ApiClient, describeError } from "../api/client";
import type { Appliance, AuditEntry, Discovered, ImageEntry, Operation } from "../api/types";
import type { LiveManager } from "./live.svelte";

export class ListManager<T> {
  data = $state.raw<T | undefined>(undefined);
  error = $state("");
  loading = $state(false);
  #timer: ReturnType<typeof setInterval> | undefined;
  #debounce: ReturnType<typeof setTimeout> | undefined;
  #off: (() => void) | undefined;

  constructor(
    private readonly fetcher: () => Promise<T>,
    private readonly live: LiveManager,
    private readonly options: { refreshOn?: RegExp; strangers?: boolean; pollMs?: number } = {},
  ) {}

  open(): void {
    this.close();
    void this.load();
    const { refreshOn, strangers, pollMs } = this.options;
    if (refreshOn) {
      this.#off = this.live.subscribe((event) => {
        if (!refreshOn.test(event.step)) return;
        if (strangers && event.machine) return;
        this.#soon();
      });
    }
    if (pollMs) this.#timer = setInterval(() => void this.load(), pollMs);
  }

  close(): void {
    this.#off?.();
    this.#off = undefined;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#debounce) clearTimeout(this.#debounce);
    this.#timer = undefined;
  }

  async load(): Promise<void> {
    this.loading = true;
    try {
      this.data = await this.fetcher();
      this.error = "";
    } catch (error) {
      this.error = describeError(error);
    } finally {
      this.loading = false;
    }
  }

  #soon(): void {
    if (this.#debounce) return;
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      void this.load();
    }, 500);
  }
}

export function createLists(api: ApiClient, live: LiveManager) {
  return {
    discovered: new ListManager<{ items: Discovered[] }>(() => api.discovered(), live, {
      refreshOn: /^dhcp\./,
      strangers: true,
      pollMs: 10_000,
    }),
    images: new ListManager<{ items: ImageEntry[] }>(() => api.images(), live, {
      refreshOn: /^image\./,
      pollMs: 5_000,
    }),
    operations: new ListManager<{ items: Operation[] }>(() => api.operations(), live, { refreshOn: /^operation\./ }),
    appliance: new ListManager<Appliance>(() => api.appliance(), live, { pollMs: 10_000 }),
    audit: new ListManager<{ items: AuditEntry[] }>(() => api.audit(), live, {
      refreshOn: /^operation\.requested|^bmc\.repin/,
    }),
  };
}

export type Lists = ReturnType<typeof createLists>;

/**
 * Keeps `list` open while the calling component is mounted (call it while the component
 * initialises), and while `when()` holds (e.g. the audit log only for admins).
 */
export function openWhileMounted<T>(list: ListManager<T>, when: () => boolean = () => true): void {
  $effect(() => {
    if (!when()) return;
    list.open();
    return () => list.close();
  });
}
