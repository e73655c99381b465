/**
 * The typed client of the console API. One place knows the URL layout, the CSRF header and the
 * error shape, so a view never builds a URL or parses an error body itself.
 */
import type {
  ActionAccepted,
  ApiErrorBody,
  Appliance,
  AuditEntry,
  Discovered,
  EnrollRequest,
  ImageEntry,
  MachineDetail,
  MachineEvents,
  MachineFilter,
  MachineList,
  MachineSummary,
  Operation,
  PowerAction,
  Session,
  UpgradeStatus,
} from "./types";

/** An answer that is not 2xx, with the catalogue's code (server/api/errors.ts). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body?: ApiErrorBody["error"],
  ) {
    super(message);
  }
}

export interface ApiClientOptions {
  base?: string;
  /** Called on every 401 (the session ended): the app shows the login page. */
  onUnauthenticated?: () => void;
  fetch?: typeof fetch;
}

const enc = encodeURIComponent;

export class ApiClient {
  readonly #base: string;
  readonly #fetch: typeof fetch;
  readonly #onUnauthenticated: (() => void) | undefined;
  #csrf = "";

  constructor(options: ApiClientOptions = {}) {
    this.#base = options.base ?? "/api/v1";
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#onUnauthenticated = options.onUnauthenticated;
  }

  get base(): string {
    return this.#base;
  }

  set csrfToken(token: string) {
    this.#csrf = token;
  }

  async request<T>(method: string, path: string, body?: unknown, quiet401 = false): Promise<T> {
    try {
      return await this.#send<T>(method, path, body, quiet401);
    } catch (error) {
      // The session's CSRF token changed (a login in another tab replaced the session): read the
      // current one and try once more.
      if (!(error instanceof ApiError) || error.code !== "CSRF_FAILED" || method === "GET") throw error;
      const session = await this.#send<{ csrfToken: string }>("GET", "/session", undefined, quiet401);
      this.#csrf = session.csrfToken;
      return this.#send<T>(method, path, body, quiet401);
    }
  }

  async #send<T>(method: string, path: string, body: unknown, quiet401: boolean): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (method !== "GET" && this.#csrf !== "") headers["x-csrf-token"] = this.#csrf;
    const response = await this.#fetch(this.#base + path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      const error = (parsed as ApiErrorBody | undefined)?.error;
      if (response.status === 401 && !quiet401) this.#onUnauthenticated?.();
      throw new ApiError(
        response.status,
        error?.code ?? `HTTP_${response.status}`,
        error?.message ?? (response.statusText || `HTTP ${response.status}`),
        error,
      );
    }
    return parsed as T;
  }

  // Session
  session(): Promise<Session> {
    return this.request("GET", "/session", undefined, true);
  }
  login(username: string, password: string): Promise<Session> {
    return this.request("POST", "/session", { username, password }, true);
  }
  logout(): Promise<void> {
    return this.request("DELETE", "/session");
  }

  // Machines
  machines(filter: MachineFilter = {}, limit?: number, cont?: string): Promise<MachineList> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filter)) {
      if (value === undefined || value === "" || value === false) continue;
      query.set(key, String(value));
    }
    if (limit !== undefined) query.set("limit", String(limit));
    if (cont) query.set("continue", cont);
    const qs = query.toString();
    return this.request("GET", `/machines${qs ? `?${qs}` : ""}`);
  }
  machine(name: string): Promise<MachineDetail> {
    return this.request("GET", `/machines/${enc(name)}`);
  }
  machineYaml(name: string): Promise<{ yaml: string }> {
    return this.request("GET", `/machines/${enc(name)}/yaml`);
  }
  machineEvents(name: string, since?: number): Promise<MachineEvents> {
    return this.request("GET", `/machines/${enc(name)}/events${since === undefined ? "" : `?since=${since}`}`);
  }
  createMachine(machine: unknown): Promise<MachineSummary> {
    return this.request("POST", "/machines", { machine });
  }
  updateMachine(name: string, machine: unknown): Promise<MachineSummary> {
    return this.request("PUT", `/machines/${enc(name)}`, { machine });
  }
  deleteMachine(name: string): Promise<void> {
    return this.request("DELETE", `/machines/${enc(name)}`);
  }

  // Actions
  power(name: string, action: PowerAction): Promise<ActionAccepted> {
    return this.request("POST", `/machines/${enc(name)}/power`, { action });
  }
  reboot(name: string): Promise<ActionAccepted> {
    return this.request("POST", `/machines/${enc(name)}/reboot`, {});
  }
  repave(name: string): Promise<ActionAccepted> {
    return this.request("POST", `/machines/${enc(name)}/repave`, {});
  }
  repinBmc(name: string): Promise<unknown> {
    return this.request("POST", `/machines/${enc(name)}/repin-bmc`, {});
  }

  // Other lists
  discovered(): Promise<{ items: Discovered[] }> {
    return this.request("GET", "/discovered");
  }
  enroll(mac: string, body: EnrollRequest): Promise<MachineSummary> {
    return this.request("POST", `/discovered/${enc(mac)}/enroll`, body);
  }
  images(): Promise<{ items: ImageEntry[] }> {
    return this.request("GET", "/images");
  }
  operations(): Promise<{ items: Operation[] }> {
    return this.request("GET", "/operations");
  }
  appliance(): Promise<Appliance> {
    return this.request("GET", "/appliance");
  }
  applianceUpgrade(): Promise<UpgradeStatus> {
    return this.request("GET", "/appliance/upgrade");
  }
  /** Uploads an update bundle; XMLHttpRequest because fetch reports no upload progress. */
  uploadApplianceUpgrade(file: Blob, onProgress: (sent: number, total: number) => void): Promise<UpgradeStatus> {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${this.#base}/appliance/upgrade`);
      xhr.setRequestHeader("content-type", "application/x-tar");
      xhr.setRequestHeader("accept", "application/json");
      if (this.#csrf !== "") xhr.setRequestHeader("x-csrf-token", this.#csrf);
      xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
      xhr.onerror = () => reject(new ApiError(0, "NETWORK", "the upload was interrupted"));
      xhr.onload = () => {
        let parsed: unknown;
        try {
          parsed = xhr.responseText === "" ? undefined : JSON.parse(xhr.responseText);
        } catch {
          parsed = undefined;
        }
        if (xhr.status >= 200 && xhr.status < 300) return resolve(parsed as UpgradeStatus);
        if (xhr.status === 401) this.#onUnauthenticated?.();
        const error = (parsed as ApiErrorBody | undefined)?.error;
        reject(
          new ApiError(xhr.status, error?.code ?? `HTTP_${xhr.status}`, error?.message ?? `HTTP ${xhr.status}`, error),
        );
      };
      xhr.send(file);
    });
  }
  audit(limit = 200, before?: number): Promise<{ items: AuditEntry[] }> {
    return this.request("GET", `/audit?limit=${limit}${before === undefined ? "" : `&before=${before}`}`);
  }

  /** URL of one Machine's SSE stream, resumed after `since`. */
  machineEventsUrl(name: string, since?: number): string {
    return `${this.#base}/machines/${enc(name)}/events?follow=1${since === undefined ? "" : `&since=${since}`}`;
  }

  /** URL of the firehose SSE stream (EventSource sends the session cookie same-origin). */
  eventsUrl(since?: number): string {
    return `${this.#base}/events?follow=1${since === undefined ? "" : `&since=${since}`}`;
  }
}

/** Words for an error an operator can act on. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    switch (error.code) {
      case "FORBIDDEN":
        return "Your role does not allow this action. Ask an admin for the operator role.";
      case "CSRF_FAILED":
        return "The session token expired. Reload the page and try again.";
      case "OPERATION_PENDING":
        return `An operation of this kind is still running${error.body?.operation ? ` (${String(error.body.operation)})` : ""}: wait for it to finish.`;
      case "DISCOVERED_NOT_FOUND":
        return "This MAC is no longer in the discovered list (enrolled meanwhile, or forgotten).";
      case "MACHINE_EXISTS":
        return "A Machine with this name exists already: choose another name.";
      case "INVALID_MACHINE":
        return `The Machine was refused: ${error.body?.detail ? String(error.body.detail) : error.message}`;
      case "NO_BMC":
        return "This Machine has no BMC configured (spec.pxe.redfish): power actions need one.";
      case "MACHINE_QUARANTINED":
        return error.body?.detail ? String(error.body.detail) : error.message;
      default:
        return error.body?.detail ? `${error.message}: ${String(error.body.detail)}` : error.message;
    }
  }
  return error instanceof Error ? error.message : String(error);
}
