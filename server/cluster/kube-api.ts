/**
 * The slice of the Kubernetes REST API the cluster sync uses, as an interface: JSON requests by
 * path and watch streams. `HttpKubeApi` implements it over @kubernetes/client-node's KubeConfig
 * (kubeconfig file, in-cluster service account, auth plugins) and node:http(s), so every call
 * is an ordinary API request a fake server or a real one answers the same way.
 */
import http from "node:http";
import https from "node:https";
// Type only: client-node's module graph (its generated API) costs some 70 MiB of RSS, so it is loaded
// in cluster mode only (loadKubeConfig), never by a standalone appliance.
import type { KubeConfig } from "@kubernetes/client-node";

export interface KubeStatusBody {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

/** A non-2xx answer of the API server: `status` is the HTTP code (409 Conflict, 410 Gone, 403...). */
export class KubeApiError extends Error {
  readonly code = "KUBE_API";
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(`kubernetes API ${status} ${reason}: ${message}`);
  }
}

/** The API server could not be reached at all (refused, reset, timed out): offline. */
export class KubeUnreachableError extends Error {
  readonly code = "KUBE_UNREACHABLE";
}

export function isUnreachable(error: unknown): boolean {
  return error instanceof KubeUnreachableError;
}

export function statusOf(error: unknown): number | undefined {
  return error instanceof KubeApiError ? error.status : undefined;
}

export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: Record<string, unknown>;
}

export interface WatchHandle {
  /** Resolves when the stream ends (server closed it, or `abort()`); rejects on a transport error. */
  readonly done: Promise<void>;
  abort(): void;
}

export interface KubeApi {
  /** Rejects with KubeApiError (non-2xx) or KubeUnreachableError. */
  request<T = Record<string, unknown>>(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    path: string,
    body?: unknown,
    contentType?: string,
  ): Promise<T>;
  /** `path` carries the query (`?watch=true&resourceVersion=...`). Events are delivered in order. */
  watch(path: string, onEvent: (event: WatchEvent) => void): Promise<WatchHandle>;
  /** The API server URL (for the banner and the upstream status). */
  readonly server: string;
  /** The CA of the client config (PEM), for `/attest`'s clusterCA (spec §1.4 step 9). */
  readonly caPem?: string;
}

export interface KubeApiOptions {
  /** A kubeconfig file; else the in-cluster service account when `inCluster`, else the default chain. */
  kubeconfig?: string;
  inCluster?: boolean;
  /** Per-request timeout (watches excepted). Default 10 s. */
  timeoutMs?: number;
}

/** Loads the client config the way kubectl and upstream do (spec §1.1 "Kubeconfig"). */
export async function loadKubeConfig(options: KubeApiOptions): Promise<KubeConfig> {
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
  else if (options.inCluster) kc.loadFromCluster();
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new Error("kubeconfig: no current cluster");
  return kc;
}

export class HttpKubeApi implements KubeApi {
  readonly server: string;
  readonly caPem?: string;
  readonly #kc: KubeConfig;
  readonly #timeoutMs: number;
  readonly #watchIdleMs: number;
  readonly #agent: http.Agent;

  constructor(kc: KubeConfig, options: { timeoutMs?: number; watchIdleMs?: number } = {}) {
    this.#kc = kc;
    const cluster = kc.getCurrentCluster()!;
    this.server = cluster.server.replace(/\/+$/, "");
    this.caPem = cluster.caData ? Buffer.from(cluster.caData, "base64").toString("utf8") : undefined;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    // The API server sends a bookmark about once a minute; two missed ones mean the stream is gone.
    this.#watchIdleMs = options.watchIdleMs ?? 150_000;
    this.#agent = this.server.startsWith("https:")
      ? new https.Agent({ keepAlive: true, maxSockets: 16 })
      : new http.Agent({ keepAlive: true, maxSockets: 16 });
  }

  async #options(method: string, path: string): Promise<https.RequestOptions> {
    const url = new URL(this.server + path);
    const opts: https.RequestOptions = {
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port,
      path: url.pathname + url.search,
      headers: { Accept: "application/json" },
    };
    // Auth (token, client certificate, exec plugin) and the CA come from client-node.
    await this.#kc.applyToHTTPSOptions(opts);
    opts.agent = this.#agent;
    return opts;
  }

  #send(opts: https.RequestOptions): http.ClientRequest {
    return (opts.protocol === "https:" ? https : http).request(opts);
  }

  async request<T>(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<T> {
    const opts = await this.#options(method, path);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) {
      opts.headers = { ...opts.headers, "Content-Type": contentType, "Content-Length": Buffer.byteLength(payload) };
    }
    return new Promise<T>((resolve, reject) => {
      const req = this.#send(opts);
      req.setTimeout(this.#timeoutMs, () => req.destroy(new KubeUnreachableError(`${method} ${path}: timed out`)));
      req.on("error", (err) =>
        reject(
          err instanceof KubeUnreachableError ? err : new KubeUnreachableError(`${method} ${path}: ${err.message}`),
        ),
      );
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (err) => reject(new KubeUnreachableError(`${method} ${path}: ${err.message}`)));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown;
          try {
            parsed = text === "" ? {} : JSON.parse(text);
          } catch {
            parsed = { message: text.slice(0, 200) };
          }
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) resolve(parsed as T);
          else {
            const status = parsed as KubeStatusBody;
            reject(new KubeApiError(code, status.reason ?? "Unknown", status.message ?? `HTTP ${code}`));
          }
        });
      });
      req.end(payload);
    });
  }

  async watch(path: string, onEvent: (event: WatchEvent) => void): Promise<WatchHandle> {
    const opts = await this.#options("GET", path);
    // A watch lives long: its own connection, never a pooled keep-alive socket (a socket the
    // server closed while idle in the pool answers "socket hang up"). Bookmarks keep it busy, so
    // a stream silent for `watchIdleMs` is dead (a half-open TCP connection) and is cut.
    opts.agent = false;
    const req = this.#send(opts);
    req.setTimeout(this.#watchIdleMs, () => req.destroy(new Error(`no data for ${this.#watchIdleMs} ms`)));
    let settle!: { resolve: () => void; reject: (e: Error) => void };
    const done = new Promise<void>((resolve, reject) => {
      settle = { resolve, reject };
    });
    // The caller awaits `done` later; an early failure must not count as unhandled meanwhile.
    done.catch(() => undefined);
    let aborted = false;
    req.on("error", (err) => {
      if (aborted) settle.resolve();
      else settle.reject(new KubeUnreachableError(`watch ${path}: ${err.message}`));
    });
    await new Promise<void>((resolve, reject) => {
      req.on("response", (res) => {
        const code = res.statusCode ?? 0;
        if (code < 200 || code >= 300) {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            let status: KubeStatusBody = {};
            try {
              status = JSON.parse(Buffer.concat(chunks).toString("utf8")) as KubeStatusBody;
            } catch {}
            reject(new KubeApiError(code, status.reason ?? "Unknown", status.message ?? `HTTP ${code}`));
          });
          return;
        }
        let buffered = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffered += chunk;
          // Bounded: one object per line; a line over 64 MiB is not a watch stream.
          if (buffered.length > 64 * 1024 * 1024) {
            req.destroy(new Error("watch line too long"));
            return;
          }
          let newline = buffered.indexOf("\n");
          while (newline >= 0) {
            const line = buffered.slice(0, newline).trim();
            buffered = buffered.slice(newline + 1);
            if (line !== "") {
              try {
                onEvent(JSON.parse(line) as WatchEvent);
              } catch {
                // A malformed line is dropped (the re-list after the stream ends repairs the cache).
              }
            }
            newline = buffered.indexOf("\n");
          }
        });
        res.on("end", () => settle.resolve());
        res.on("aborted", () => {
          if (aborted) settle.resolve();
          else settle.reject(new KubeUnreachableError(`watch ${path}: connection lost`));
        });
        res.on("error", (err) => {
          if (aborted) settle.resolve();
          else settle.reject(new KubeUnreachableError(`watch ${path}: ${err.message}`));
        });
        resolve();
      });
      req.on("error", (err) => reject(new KubeUnreachableError(`watch ${path}: ${err.message}`)));
      req.end();
    });
    return {
      done,
      abort: () => {
        aborted = true;
        req.destroy();
        settle.resolve();
      },
    };
  }

  close(): void {
    this.#agent.destroy();
  }
}
