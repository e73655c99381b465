import { setTimeout as sleep } from "node:timers/promises";
import { BmcError, BmcHttpError } from "../driver.js";
import { lastSegment, linkOf, resolveLink, samePath } from "./links.js";
import { bmcMessages } from "./messages.js";
import type { RedfishSession } from "./session.js";
import type { RedfishRequest, RedfishResponse, RedfishTransport } from "./transport.js";

export type Json = Record<string, unknown>;

export interface Resource {
  path: string;
  body: Json;
  /** The `ETag` header, else the body's `@odata.etag`. */
  etag?: string;
}

export interface ClientOptions {
  /** `spec.pxe.redfish.deviceID`: "" discovers; see `systemPath()`. */
  deviceID?: string;
  /** Task monitor polling: interval when the BMC sends no Retry-After, and the overall bound. */
  taskPollMs?: number;
  taskTimeoutMs?: number;
}

/** Task states that end a task (DMTF TaskState). */
const TASK_OK = new Set(["Completed"]);
const TASK_FAILED = new Set(["Exception", "Killed", "Cancelled", "Interrupted", "Failed"]); // "Failed": Supermicro

/**
 * Redfish resources on one BMC: discovery from the service root, the ComputerSystem the Machine
 * means, GET with ETags, PATCH with `If-Match` handling, actions with 202 task monitors.
 */
export class RedfishClient {
  private root: Json | undefined;
  private system: string | undefined;

  constructor(
    readonly transport: RedfishTransport,
    readonly session: RedfishSession,
    private readonly o: ClientOptions = {},
  ) {}

  get rootPath(): string {
    return `${this.transport.prefix}/redfish/v1/`;
  }

  /** The service root (cached; fetched unauthenticated, as it is the first-contact request). */
  async serviceRoot(): Promise<Json> {
    if (this.root) return this.root;
    await this.transport.establishTrust(this.rootPath);
    const res = await this.transport.request({ method: "GET", path: this.rootPath });
    this.root = expectObject(check(res, "GET", this.rootPath), "GET", this.rootPath);
    return this.root;
  }

  /** Where to log in: the root's `Links.Sessions`, else `SessionService.Sessions`, else the standard path. */
  async sessionsPath(): Promise<string> {
    const root = await this.serviceRoot();
    const links = root.Links as Json | undefined;
    const direct = linkOf(links?.Sessions);
    if (direct) return resolveLink(this.transport.origin, direct, "Sessions link");
    const service = linkOf(root.SessionService);
    if (!service) throw new BmcError("not-supported", "the service root has no SessionService");
    return `${resolveLink(this.transport.origin, service, "SessionService link").replace(/\/+$/, "")}/Sessions`;
  }

  /**
   * The ComputerSystem path. `deviceID` set: the member with that id (exact, then ignoring case
   * and trailing slashes). The CRD default "1" on a BMC with one member of another id (Dell's
   * `System.Embedded.1`) means that member. `deviceID` "" (discovery): the only member. Anything
   * else is an error that lists the members, so the operator can pick (blades have several).
   */
  async systemPath(): Promise<string> {
    if (this.system) return this.system;
    const root = await this.serviceRoot();
    const systemsLink = linkOf(root.Systems);
    if (!systemsLink) throw new BmcError("not-supported", "the service root has no Systems collection");
    const collectionPath = resolveLink(this.transport.origin, systemsLink, "Systems link");
    const collection = await this.get(collectionPath);
    const members = (Array.isArray(collection.body.Members) ? collection.body.Members : [])
      .map((m) => linkOf(m))
      .filter((m): m is string => m !== undefined)
      .map((m) => resolveLink(this.transport.origin, m, "Systems member"));
    const ids = members.map(lastSegment);
    const wanted = this.o.deviceID ?? "1";
    const list = ids.length > 0 ? ids.join(", ") : "none";
    let index = -1;
    if (wanted !== "") {
      index = ids.indexOf(wanted);
      if (index < 0) index = ids.findIndex((id) => samePath(id, wanted));
      if (index < 0 && wanted === "1" && ids.length === 1) index = 0;
      if (index < 0) {
        throw new BmcError(
          "not-supported",
          `the BMC has no System ${JSON.stringify(wanted)}; its Systems are: ${list}. Set spec.pxe.redfish.deviceID to one of them`,
        );
      }
    } else if (ids.length === 1) index = 0;
    else {
      throw new BmcError(
        "not-supported",
        ids.length === 0
          ? "the BMC's Systems collection is empty"
          : `the BMC has ${ids.length} Systems (${list}); set spec.pxe.redfish.deviceID to the one this Machine is`,
      );
    }
    this.system = members[index]!;
    return this.system;
  }

  async get(path: string): Promise<Resource> {
    const res = await this.session.request({ method: "GET", path });
    const body = expectObject(check(res, "GET", path), "GET", path);
    return { path, body, etag: etagOf(res, body) };
  }

  /** Resolves a link from a body against the BMC origin (never leaving it). */
  link(value: unknown, what: string): string {
    return resolveLink(this.transport.origin, value, what);
  }

  /**
   * PATCH with ETags (fixtures README item 5): `If-Match` with the resource's ETag when it has
   * one. 428 (Lenovo XCC: ETag required) → re-GET and send it; 412 (stale or mangled ETag) →
   * re-GET and retry once with the fresh one, then once without `If-Match` (vendors that quote
   * ETags so that their own check fails). A 202 is followed to its end.
   */
  async patch(path: string, body: Json, etag?: string): Promise<RedfishResponse> {
    const send = (tag: string | undefined) =>
      this.session.request({ method: "PATCH", path, body, headers: tag ? { "if-match": tag } : {} });
    let res = await send(etag);
    if (res.status === 428 || res.status === 412) {
      const fresh = (await this.get(path)).etag;
      if (res.status === 428 && !fresh) return this.finish(res, "PATCH", path);
      res = await send(fresh);
      if (res.status === 412) res = await send(undefined);
    }
    return this.finish(res, "PATCH", path);
  }

  /** An action POST. Never with `If-Match`: iDRAC answers 412 to that. */
  async action(path: string, body: Json): Promise<RedfishResponse> {
    const res = await this.session.request({ method: "POST", path, body });
    return this.finish(res, "POST", path);
  }

  private async finish(res: RedfishResponse, method: RedfishRequest["method"], path: string): Promise<RedfishResponse> {
    check(res, method, path);
    if (res.status === 202) await this.waitTask(res, `${method} ${path}`);
    return res;
  }

  /**
   * A 202's task monitor (`Location`, else the Task in the body), polled until the task ends:
   * 202 while running (honouring Retry-After), then the Task's `TaskState`. Supermicro answers
   * 200 with a Running Task, Dell with a `JID_` job; both are polled the same way.
   */
  async waitTask(accepted: RedfishResponse, what: string): Promise<void> {
    const bodyTask = accepted.body as Json | undefined;
    const location = accepted.headers.location ?? (bodyTask?.TaskState !== undefined ? linkOf(bodyTask) : undefined);
    if (!location) return; // accepted with nothing to follow: the BMC owns it now
    const monitor = this.link(location, "task monitor");
    const pollMs = this.o.taskPollMs ?? 2000;
    const deadline = Date.now() + (this.o.taskTimeoutMs ?? 10 * 60_000);
    let retryAfter = accepted.headers["retry-after"];
    for (;;) {
      const wait = retryAfter !== undefined && Number.isFinite(Number(retryAfter)) ? Number(retryAfter) * 1000 : pollMs;
      if (Date.now() + Math.min(wait, 30_000) > deadline) {
        throw new BmcError("timeout", `${what}: the BMC's task ${monitor} did not finish in time`);
      }
      await sleep(Math.min(wait, 30_000));
      const res = await this.session.request({ method: "GET", path: monitor });
      retryAfter = res.headers["retry-after"];
      if (res.status === 404 || res.status === 410) return; // monitors are deleted once the task is done
      if (res.status >= 400) check(res, "GET", monitor);
      const task = res.body as Json | undefined;
      const state = typeof task?.TaskState === "string" ? task.TaskState : undefined;
      if (state === undefined) {
        if (res.status === 202) continue;
        return; // the monitor returned the action's own response: done
      }
      if (TASK_OK.has(state)) return;
      if (TASK_FAILED.has(state)) {
        throw new BmcError("bmc-error", `${what}: the BMC's task ended ${state}`, bmcMessages(task));
      }
    }
  }
}

/** Throws a BmcHttpError (with the BMC's messages) for a non-2xx answer; returns the body. */
export function check(res: RedfishResponse, method: string, path: string): unknown {
  if (res.status >= 200 && res.status < 300) return res.body;
  const messages = bmcMessages(res.body);
  const first = messages[0] ? `: ${messages[0]}` : "";
  if (res.status === 401) {
    throw Object.assign(
      new BmcError("auth", `${method} ${path}: the BMC refused the credentials (HTTP 401)${first}`, messages),
      {
        status: 401,
      },
    );
  }
  throw new BmcHttpError(res.status, `${method} ${path}: the BMC answered ${res.status}${first}`, messages);
}

function expectObject(body: unknown, method: string, path: string): Json {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new BmcError("bad-response", `${method} ${path}: the BMC's answer is not a JSON object`);
  }
  return body as Json;
}

function etagOf(res: RedfishResponse, body: Json): string | undefined {
  const header = res.headers.etag;
  if (header) return header;
  return typeof body["@odata.etag"] === "string" ? body["@odata.etag"] : undefined;
}
