import { Ajv } from "ajv";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import type { BootEventBus } from "../events/boot-events.js";
import type { ImageCatalog } from "../images/image-catalog.js";
import type { DiscoveryStore, MachineBackend } from "../inventory/backend.js";
import type { InventoryWriter } from "../inventory/inventory-writer.js";
import { MachineActions } from "./actions.js";
import type { Actor, Identify } from "./actor.js";
import { allEventsPlugin } from "./all-events.js";
import { type ApplianceInfo, type ApplianceUpgrades, appliancePlugin } from "./appliance.js";
import { discoveredPlugin } from "./discovered.js";
import { installApiErrorHandler, sendApiError } from "./errors.js";
import { imagesPlugin } from "./images.js";
import { machineActionsPlugin } from "./machine-actions.js";
import { machineEditPlugin } from "./machine-edit.js";
import { machineEventsPlugin } from "./machine-events.js";
import { machinesPlugin } from "./machines.js";
import { operationsPlugin } from "./operations.js";

export const API_PREFIX = "/api/v1";

/** A request body is JSON of at most this many bytes (an operation is a few hundred). */
export const API_BODY_LIMIT = 64 * 1024;

export interface ManagementApiOptions {
  backend: MachineBackend;
  events: BootEventBus;
  /**
   * Who is calling. The unix socket uses `unixSocketIdentity` (the socket's 0600 mode is the
   * authentication); the console's HTTPS listener plugs its own authentication in here.
   */
  identify: Identify;
  now?: () => Date;
  /** Open event streams (SSE) at most (default 64); the next one is refused with 503. */
  maxStreams?: number;
  /** Bytes an SSE client may leave unread before it is dropped (default 256 KiB; it reconnects with its last seq). */
  streamBufferBytes?: number;
  /** Interval of the SSE keep-alive comment (default 15 s). */
  heartbeatMs?: number;
  /** OCI images (issue 7): the images surface is served when given. */
  images?: ImageCatalog;
  /**
   * More surfaces registered inside this context (same validator, parser, error and not-found
   * handlers, same `identify`): the console adds its session, user and audit routes this way.
   */
  extensions?: Array<FastifyPluginAsync<SurfaceOptions>>;
  /** Writes Machines (standalone: the inventory folder's YAML); absent: machine writes answer READ_ONLY_INVENTORY. */
  writer?: InventoryWriter;
  /** Unknown MACs seen by DHCP (`GET /discovered`, enroll). */
  discovery?: DiscoveryStore;
  /** Facts for `GET /appliance`. */
  appliance?: () => ApplianceInfo;
  /** The appliance image's upgrade spool (`GET/POST /appliance/upgrade`). */
  upgrades?: ApplianceUpgrades;
}

/** What every surface plugin receives. */
export interface SurfaceOptions {
  backend: MachineBackend;
  events: BootEventBus;
  actions: MachineActions;
  actor: (request: FastifyRequest) => Promise<Actor>;
}

declare module "fastify" {
  interface FastifyRequest {
    /** The caller, resolved by `identify` before anything else (onRequest). */
    metalmanActor?: Actor;
  }
}

/**
 * The management API (docs/management-api.md): one encapsulated plugin per surface (machines,
 * machine events, machine actions, operations) behind one prefix. Everything it needs is in
 * this encapsulation context (validator, body parser, error and not-found handlers), so it can
 * be registered on any Fastify instance: the unix-socket instance today (server/api/app.ts), the
 * console's authenticated HTTPS listener later, with its own `identify`.
 *
 * Register it with a prefix: `app.register(managementApiPlugin, { prefix: API_PREFIX, ... })`.
 */
export const managementApiPlugin: FastifyPluginAsync<ManagementApiOptions> = async (app, options) => {
  // Our own Ajv: additional properties are an error, never silently removed (Fastify's default
  // removes them); query strings and params are coerced from strings, bodies are not.
  const strict = new Ajv({ allErrors: true, removeAdditional: false, useDefaults: true, strict: true });
  const coercing = new Ajv({
    allErrors: true,
    removeAdditional: false,
    useDefaults: true,
    coerceTypes: true,
    strict: true,
  });
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === "body" ? strict : coercing).compile(schema as object),
  );

  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "string", bodyLimit: API_BODY_LIMIT }, (_req, body, done) => {
    const text = typeof body === "string" ? body : body.toString("utf8");
    if (text.trim() === "") return done(null, {});
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      const error = err as Error & { statusCode?: number };
      error.statusCode = 400;
      error.message = `body is not JSON: ${error.message}`;
      done(error, undefined);
    }
  });
  // An action without a body is an action without options.
  app.addHook("preValidation", async (request) => {
    if (request.body === undefined && (request.method === "POST" || request.method === "PUT")) request.body = {};
  });
  app.addHook("onSend", async (_request, reply, payload) => {
    reply.header("cache-control", "no-store");
    return payload;
  });

  installApiErrorHandler(app);
  // Authentication first: a caller that cannot be identified learns nothing, not even a 404.
  app.decorateRequest("metalmanActor", undefined);
  app.addHook("onRequest", async (request) => {
    request.metalmanActor = await options.identify(request);
  });
  const routes: Array<{ pattern: RegExp; methods: Set<string> }> = [];
  app.addHook("onRoute", (route) => {
    const source = `^${route.url.replace(/:[^/]+/g, "[^/]+").replace(/\/$/, "")}/?$`;
    let entry = routes.find((r) => r.pattern.source === source);
    if (!entry) {
      entry = { pattern: new RegExp(source), methods: new Set() };
      routes.push(entry);
    }
    for (const method of [route.method].flat()) entry.methods.add(method);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?", 1)[0] ?? "/";
    const entry = routes.find((r) => r.pattern.test(path));
    if (entry && !entry.methods.has(request.method)) {
      const allow = [...entry.methods].sort().join(", ");
      reply.header("allow", allow);
      return sendApiError(reply, "METHOD_NOT_ALLOWED", `${request.method} ${path}; allowed: ${allow}`);
    }
    return sendApiError(reply, "NOT_FOUND", `${request.method} ${path}`);
  });

  const surface: SurfaceOptions = {
    backend: options.backend,
    events: options.events,
    actions: new MachineActions(options.backend, options.events, options.now),
    actor: async (request) => request.metalmanActor ?? options.identify(request),
  };
  await app.register(machinesPlugin, surface);
  const streams = {
    ...surface,
    maxStreams: options.maxStreams ?? 64,
    bufferBytes: options.streamBufferBytes ?? 256 * 1024,
    heartbeatMs: options.heartbeatMs ?? 15_000,
  };
  await app.register(machineEventsPlugin, streams);
  await app.register(allEventsPlugin, streams);
  await app.register(machineActionsPlugin, surface);
  await app.register(machineEditPlugin, { ...surface, writer: options.writer });
  await app.register(discoveredPlugin, { ...surface, writer: options.writer, discovery: options.discovery });
  await app.register(appliancePlugin, { ...surface, appliance: options.appliance, upgrades: options.upgrades });
  await app.register(operationsPlugin, surface);
  if (options.images) await app.register(imagesPlugin, { ...surface, images: options.images }); // issue 7
  for (const extension of options.extensions ?? []) await app.register(extension, surface);
};
