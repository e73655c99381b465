import { createHash, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { SelfSigned } from "./certificate.js";
import type { PowerBackend } from "./power.js";

/**
 * One emulated BMC: a small DMTF Redfish service over HTTPS (a dev tool for tests and the
 * demo, never part of the appliance). It serves the ServiceRoot, SessionService sessions
 * (X-Auth-Token) and Basic auth, a Systems collection with one ComputerSystem, PATCH of the
 * boot override with ETag/If-Match, and ComputerSystem.Reset with its AllowableValues.
 * Each BMC listens on its own port, so a client's base URL is `https://host:port` as on a
 * real server. Power goes to a PowerBackend (memory, or a qemu VM over QMP).
 */
export interface EmulatedBmcOptions {
  name: string;
  username: string;
  password: string;
  power: PowerBackend;
  systemId?: string;
  /** Vendor behaviours the emulator can show. */
  quirks?: {
    /** false: `BootSourceOverrideEnabled: Once` is refused (400 PropertyValueNotInList), like some older BMCs. */
    onceAllowed?: boolean;
    /** true: PATCH without If-Match answers 428 (HPE iLO, Lenovo XCC behaviour). */
    requireIfMatch?: boolean;
    /** ResetType values offered (default: On, ForceOff, GracefulShutdown, GracefulRestart, ForceRestart, PowerCycle). */
    resetTypes?: string[];
  };
}

export interface RecordedRequest {
  method: string;
  path: string;
  status: number;
  auth: "session" | "basic" | "none";
}

type Override = { target: string; enabled: "Disabled" | "Once" | "Continuous"; mode: "UEFI" | "Legacy" };

const TARGETS = ["None", "Pxe", "Hdd", "Cd", "Usb", "BiosSetup", "UefiShell"];
const DEFAULT_RESETS = ["On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "PowerCycle"];
const BODY_LIMIT = 64 * 1024;
const MAX_SESSIONS = 32;
const MAX_RECORDED = 2000;

export class EmulatedBmc {
  readonly name: string;
  readonly systemId: string;
  readonly uuid = randomUUID();
  readonly requests: RecordedRequest[] = [];
  override: Override = { target: "None", enabled: "Disabled", mode: "UEFI" };
  readonly #options: EmulatedBmcOptions;
  readonly #sessions = new Map<string, { id: string; user: string }>();
  #sessionSeq = 0;
  #server: Server | undefined;

  constructor(options: EmulatedBmcOptions) {
    this.#options = options;
    this.name = options.name;
    this.systemId = options.systemId ?? "1";
  }

  get power(): PowerBackend {
    return this.#options.power;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Listens on host:port (0: any free port) and resolves to the port. */
  async listen(tls: SelfSigned, host = "127.0.0.1", port = 0): Promise<number> {
    const server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent)
          this.#error(req, res, 500, "InternalError", err instanceof Error ? err.message : String(err));
        else res.destroy();
      });
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    this.#server = server;
    return (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await this.#options.power.close();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "https://bmc");
    // Vendors differ on trailing slashes; accept both (the root is served at both spellings).
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, "") : url.pathname;
    const method = req.method ?? "GET";
    const sys = `/redfish/v1/Systems/${this.systemId}`;
    const auth = this.#authenticate(req);
    const record = (status: number) => {
      if (this.requests.length >= MAX_RECORDED) this.requests.shift();
      this.requests.push({ method, path, status, auth: auth ?? "none" });
    };
    res.on("finish", () => record(res.statusCode));

    if (path === "/redfish" && method === "GET") return this.#json(res, 200, { v1: "/redfish/v1/" });
    if (path === "/redfish/v1" && method === "GET") return this.#json(res, 200, this.#serviceRoot());
    if (path === "/redfish/v1/SessionService/Sessions" && method === "POST") return this.#login(req, res);
    if (!path.startsWith("/redfish/v1"))
      return this.#error(req, res, 404, "ResourceMissingAtURI", `no resource at ${path}`);
    if (!auth) {
      res.setHeader("WWW-Authenticate", 'Basic realm="metalman-bmc-emulator"');
      return this.#error(req, res, 401, "NoValidSession", "authentication required");
    }
    const sessionMatch = path.match(/^\/redfish\/v1\/SessionService\/Sessions\/([^/]+)$/);
    switch (true) {
      case path === "/redfish/v1/SessionService" && method === "GET":
        return this.#json(res, 200, {
          "@odata.id": "/redfish/v1/SessionService",
          "@odata.type": "#SessionService.v1_1_8.SessionService",
          Id: "SessionService",
          Name: "Session Service",
          ServiceEnabled: true,
          SessionTimeout: 1800,
          Sessions: { "@odata.id": "/redfish/v1/SessionService/Sessions" },
        });
      case path === "/redfish/v1/SessionService/Sessions" && method === "GET":
        return this.#json(
          res,
          200,
          collection(
            "/redfish/v1/SessionService/Sessions",
            "#SessionCollection.SessionCollection",
            "Sessions",
            [...this.#sessions.values()].map((s) => `/redfish/v1/SessionService/Sessions/${s.id}`),
          ),
        );
      case sessionMatch !== null && method === "GET": {
        const session = [...this.#sessions.values()].find((s) => s.id === sessionMatch![1]);
        if (!session) return this.#error(req, res, 404, "ResourceMissingAtURI", "no such session");
        return this.#json(res, 200, sessionBody(session));
      }
      case sessionMatch !== null && method === "DELETE": {
        for (const [token, s] of this.#sessions) if (s.id === sessionMatch![1]) this.#sessions.delete(token);
        res.writeHead(204).end();
        return;
      }
      case path === "/redfish/v1/Systems" && method === "GET":
        return this.#json(
          res,
          200,
          collection(
            "/redfish/v1/Systems",
            "#ComputerSystemCollection.ComputerSystemCollection",
            "Computer System Collection",
            [sys],
          ),
        );
      case path === sys && method === "GET": {
        const body = this.#system();
        res.setHeader("ETag", etagOf(body));
        return this.#json(res, 200, { ...body, "@odata.etag": etagOf(body) });
      }
      case path === sys && method === "PATCH":
        return this.#patch(req, res);
      case path === `${sys}/Actions/ComputerSystem.Reset` && method === "POST":
        return this.#reset(req, res);
      case path === `${sys}/ResetActionInfo` && method === "GET":
        return this.#json(res, 200, {
          "@odata.id": `${sys}/ResetActionInfo`,
          "@odata.type": "#ActionInfo.v1_1_2.ActionInfo",
          Id: "ResetActionInfo",
          Name: "Reset Action Info",
          Parameters: [{ Name: "ResetType", Required: true, DataType: "String", AllowableValues: this.#resetTypes() }],
        });
      case path === "/redfish/v1/SessionService" ||
        path === "/redfish/v1/SessionService/Sessions" ||
        path === sys ||
        path === "/redfish/v1/Systems":
        res.setHeader("Allow", path === sys ? "GET, PATCH" : "GET");
        return this.#error(req, res, 405, "ActionNotSupported", `${method} is not allowed on ${path}`);
      default:
        return this.#error(req, res, 404, "ResourceMissingAtURI", `no resource at ${path}`);
    }
  }

  #serviceRoot(): Record<string, unknown> {
    return {
      "@odata.id": "/redfish/v1",
      "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
      Id: "RootService",
      Name: `metalman BMC emulator (${this.name})`,
      RedfishVersion: "1.6.0",
      UUID: this.uuid,
      Vendor: "metalman-emulator",
      Systems: { "@odata.id": "/redfish/v1/Systems" },
      SessionService: { "@odata.id": "/redfish/v1/SessionService" },
      Links: { Sessions: { "@odata.id": "/redfish/v1/SessionService/Sessions" } },
    };
  }

  #system(): Record<string, unknown> {
    const sys = `/redfish/v1/Systems/${this.systemId}`;
    const enabledValues =
      this.#options.quirks?.onceAllowed === false ? ["Disabled", "Continuous"] : ["Disabled", "Once", "Continuous"];
    return {
      "@odata.id": sys,
      "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
      Id: this.systemId,
      Name: this.name,
      SystemType: "Physical",
      Manufacturer: "metalman",
      Model: "emulated",
      UUID: this.uuid,
      PowerState: this.#options.power.state(),
      Boot: {
        BootSourceOverrideTarget: this.override.target,
        BootSourceOverrideEnabled: this.override.enabled,
        BootSourceOverrideMode: this.override.mode,
        "BootSourceOverrideTarget@Redfish.AllowableValues": TARGETS,
        "BootSourceOverrideEnabled@Redfish.AllowableValues": enabledValues,
        "BootSourceOverrideMode@Redfish.AllowableValues": ["UEFI", "Legacy"],
      },
      Actions: {
        "#ComputerSystem.Reset": {
          target: `${sys}/Actions/ComputerSystem.Reset`,
          "ResetType@Redfish.AllowableValues": this.#resetTypes(),
          "@Redfish.ActionInfo": `${sys}/ResetActionInfo`,
        },
      },
    };
  }

  #resetTypes(): string[] {
    return this.#options.quirks?.resetTypes ?? DEFAULT_RESETS;
  }

  async #login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await this.#body(req, res);
    if (body === undefined) return;
    const user = typeof body.UserName === "string" ? body.UserName : "";
    const pass = typeof body.Password === "string" ? body.Password : "";
    if (!this.#credentialsMatch(user, pass)) return this.#error(req, res, 401, "NoValidSession", "invalid credentials");
    if (this.#sessions.size >= MAX_SESSIONS)
      return this.#error(req, res, 503, "SessionLimitExceeded", "the session limit was reached");
    const token = randomBytes(24).toString("hex");
    const session = { id: String(++this.#sessionSeq), user };
    this.#sessions.set(token, session);
    res.setHeader("X-Auth-Token", token);
    res.setHeader("Location", `/redfish/v1/SessionService/Sessions/${session.id}`);
    return this.#json(res, 201, sessionBody(session));
  }

  async #patch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const current = etagOf(this.#system());
    const ifMatch = req.headers["if-match"];
    if (ifMatch === undefined && this.#options.quirks?.requireIfMatch) {
      return this.#error(req, res, 428, "PreconditionRequired", "an If-Match header is required");
    }
    if (
      ifMatch !== undefined &&
      ifMatch !== "*" &&
      !ifMatch
        .split(",")
        .map((s) => s.trim())
        .includes(current)
    ) {
      return this.#error(req, res, 412, "PreconditionFailed", `ETag ${ifMatch} does not match ${current}`);
    }
    const body = await this.#body(req, res);
    if (body === undefined) return;
    const boot = body.Boot as Record<string, unknown> | undefined;
    const keys = Object.keys(body);
    if (!boot || typeof boot !== "object" || keys.some((k) => k !== "Boot")) {
      return this.#error(
        req,
        res,
        400,
        "PropertyNotWritable",
        "only Boot is writable here",
        keys.filter((k) => k !== "Boot"),
      );
    }
    const next: Override = { ...this.override };
    const enabledValues =
      this.#options.quirks?.onceAllowed === false ? ["Disabled", "Continuous"] : ["Disabled", "Once", "Continuous"];
    for (const [key, value] of Object.entries(boot)) {
      const allowed =
        key === "BootSourceOverrideTarget"
          ? TARGETS
          : key === "BootSourceOverrideEnabled"
            ? enabledValues
            : key === "BootSourceOverrideMode"
              ? ["UEFI", "Legacy"]
              : undefined;
      if (!allowed) return this.#error(req, res, 400, "PropertyNotWritable", `Boot/${key} is not writable`, [key]);
      if (typeof value !== "string" || !allowed.includes(value)) {
        return this.#error(
          req,
          res,
          400,
          "PropertyValueNotInList",
          `${String(value)} is not an allowed value of ${key}`,
          [String(value), key],
        );
      }
      if (key === "BootSourceOverrideTarget") next.target = value;
      if (key === "BootSourceOverrideEnabled") next.enabled = value as Override["enabled"];
      if (key === "BootSourceOverrideMode") next.mode = value as Override["mode"];
    }
    this.override = next;
    res.writeHead(204, { ETag: etagOf(this.#system()) }).end();
  }

  async #reset(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await this.#body(req, res);
    if (body === undefined) return;
    const type = body.ResetType;
    if (typeof type !== "string" || !this.#resetTypes().includes(type)) {
      return this.#error(req, res, 400, "ActionParameterNotSupported", `ResetType ${String(type)} is not supported`, [
        String(type),
        "ResetType",
      ]);
    }
    const power = this.#options.power;
    const on = power.state() === "On" || power.state() === "PoweringOn";
    switch (type) {
      case "On":
      case "ForceOn":
        if (!on) await power.on(this.#consumeBoot());
        break;
      case "ForceOff":
        await power.forceOff();
        break;
      case "GracefulShutdown":
        await power.gracefulShutdown();
        break;
      case "ForceRestart":
      case "GracefulRestart":
        if (on) await power.restart(this.#consumeBoot());
        else await power.on(this.#consumeBoot());
        break;
      case "PowerCycle":
        if (on) await power.forceOff();
        await power.on(this.#consumeBoot());
        break;
      default:
        return this.#error(req, res, 400, "ActionParameterNotSupported", `ResetType ${type} is not supported`);
    }
    res.writeHead(204).end();
  }

  /** Whether this start boots from the network; a Once override is used up by it (DMTF semantics). */
  #consumeBoot(): boolean {
    const pxe = this.override.enabled !== "Disabled" && this.override.target === "Pxe";
    if (this.override.enabled === "Once") this.override = { ...this.override, enabled: "Disabled" };
    return pxe;
  }

  #authenticate(req: IncomingMessage): "session" | "basic" | undefined {
    const token = req.headers["x-auth-token"];
    if (typeof token === "string" && this.#sessions.has(token)) return "session";
    const header = req.headers.authorization;
    if (header?.startsWith("Basic ")) {
      const decoded = Buffer.from(header.slice(6), "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon >= 0 && this.#credentialsMatch(decoded.slice(0, colon), decoded.slice(colon + 1))) return "basic";
    }
    return undefined;
  }

  #credentialsMatch(user: string, pass: string): boolean {
    return safeEqual(user, this.#options.username) && safeEqual(pass, this.#options.password);
  }

  async #body(req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown> | undefined> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > BODY_LIMIT) {
        this.#error(req, res, 413, "GeneralError", "request body too large");
        return undefined;
      }
      chunks.push(chunk);
    }
    try {
      const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      return parsed as Record<string, unknown>;
    } catch {
      this.#error(req, res, 400, "MalformedJSON", "the request body is not a JSON object");
      return undefined;
    }
  }

  #json(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      "Content-Type": "application/json; charset=utf-8",
      "OData-Version": "4.0",
      "Content-Length": Buffer.byteLength(text),
    });
    res.end(text);
  }

  #error(
    _req: IncomingMessage,
    res: ServerResponse,
    status: number,
    id: string,
    message: string,
    args: string[] = [],
  ): void {
    this.#json(res, status, {
      error: {
        code: "Base.1.8.GeneralError",
        message,
        "@Message.ExtendedInfo": [
          {
            MessageId: `Base.1.8.${id}`,
            Message: message,
            MessageArgs: args,
            Severity: "Warning",
            Resolution: "See the emulator's documentation (docs/bmc-flows.md).",
          },
        ],
      },
    });
  }
}

function collection(id: string, type: string, name: string, members: string[]): Record<string, unknown> {
  return {
    "@odata.id": id,
    "@odata.type": type,
    Name: name,
    Members: members.map((m) => ({ "@odata.id": m })),
    "Members@odata.count": members.length,
  };
}

function sessionBody(session: { id: string; user: string }): Record<string, unknown> {
  return {
    "@odata.id": `/redfish/v1/SessionService/Sessions/${session.id}`,
    "@odata.type": "#Session.v1_3_0.Session",
    Id: session.id,
    Name: "User Session",
    UserName: session.user,
  };
}

/** A weak ETag over the representation: it changes whenever the power state or the override does. */
function etagOf(body: Record<string, unknown>): string {
  return `W/"${createHash("sha256").update(JSON.stringify(body)).digest("hex").slice(0, 16)}"`;
}

function safeEqual(a: string, b: string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}
