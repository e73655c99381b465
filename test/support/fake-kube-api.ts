/**
 * A fake Kubernetes API server for the cluster-sync tests (no kube-apiserver runs here). It
 * speaks the parts of the real protocol the appliance and kubectl use: discovery (/api, /apis,
 * /version), list and watch with resourceVersions, bookmarks and 410 Gone after compaction,
 * label and field selectors, create/update/merge-patch/delete with optimistic concurrency
 * (409), status subresources, Leases, Events, Secrets, ConfigMaps and TokenRequest. It is kept
 * honest by the tests that drive it with the real kubectl (test/cluster/kubectl-fake-api.test.ts).
 * Plain HTTP on loopback; every object is JSON.
 */
import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

interface ResourceDef {
  group: string;
  version: string;
  resource: string;
  kind: string;
  singular: string;
  namespaced: boolean;
  shortNames?: string[];
  /** `status`: a status subresource (main writes keep status, /status writes keep the rest). */
  subresources?: string[];
  /** Custom resources take merge patches only (kubectl's strategic patch is refused, 415). */
  custom?: boolean;
}

const R = (d: ResourceDef) => d;
export const FAKE_RESOURCES: ResourceDef[] = [
  R({
    group: "",
    version: "v1",
    resource: "namespaces",
    kind: "Namespace",
    singular: "namespace",
    namespaced: false,
    shortNames: ["ns"],
  }),
  R({ group: "", version: "v1", resource: "secrets", kind: "Secret", singular: "secret", namespaced: true }),
  R({
    group: "",
    version: "v1",
    resource: "configmaps",
    kind: "ConfigMap",
    singular: "configmap",
    namespaced: true,
    shortNames: ["cm"],
  }),
  R({
    group: "",
    version: "v1",
    resource: "services",
    kind: "Service",
    singular: "service",
    namespaced: true,
    shortNames: ["svc"],
  }),
  R({
    group: "",
    version: "v1",
    resource: "events",
    kind: "Event",
    singular: "event",
    namespaced: true,
    shortNames: ["ev"],
  }),
  R({
    group: "",
    version: "v1",
    resource: "nodes",
    kind: "Node",
    singular: "node",
    namespaced: false,
    shortNames: ["no"],
    subresources: ["status"],
  }),
  R({
    group: "",
    version: "v1",
    resource: "serviceaccounts",
    kind: "ServiceAccount",
    singular: "serviceaccount",
    namespaced: true,
    shortNames: ["sa"],
    subresources: ["token"],
  }),
  R({
    group: "coordination.k8s.io",
    version: "v1",
    resource: "leases",
    kind: "Lease",
    singular: "lease",
    namespaced: true,
  }),
  R({
    group: "apps",
    version: "v1",
    resource: "deployments",
    kind: "Deployment",
    singular: "deployment",
    namespaced: true,
    shortNames: ["deploy"],
    subresources: ["status"],
  }),
  R({
    group: "rbac.authorization.k8s.io",
    version: "v1",
    resource: "roles",
    kind: "Role",
    singular: "role",
    namespaced: true,
  }),
  R({
    group: "rbac.authorization.k8s.io",
    version: "v1",
    resource: "rolebindings",
    kind: "RoleBinding",
    singular: "rolebinding",
    namespaced: true,
  }),
  R({
    group: "rbac.authorization.k8s.io",
    version: "v1",
    resource: "clusterroles",
    kind: "ClusterRole",
    singular: "clusterrole",
    namespaced: false,
  }),
  R({
    group: "rbac.authorization.k8s.io",
    version: "v1",
    resource: "clusterrolebindings",
    kind: "ClusterRoleBinding",
    singular: "clusterrolebinding",
    namespaced: false,
  }),
  R({
    group: "apiextensions.k8s.io",
    version: "v1",
    resource: "customresourcedefinitions",
    kind: "CustomResourceDefinition",
    singular: "customresourcedefinition",
    namespaced: false,
    shortNames: ["crd", "crds"],
    subresources: ["status"],
  }),
  // unbounded-net's resources the overlay reads (spec §2.8; all cluster-scoped).
  ...(
    [
      ["sites", "Site", "site", "st", false],
      ["gatewaypools", "GatewayPool", "gatewaypool", "gp", true],
      ["sitegatewaypoolassignments", "SiteGatewayPoolAssignment", "sitegatewaypoolassignment", "sgpa", false],
      ["sitepeerings", "SitePeering", "sitepeering", "spr", false],
    ] as const
  ).map(([resource, kind, singular, short, status]) =>
    R({
      group: "net.unbounded-cloud.io",
      version: "v1alpha1",
      resource,
      kind,
      singular,
      namespaced: false,
      shortNames: [short],
      ...(status ? { subresources: ["status"] } : {}),
      custom: true,
    }),
  ),
  R({
    group: "unbounded-cloud.io",
    version: "v1alpha3",
    resource: "machines",
    kind: "Machine",
    singular: "machine",
    namespaced: false,
    shortNames: ["mach"],
    subresources: ["status"],
    custom: true,
  }),
  R({
    group: "unbounded-cloud.io",
    version: "v1alpha3",
    resource: "machineoperations",
    kind: "MachineOperation",
    singular: "machineoperation",
    namespaced: false,
    shortNames: ["mop"],
    subresources: ["status"],
    custom: true,
  }),
];

// biome-ignore lint/suspicious/noExplicitAny: arbitrary JSON objects, as the API server stores them
type Obj = Record<string, any> & { metadata: Record<string, any> };

interface Watcher {
  def: ResourceDef;
  namespace?: string;
  matches: (o: Obj) => boolean;
  res: http.ServerResponse;
  timers: NodeJS.Timeout[];
}

interface Change {
  rv: number;
  def: ResourceDef;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: Obj;
}

export interface RecordedRequest {
  method: string;
  path: string;
  contentType?: string;
  userAgent?: string;
}

export interface FakeKubeApiOptions {
  port?: number;
  /** BOOKMARK interval on watches that allow them (default 500 ms). */
  bookmarkMs?: number;
  /** `gitVersion` of /version (default v1.30.2). */
  gitVersion?: string;
}

export class FakeKubeApi {
  #server: http.Server | undefined;
  #port = 0;
  readonly #opts: FakeKubeApiOptions;
  readonly #store = new Map<string, Obj>();
  #rv = 100;
  /** Changes at or below this version are compacted away: a watch from there gets 410. */
  #floor = 100;
  readonly #log: Change[] = [];
  readonly #watchers = new Set<Watcher>();
  readonly #sockets = new Set<import("node:net").Socket>();
  /** PUT/PATCH of `<resource>/<name>/status` to answer 409 before touching anything. */
  readonly #conflicts = new Map<string, number>();
  readonly requests: RecordedRequest[] = [];
  readonly tokens: Array<{ namespace: string; serviceAccount: string; token: string; expirationSeconds: number }> = [];

  constructor(options: FakeKubeApiOptions = {}) {
    this.#opts = options;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  get resourceVersion(): string {
    return String(this.#rv);
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.#status(res, 500, "InternalError", String(err));
      });
    });
    server.on("connection", (s) => {
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#port || this.#opts.port || 0, "127.0.0.1", () => resolve());
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** The API goes away (connections cut, port closed); `start()` brings it back on the same port with the same data. */
  async stop(): Promise<void> {
    this.dropWatches();
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Ends every open watch stream (a load balancer idle cut). */
  dropWatches(): void {
    for (const w of this.#watchers) this.#endWatch(w);
  }

  /** Forgets the change history: a watch from any older version is answered with 410 Gone. */
  compact(): void {
    this.#floor = this.#rv;
    this.#log.length = 0;
  }

  /** The next `count` status writes of `<resource>/<name>` answer 409 Conflict (another writer). */
  injectStatusConflicts(resource: string, name: string, count: number): void {
    this.#conflicts.set(`${resource}/${name}`, count);
  }

  get(resource: string, name: string, namespace?: string): Obj | undefined {
    const def = this.#def(resource);
    const o = this.#store.get(this.#key(def, namespace, name));
    return o ? structuredClone(o) : undefined;
  }

  list(resource: string, namespace?: string): Obj[] {
    const def = this.#def(resource);
    return [...this.#store.values()]
      .filter((o) => this.#keyDef(o) === def && (namespace === undefined || o.metadata.namespace === namespace))
      .map((o) => structuredClone(o));
  }

  /** Creates or replaces an object directly (test setup; status included). */
  put(resource: string, object: Obj): Obj {
    const def = this.#def(resource);
    const ns = def.namespaced ? (object.metadata.namespace ?? "default") : undefined;
    const key = this.#key(def, ns, object.metadata.name);
    const old = this.#store.get(key);
    const stored = this.#stamp(def, structuredClone(object), old, ns);
    if (old && !specEqual(old, stored)) stored.metadata.generation = (old.metadata.generation ?? 1) + 1;
    this.#commit(def, key, old ? "MODIFIED" : "ADDED", stored);
    return structuredClone(stored);
  }

  remove(resource: string, name: string, namespace?: string): boolean {
    const def = this.#def(resource);
    const key = this.#key(def, namespace, name);
    const old = this.#store.get(key);
    if (!old) return false;
    this.#commitDelete(def, key, old);
    return true;
  }

  #def(resource: string): ResourceDef {
    const def = FAKE_RESOURCES.find((d) => d.resource === resource);
    if (!def) throw new Error(`fake API: unknown resource ${resource}`);
    return def;
  }

  #key(def: ResourceDef, ns: string | undefined, name: string): string {
    return `${def.group}/${def.resource}/${def.namespaced ? (ns ?? "") : ""}/${name}`;
  }

  #keyDef(o: Obj): ResourceDef | undefined {
    const [group, version] = String(o.apiVersion).includes("/") ? String(o.apiVersion).split("/") : ["", o.apiVersion];
    return FAKE_RESOURCES.find((d) => d.group === group && d.version === version && d.kind === o.kind);
  }

  #stamp(def: ResourceDef, o: Obj, old: Obj | undefined, ns: string | undefined): Obj {
    o.apiVersion = def.group === "" ? def.version : `${def.group}/${def.version}`;
    o.kind = def.kind;
    o.metadata ??= {};
    if (def.namespaced) o.metadata.namespace = ns;
    else delete o.metadata.namespace;
    o.metadata.uid = old?.metadata.uid ?? randomUUID();
    o.metadata.creationTimestamp = old?.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, "Z");
    if (def.custom || def.subresources?.includes("status")) o.metadata.generation = old?.metadata.generation ?? 1;
    return o;
  }

  #commit(def: ResourceDef, key: string, type: "ADDED" | "MODIFIED", o: Obj): void {
    this.#rv++;
    o.metadata.resourceVersion = String(this.#rv);
    this.#store.set(key, o);
    this.#publish({ rv: this.#rv, def, type, object: structuredClone(o) });
  }

  #commitDelete(def: ResourceDef, key: string, old: Obj): Obj {
    this.#rv++;
    this.#store.delete(key);
    const gone = structuredClone(old);
    gone.metadata.resourceVersion = String(this.#rv);
    this.#publish({ rv: this.#rv, def, type: "DELETED", object: gone });
    return gone;
  }

  #publish(change: Change): void {
    this.#log.push(change);
    if (this.#log.length > 10_000) {
      const dropped = this.#log.splice(0, this.#log.length - 10_000);
      this.#floor = dropped.at(-1)!.rv;
    }
    for (const w of this.#watchers) {
      if (w.def !== change.def) continue;
      if (w.namespace !== undefined && change.object.metadata.namespace !== w.namespace) continue;
      if (!w.matches(change.object)) continue;
      w.res.write(`${JSON.stringify({ type: change.type, object: change.object })}\n`);
    }
  }

  #endWatch(w: Watcher): void {
    for (const t of w.timers) clearTimeout(t);
    this.#watchers.delete(w);
    w.res.end();
  }

  #status(res: http.ServerResponse, code: number, reason: string, message: string, details?: object): void {
    this.#json(res, code, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      reason,
      details,
      code,
    });
  }

  #json(res: http.ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
    res.end(text);
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const method = req.method ?? "GET";
    this.requests.push({
      method,
      path: url.pathname + url.search,
      contentType: req.headers["content-type"],
      userAgent: req.headers["user-agent"],
    });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    // biome-ignore lint/suspicious/noExplicitAny: arbitrary JSON objects, as the API server stores them
    let body: any;
    if (raw !== "") {
      try {
        body = JSON.parse(raw);
      } catch {
        return this.#status(res, 400, "BadRequest", "body is not JSON");
      }
    }
    const p = url.pathname.replace(/\/+$/, "");
    if (p === "/version") {
      const git = this.#opts.gitVersion ?? "v1.30.2";
      const [major, minor] = git.replace(/^v/, "").split(".");
      return this.#json(res, 200, { major, minor, gitVersion: git, platform: "linux/amd64", goVersion: "go1.22" });
    }
    if (p === "/api")
      return this.#json(res, 200, {
        kind: "APIVersions",
        versions: ["v1"],
        serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: `127.0.0.1:${this.#port}` }],
      });
    if (p === "/apis") return this.#json(res, 200, this.#groups());
    if (p === "/healthz" || p === "/livez" || p === "/readyz") {
      res.writeHead(200, { "Content-Type": "text/plain" });
      return void res.end("ok");
    }
    const segs = p.split("/").filter(Boolean);
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === "api" && segs.length >= 2) {
      group = "";
      version = segs[1]!;
      rest = segs.slice(2);
    } else if (segs[0] === "apis" && segs.length >= 3) {
      group = segs[1]!;
      version = segs[2]!;
      rest = segs.slice(3);
    } else if (segs[0] === "apis" && segs.length === 2) {
      const g = this.#groups().groups.find((x) => x.name === segs[1]);
      return g
        ? this.#json(res, 200, { kind: "APIGroup", apiVersion: "v1", ...g })
        : this.#status(res, 404, "NotFound", "no such group");
    } else {
      return this.#status(res, 404, "NotFound", `the server could not find the requested resource (${p})`);
    }
    const defs = FAKE_RESOURCES.filter((d) => d.group === group && d.version === version);
    if (defs.length === 0) return this.#status(res, 404, "NotFound", `no group version ${group}/${version}`);
    if (rest.length === 0) return this.#json(res, 200, this.#resourceList(group, version, defs));
    let namespace: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3 && defs.some((d) => d.namespaced && d.resource === rest[2])) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const def = defs.find((d) => d.resource === rest[0]);
    if (!def)
      return this.#status(res, 404, "NotFound", `the server could not find the requested resource (${rest[0]})`);
    const name = rest[1];
    const sub = rest[2];
    if (rest.length > 3 || (sub !== undefined && !def.subresources?.includes(sub))) {
      return this.#status(res, 404, "NotFound", `no subresource ${sub}`);
    }
    if (def.namespaced && name !== undefined && namespace === undefined) {
      return this.#status(res, 404, "NotFound", "namespaced resource needs a namespace");
    }
    const q = url.searchParams;
    const dryRun = q.get("dryRun") === "All";
    if (name === undefined) {
      if (method === "GET" && q.get("watch") === "true") return this.#watch(req, res, def, namespace, q);
      if (method === "GET") return this.#list(res, def, namespace, q);
      if (method === "POST") return this.#create(res, def, namespace ?? body?.metadata?.namespace, body, dryRun);
      return this.#status(res, 405, "MethodNotAllowed", `${method} on a collection`);
    }
    const ns = def.namespaced ? namespace : undefined;
    const key = this.#key(def, ns, name);
    const old = this.#store.get(key);
    if (sub === "token") return this.#tokenRequest(res, ns!, name, old, body);
    if (method === "GET") return old ? this.#json(res, 200, old) : this.#notFound(res, def, name);
    if (method === "DELETE") {
      if (!old) return this.#notFound(res, def, name);
      if (dryRun) return this.#json(res, 200, old);
      return this.#json(res, 200, this.#commitDelete(def, key, old));
    }
    if (method === "PUT" || method === "PATCH") {
      const conflictKey = `${def.resource}/${name}`;
      const pending = this.#conflicts.get(conflictKey) ?? 0;
      if (sub === "status" && pending > 0) {
        this.#conflicts.set(conflictKey, pending - 1);
        // Another writer got there first: its write moves the version on, as a real conflict does.
        if (old) {
          const bumped = structuredClone(old);
          bumped.metadata.annotations = { ...bumped.metadata.annotations, "fake/other-writer": String(pending) };
          this.#commit(def, key, "MODIFIED", bumped);
        }
        return this.#status(
          res,
          409,
          "Conflict",
          `Operation cannot be fulfilled on ${def.resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        );
      }
      if (!old) {
        if (method === "PUT" && sub === undefined) return this.#create(res, def, ns, body, dryRun);
        return this.#notFound(res, def, name);
      }
      let next: Obj;
      if (method === "PUT") {
        if (!body?.metadata) return this.#status(res, 400, "BadRequest", "body needs metadata");
        const expected = body.metadata.resourceVersion;
        if (expected !== undefined && expected !== "" && expected !== old.metadata.resourceVersion) {
          return this.#status(
            res,
            409,
            "Conflict",
            `Operation cannot be fulfilled on ${def.resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
          );
        }
        next = structuredClone(body);
      } else {
        const type = String(req.headers["content-type"] ?? "").split(";")[0];
        if (type === "application/strategic-merge-patch+json" && def.custom) {
          return this.#status(
            res,
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
          );
        }
        if (type === "application/json-patch+json") next = jsonPatch(structuredClone(old), body);
        else if (type === "application/merge-patch+json" || type === "application/strategic-merge-patch+json") {
          next = mergePatch(structuredClone(old), stripDirectives(body)) as Obj;
        } else return this.#status(res, 415, "UnsupportedMediaType", `patch type ${type}`);
        const expected = body?.metadata?.resourceVersion;
        if (expected !== undefined && expected !== old.metadata.resourceVersion) {
          return this.#status(res, 409, "Conflict", "the object has been modified");
        }
      }
      const hasStatus = def.subresources?.includes("status");
      if (sub === "status") {
        const status = next.status;
        next = structuredClone(old);
        if (status === undefined) delete next.status;
        else next.status = status;
      } else if (hasStatus) {
        if (old.status === undefined) delete next.status;
        else next.status = structuredClone(old.status);
      }
      next.metadata.name = name;
      const stored = this.#stamp(def, next, old, ns);
      if (sub !== "status" && !specEqual(old, stored)) stored.metadata.generation = (old.metadata.generation ?? 1) + 1;
      if (dryRun) return this.#json(res, 200, stored);
      if (
        JSON.stringify({ ...old, metadata: { ...old.metadata, resourceVersion: "" } }) ===
        JSON.stringify({ ...stored, metadata: { ...stored.metadata, resourceVersion: "" } })
      ) {
        return this.#json(res, 200, old); // no-op writes do not move the version (as the real server)
      }
      this.#commit(def, key, "MODIFIED", stored);
      return this.#json(res, 200, stored);
    }
    return this.#status(res, 405, "MethodNotAllowed", method);
  }

  #notFound(res: http.ServerResponse, def: ResourceDef, name: string) {
    const gr = def.group === "" ? def.resource : `${def.resource}.${def.group}`;
    this.#status(res, 404, "NotFound", `${gr} "${name}" not found`, { name, group: def.group, kind: def.resource });
  }

  // biome-ignore lint/suspicious/noExplicitAny: arbitrary JSON objects, as the API server stores them
  #create(res: http.ServerResponse, def: ResourceDef, ns: string | undefined, body: any, dryRun: boolean) {
    if (!body?.metadata) return this.#status(res, 400, "BadRequest", "body needs metadata");
    const o: Obj = structuredClone(body);
    if (!o.metadata.name && o.metadata.generateName)
      o.metadata.name = `${o.metadata.generateName}${randomUUID().slice(0, 5)}`;
    if (!o.metadata.name) return this.#status(res, 422, "Invalid", "metadata.name: Required value");
    const namespace = def.namespaced ? (ns ?? o.metadata.namespace ?? "default") : undefined;
    const key = this.#key(def, namespace, o.metadata.name);
    if (this.#store.has(key)) {
      const gr = def.group === "" ? def.resource : `${def.resource}.${def.group}`;
      return this.#status(res, 409, "AlreadyExists", `${gr} "${o.metadata.name}" already exists`);
    }
    if (def.subresources?.includes("status") && def.custom) delete o.status;
    const stored = this.#stamp(def, o, undefined, namespace);
    if (dryRun) return this.#json(res, 201, stored);
    this.#commit(def, key, "ADDED", stored);
    this.#json(res, 201, stored);
  }

  // biome-ignore lint/suspicious/noExplicitAny: arbitrary JSON objects, as the API server stores them
  #tokenRequest(res: http.ServerResponse, ns: string, name: string, sa: Obj | undefined, body: any) {
    if (!sa) return this.#status(res, 404, "NotFound", `serviceaccounts "${name}" not found`);
    const expirationSeconds = Number(body?.spec?.expirationSeconds ?? 3600);
    const payload = Buffer.from(
      JSON.stringify({ sub: `system:serviceaccount:${ns}:${name}`, n: randomUUID() }),
    ).toString("base64url");
    const token = `eyJhbGciOiJSUzI1NiJ9.${payload}.fakesignature`;
    this.tokens.push({ namespace: ns, serviceAccount: name, token, expirationSeconds });
    const expires = new Date(Date.now() + expirationSeconds * 1000).toISOString().replace(/\.\d+Z$/, "Z");
    this.#json(res, 201, {
      kind: "TokenRequest",
      apiVersion: "authentication.k8s.io/v1",
      metadata: { name, namespace: ns, creationTimestamp: null },
      spec: {
        audiences: body?.spec?.audiences ?? ["https://kubernetes.default.svc"],
        expirationSeconds,
        boundObjectRef: null,
      },
      status: { token, expirationTimestamp: expires },
    });
  }

  #list(res: http.ServerResponse, def: ResourceDef, namespace: string | undefined, q: URLSearchParams) {
    const matches = selectorFor(q);
    if (!matches.ok) return this.#status(res, 400, "BadRequest", matches.error);
    const items = [...this.#store.values()]
      .filter(
        (o) =>
          this.#keyDef(o) === def && (namespace === undefined || o.metadata.namespace === namespace) && matches.fn(o),
      )
      .sort(
        (a, b) =>
          String(a.metadata.namespace ?? "").localeCompare(String(b.metadata.namespace ?? "")) ||
          String(a.metadata.name).localeCompare(String(b.metadata.name)),
      );
    this.#json(res, 200, {
      kind: `${def.kind}List`,
      apiVersion: def.group === "" ? def.version : `${def.group}/${def.version}`,
      metadata: { resourceVersion: String(this.#rv) },
      items,
    });
  }

  #watch(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    def: ResourceDef,
    namespace: string | undefined,
    q: URLSearchParams,
  ) {
    const matches = selectorFor(q);
    if (!matches.ok) return this.#status(res, 400, "BadRequest", matches.error);
    const from = q.get("resourceVersion") ?? "";
    res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
    const w: Watcher = { def, namespace, matches: matches.fn, res, timers: [] };
    const inScope = (o: Obj) => (namespace === undefined || o.metadata.namespace === namespace) && matches.fn(o);
    if (from === "" || from === "0") {
      // No version: the current state as ADDED events first (real API semantics).
      for (const o of this.#store.values()) {
        if (this.#keyDef(o) === def && inScope(o)) res.write(`${JSON.stringify({ type: "ADDED", object: o })}\n`);
      }
    } else {
      const rv = Number(from);
      if (!Number.isInteger(rv) || rv < this.#floor) {
        res.end(
          `${JSON.stringify({ type: "ERROR", object: { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: `too old resource version: ${from} (${this.#floor})`, reason: "Expired", code: 410 } })}\n`,
        );
        return;
      }
      for (const c of this.#log) {
        if (c.rv > rv && c.def === def && inScope(c.object))
          res.write(`${JSON.stringify({ type: c.type, object: c.object })}\n`);
      }
    }
    this.#watchers.add(w);
    if (q.get("allowWatchBookmarks") === "true") {
      const tick = () => {
        res.write(
          `${JSON.stringify({ type: "BOOKMARK", object: { kind: def.kind, apiVersion: def.group === "" ? def.version : `${def.group}/${def.version}`, metadata: { resourceVersion: String(this.#rv) } } })}\n`,
        );
        w.timers[0] = setTimeout(tick, this.#opts.bookmarkMs ?? 500);
      };
      w.timers[0] = setTimeout(tick, this.#opts.bookmarkMs ?? 500);
    }
    const timeout = Number(q.get("timeoutSeconds") ?? "0");
    if (timeout > 0) w.timers[1] = setTimeout(() => this.#endWatch(w), timeout * 1000);
    req.on("close", () => {
      for (const t of w.timers) clearTimeout(t);
      this.#watchers.delete(w);
    });
  }

  #groups() {
    const groups = new Map<string, string[]>();
    for (const d of FAKE_RESOURCES) {
      if (d.group === "") continue;
      const vs = groups.get(d.group) ?? [];
      if (!vs.includes(d.version)) vs.push(d.version);
      groups.set(d.group, vs);
    }
    return {
      kind: "APIGroupList",
      apiVersion: "v1",
      groups: [...groups].map(([name, vs]) => ({
        name,
        versions: vs.map((v) => ({ groupVersion: `${name}/${v}`, version: v })),
        preferredVersion: { groupVersion: `${name}/${vs[0]}`, version: vs[0] },
      })),
    };
  }

  #resourceList(group: string, version: string, defs: ResourceDef[]) {
    const verbs = ["create", "delete", "get", "list", "patch", "update", "watch"];
    const resources: object[] = [];
    for (const d of defs) {
      resources.push({
        name: d.resource,
        singularName: d.singular,
        namespaced: d.namespaced,
        kind: d.kind,
        verbs,
        ...(d.shortNames ? { shortNames: d.shortNames } : {}),
      });
      for (const s of d.subresources ?? []) {
        resources.push({
          name: `${d.resource}/${s}`,
          singularName: "",
          namespaced: d.namespaced,
          kind: s === "token" ? "TokenRequest" : d.kind,
          verbs: s === "token" ? ["create"] : ["get", "patch", "update"],
        });
      }
    }
    return {
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: group === "" ? version : `${group}/${version}`,
      resources,
    };
  }
}

function specEqual(a: Obj, b: Obj): boolean {
  const strip = (o: Obj) => {
    const { metadata: _m, status: _s, ...rest } = o;
    return JSON.stringify(rest);
  };
  return strip(a) === strip(b);
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target !== null && typeof target === "object" && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Strategic-merge directives (`$setElementOrder/...`, `$patch`, `$retainKeys`) are dropped: lists are replaced. */
function stripDirectives(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(stripDirectives);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (!k.startsWith("$")) out[k] = stripDirectives(v);
  return out;
}

/** RFC 6902 for add/replace/remove (what kubectl and clients send). */
function jsonPatch(doc: Obj, ops: Array<{ op: string; path: string; value?: unknown }>): Obj {
  for (const { op, path, value } of ops ?? []) {
    const parts = path
      .split("/")
      .slice(1)
      .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
    // biome-ignore lint/suspicious/noExplicitAny: arbitrary JSON objects, as the API server stores them
    let parent: any = doc;
    for (const part of parts.slice(0, -1)) parent = parent?.[part];
    const last = parts.at(-1)!;
    if (parent === undefined || parent === null) continue;
    if (op === "remove") {
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
    } else if (op === "add" && Array.isArray(parent))
      parent.splice(last === "-" ? parent.length : Number(last), 0, value);
    else if (op === "add" || op === "replace") parent[last] = value;
  }
  return doc;
}

type Selector = { ok: true; fn: (o: Obj) => boolean } | { ok: false; error: string };

/** labelSelector (=, ==, !=, in, notin, exists, !exists) and fieldSelector (metadata.name, metadata.namespace). */
function selectorFor(q: URLSearchParams): Selector {
  const tests: Array<(o: Obj) => boolean> = [];
  const label = q.get("labelSelector") ?? "";
  const labels = (o: Obj) => (o.metadata.labels ?? {}) as Record<string, string>;
  for (const term of splitTerms(label)) {
    const set = /^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
    const notEqual = /^([^\s!=]+)\s*!=\s*(\S*)$/.exec(term);
    const equal = /^([^\s!=]+)\s*==?\s*(\S*)$/.exec(term);
    const absent = /^!([^\s!=]+)$/.exec(term);
    const present = /^([^\s!=()]+)$/.exec(term);
    if (set) {
      const [, key, op, vals] = set;
      const values = vals!.split(",").map((v) => v.trim());
      tests.push((o) => values.includes(labels(o)[key!] as string) === (op === "in"));
    } else if (notEqual) {
      const [, key, value] = notEqual;
      tests.push((o) => labels(o)[key!] !== value);
    } else if (equal) {
      const [, key, value] = equal;
      tests.push((o) => labels(o)[key!] === value);
    } else if (absent) {
      const key = absent[1]!;
      tests.push((o) => !(key in labels(o)));
    } else if (present) {
      const key = present[1]!;
      tests.push((o) => key in labels(o));
    } else return { ok: false, error: `unable to parse requirement: ${term}` };
  }
  const field = q.get("fieldSelector") ?? "";
  for (const term of splitTerms(field)) {
    const m = /^(metadata\.name|metadata\.namespace)\s*(==|=|!=)\s*(\S*)$/.exec(term);
    if (!m) return { ok: false, error: `field label not supported: ${term}` };
    const [, path, op, value] = m;
    const get = (o: Obj) => (path === "metadata.name" ? o.metadata.name : o.metadata.namespace);
    tests.push((o) => (op === "!=" ? get(o) !== value : get(o) === value));
  }
  return { ok: true, fn: (o) => tests.every((t) => t(o)) };
}

function splitTerms(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      if (cur.trim()) out.push(cur.trim());
      cur = "";
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}
