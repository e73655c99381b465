/**
 * List + watch of one collection, the client-go "reflector" loop: list, then watch from the
 * list's resourceVersion with bookmarks; every event (bookmarks too) moves the version on, so
 * a dropped stream resumes where it stopped. A 410 Gone (HTTP or an ERROR event) re-lists. Any
 * other failure backs off (exponential with jitter, capped) and tries again, until `stop()`.
 */
import type { Logger } from "pino";
import { isUnreachable, type KubeApi, KubeApiError, statusOf, type WatchEvent, type WatchHandle } from "./kube-api.js";

export type KubeObject = Record<string, unknown> & {
  metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
};

export interface ReflectorHandlers {
  /** A full list replaced the cache (first sync, and after every 410). */
  onList(items: KubeObject[], resourceVersion: string): void;
  onEvent(type: "ADDED" | "MODIFIED" | "DELETED", object: KubeObject): void;
  /** The collection version moved (events and bookmarks). */
  onVersion?(resourceVersion: string): void;
  /** Connection state: true after a successful list or watch start, false on an unreachable API. */
  onConnection?(connected: boolean, error?: unknown): void;
}

export interface ReflectorOptions {
  api: KubeApi;
  /** Collection path, e.g. `/apis/unbounded-cloud.io/v1alpha3/machines`. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  log: Pick<Logger, "warn" | "debug" | "info">;
  /** First back-off step (default 200 ms); doubles to `maxBackoffMs` (default 3 s: one appliance reconnecting quickly costs the API server nothing). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Server-side watch timeout asked for (default 300 s): the watch is re-opened from its version. */
  watchTimeoutSeconds?: number;
}

export class Reflector {
  readonly #o: ReflectorOptions;
  readonly #h: ReflectorHandlers;
  #version = "";
  #stopped = false;
  #watch: WatchHandle | undefined;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  /** Counters for metrics and tests. */
  readonly stats = { lists: 0, watches: 0, gone: 0, errors: 0, bookmarks: 0 };

  constructor(options: ReflectorOptions, handlers: ReflectorHandlers) {
    this.#o = options;
    this.#h = handlers;
  }

  get resourceVersion(): string {
    return this.#version;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watch?.abort();
    this.#wake?.();
    await this.#loop;
  }

  #query(extra: Record<string, string>): string {
    const q = new URLSearchParams();
    if (this.#o.labelSelector) q.set("labelSelector", this.#o.labelSelector);
    if (this.#o.fieldSelector) q.set("fieldSelector", this.#o.fieldSelector);
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    const s = q.toString();
    return s === "" ? this.#o.path : `${this.#o.path}?${s}`;
  }

  async #list(): Promise<void> {
    const list = await this.#o.api.request<{ items?: KubeObject[]; metadata?: { resourceVersion?: string } }>(
      "GET",
      this.#query({}),
    );
    this.stats.lists++;
    this.#version = list.metadata?.resourceVersion ?? "";
    this.#h.onList(list.items ?? [], this.#version);
  }

  async #run(): Promise<void> {
    let failures = 0;
    let needList = true;
    while (!this.#stopped) {
      try {
        if (needList) {
          await this.#list();
          needList = false;
          this.#h.onConnection?.(true);
        }
        let gone = false;
        const handle = await this.#o.api.watch(
          this.#query({
            watch: "true",
            allowWatchBookmarks: "true",
            resourceVersion: this.#version,
            timeoutSeconds: String(this.#o.watchTimeoutSeconds ?? 300),
          }),
          (event) => {
            if (this.#handle(event) === "gone") {
              gone = true;
              this.#watch?.abort();
            }
          },
        );
        this.stats.watches++;
        this.#watch = handle;
        if (this.#stopped) handle.abort();
        this.#h.onConnection?.(true);
        failures = 0;
        await handle.done;
        this.#watch = undefined;
        if (gone) {
          this.stats.gone++;
          needList = true;
          this.#o.log.info({ path: this.#o.path }, "watch: resourceVersion too old (410 Gone), listing again");
        }
      } catch (err) {
        this.#watch = undefined;
        if (this.#stopped) break;
        if (statusOf(err) === 410) {
          this.stats.gone++;
          needList = true;
          continue;
        }
        this.stats.errors++;
        failures++;
        if (isUnreachable(err)) this.#h.onConnection?.(false, err);
        else this.#o.log.warn({ err, path: this.#o.path }, "list/watch failed");
        // 403 and 5xx: the list may be wrong too; list again when it works.
        if (err instanceof KubeApiError) needList = true;
        const base = Math.min(this.#o.maxBackoffMs ?? 3_000, (this.#o.backoffMs ?? 200) * 2 ** (failures - 1));
        await this.#sleep(base / 2 + Math.random() * (base / 2));
      }
    }
  }

  #handle(event: WatchEvent): "gone" | undefined {
    if (event.type === "ERROR") {
      const code = (event.object as { code?: number }).code;
      if (code === 410) return "gone";
      this.#o.log.warn({ path: this.#o.path, status: event.object }, "watch: error event");
      return "gone"; // any error event: start over with a list
    }
    const object = event.object as KubeObject;
    const version = object?.metadata?.resourceVersion;
    if (typeof version === "string" && version !== "") this.#version = version;
    if (event.type === "BOOKMARK") {
      this.stats.bookmarks++;
      this.#h.onVersion?.(this.#version);
      return undefined;
    }
    if (event.type !== "ADDED" && event.type !== "MODIFIED" && event.type !== "DELETED") return undefined;
    if (typeof object?.metadata?.name !== "string") return undefined;
    this.#h.onEvent(event.type, object);
    this.#h.onVersion?.(this.#version);
    return undefined;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
