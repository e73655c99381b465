import Fastify, { type FastifyInstance, LogController } from "fastify";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { attestPlugin } from "../attest/attest-plugin.js";
import type { AttestSetup } from "../attest/attest-setup.js";
import { createTrustedProxyMatcher } from "../config/trusted-proxy.js";
import type { BootEventBus } from "../events/boot-events.js";
import type { MachineBackend } from "../inventory/backend.js";
import type { ArtifactResolver } from "../netboot/artifact.js";
import { RateLimiter } from "../util/rate-limiter.js";
import { artifactsPlugin } from "./artifacts.js";
import { createClientIdentity } from "./client-identity.js";
import { type ConnectionLimits, DEFAULT_CONNECTION_LIMITS, limitConnections } from "./connection-limits.js";
import { installErrorHandlers } from "./errors.js";
import { healthPlugin, type Readiness } from "./health.js";
import { type HttpMetrics, httpMetrics } from "./http-metrics.js";
import { metricsPlugin } from "./metrics.js";
import { CLOUD_INIT_BODY_LIMIT, pxePlugin } from "./pxe.js";

/** Server timeouts (upstream had none: spec §5.1, §12 item 8). */
export interface HttpTimeouts {
  /** The whole request (headers and body) must arrive within this. */
  requestMs: number;
  /** The request headers must arrive within this (slowloris). */
  headersMs: number;
  /** A socket with no traffic either way is closed after this (a stalled download too). */
  idleMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveMs: number;
}

export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = {
  requestMs: 30_000,
  headersMs: 10_000,
  idleMs: 60_000,
  keepAliveMs: 5_000,
};

export interface NetbootAppOptions {
  log: Logger;
  backend: MachineBackend;
  resolver: ArtifactResolver;
  events: BootEventBus;
  /** Registry exposed at `/metrics`; the HTTP counters are registered in it too. */
  metrics: Registry;
  /** When given, `/readyz` is served on the netboot port as well, naming failing checks without their details. */
  readiness?: Readiness;
  /** CIDRs (or addresses) of reverse proxies whose `X-Forwarded-For` is honoured. Default none. */
  trustedProxies?: readonly string[];
  timeouts?: Partial<HttpTimeouts>;
  now?: () => Date;
  /** File streaming chunk size (default 256 KiB, see artifacts.ts). */
  streamChunkBytes?: number;
  /** File bodies with sendfile(2) when the native addon is built (default true); false forces streams. */
  zeroCopy?: boolean;
  /** Where the sendfile addon is (default: server/native/build/Release). */
  sendfileAddonPath?: string;
  /** Total and per-client-address connection caps (connection-limits.ts); trusted proxies are exempt per client. */
  connectionLimits?: Partial<ConnectionLimits>;
  /** When given, `POST /attest` is served (server/attest, docs/attestation.md). */
  attest?: AttestSetup;
}

export interface HealthAppOptions {
  log: Logger;
  readiness: Readiness;
  /** When given, the health port's requests are counted in it. */
  metrics?: Registry;
  timeouts?: Partial<HttpTimeouts>;
  /** Default: 64 in total, 8 per address (probes are one short request at a time). */
  connectionLimits?: Partial<ConnectionLimits>;
}

const NETBOOT_METHODS: Record<string, string> = {
  "/pxe/disable": "GET, POST",
  "/cloudinit/log": "POST",
  "/attest": "POST",
  "/healthz": "GET, HEAD",
  "/readyz": "GET, HEAD",
  "/metrics": "GET, HEAD",
};

const HEALTH_METHODS: Record<string, string> = { "/healthz": "GET, HEAD", "/readyz": "GET, HEAD" };

const HEALTH_CONNECTION_LIMITS: ConnectionLimits = { maxConnections: 64, perClient: 8 };

function createApp(
  log: Logger,
  component: string,
  timeouts: Partial<HttpTimeouts> | undefined,
  limits: ConnectionLimits,
): FastifyInstance {
  const t = { ...DEFAULT_HTTP_TIMEOUTS, ...timeouts };
  const app = Fastify({
    loggerInstance: log.child({ component }),
    // Per-request access logs would duplicate the BootEvent stream; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: CLOUD_INIT_BODY_LIMIT,
    // Identity is computed by client-identity.ts from the socket peer; Fastify must not rewrite request.ip.
    trustProxy: false,
    requestTimeout: t.requestMs,
    connectionTimeout: t.idleMs,
    keepAliveTimeout: t.keepAliveMs,
    http: { headersTimeout: t.headersMs, requestTimeout: t.requestMs },
    // Deep image paths (e.g. `boot/efi/EFI/ubuntu/grubx64.efi`) are one wildcard parameter.
    routerOptions: { maxParamLength: 4096 },
    return503OnClosing: true,
  });
  // Before any request is parsed: a total cap and one per client address (docs/security.md).
  const refusals = new RateLimiter();
  limitConnections(app.server, limits, (ip, reason) => {
    if (refusals.check(`${reason}|${ip}`).allowed) {
      app.log.warn({ ip, reason, limits }, "connection refused: too many connections");
    }
  });
  return app as unknown as FastifyInstance;
}

function countRequests(app: FastifyInstance, metrics: HttpMetrics): void {
  app.addHook("onResponse", async (request, reply) => {
    // The route pattern, never the raw URL: label cardinality stays bounded.
    const route = request.routeOptions.url ?? "unmatched";
    metrics.requests.inc({ route, status: String(reply.statusCode) });
  });
}

/**
 * The machine-facing netboot HTTP server (spec §5): artifacts catch-all, `/pxe/disable`,
 * `/cloudinit/log`, `/healthz` (+ `/readyz` when a readiness callback is given) and
 * `/metrics`. Not listening yet: the caller calls `listen()` and `close()`.
 */
export function buildNetbootApp(options: NetbootAppOptions): FastifyInstance {
  const isTrustedProxy = createTrustedProxyMatcher(options.trustedProxies ?? []);
  const app = createApp(options.log, "http", options.timeouts, {
    ...DEFAULT_CONNECTION_LIMITS,
    exempt: isTrustedProxy,
    ...options.connectionLimits,
  });
  const metrics = httpMetrics(options.metrics);
  const identify = createClientIdentity(options.trustedProxies ?? []);
  installErrorHandlers(app, { style: "plain", allowedMethods: (path) => NETBOOT_METHODS[path] ?? "GET, HEAD" });
  countRequests(app, metrics);
  // Machines and anyone on the PXE LAN reach this port: no file names or YAML here (docs/security.md).
  app.register(healthPlugin, { readiness: options.readiness, details: false });
  app.register(metricsPlugin, { registry: options.metrics });
  app.register(pxePlugin, {
    backend: options.backend,
    events: options.events,
    identify,
    metrics,
    now: options.now,
  });
  if (options.attest)
    app.register(attestPlugin, {
      ...options.attest,
      backend: options.backend,
      events: options.events,
      log: options.log.child({ component: "attest" }),
      identify,
      metrics,
    });
  app.register(artifactsPlugin, {
    backend: options.backend,
    resolver: options.resolver,
    events: options.events,
    identify,
    metrics,
    streamChunkBytes: options.streamChunkBytes,
    zeroCopy: options.zeroCopy,
    sendfileAddonPath: options.sendfileAddonPath,
    idleMs: { ...DEFAULT_HTTP_TIMEOUTS, ...options.timeouts }.idleMs,
  });
  return app;
}

/** The separate health port (spec §1.1 `--health-port`): `/healthz` and `/readyz` only. */
export function buildHealthApp(options: HealthAppOptions): FastifyInstance {
  const app = createApp(options.log, "health", options.timeouts, {
    ...HEALTH_CONNECTION_LIMITS,
    ...options.connectionLimits,
  });
  installErrorHandlers(app, { style: "plain", allowedMethods: (path) => HEALTH_METHODS[path] });
  if (options.metrics) countRequests(app, httpMetrics(options.metrics));
  app.register(healthPlugin, { readiness: options.readiness, details: true });
  return app;
}

export interface GracefulCloseResult {
  /** Every request in flight ended by itself before the deadline. */
  drained: boolean;
  /** Connections still open at the deadline, destroyed (their downloads truncated). */
  cut: number;
}

/**
 * Graceful stop of one listener: stops accepting at once (the port refuses connections,
 * idle keep-alive sockets close, a new request on a busy one gets 503), lets the requests in
 * flight finish until `deadline` settles, then destroys what is left. A body sent with
 * sendfile(2) or a stream ends when its socket goes, so nothing outlives the cut.
 */
export async function closeGracefully(app: FastifyInstance, deadline: Promise<void>): Promise<GracefulCloseResult> {
  const server = app.server;
  const closed = app.close();
  // A response that ends during the grace leaves its socket idle: close those as they appear.
  const sweeper = setInterval(() => server.closeIdleConnections(), 100);
  sweeper.unref();
  try {
    const drained = await Promise.race([closed.then(() => true), deadline.then(() => false)]);
    if (drained) return { drained, cut: 0 };
    const cut = await new Promise<number>((resolve) => server.getConnections((err, count) => resolve(err ? 0 : count)));
    server.closeAllConnections();
    await closed;
    return { drained, cut };
  } finally {
    clearInterval(sweeper);
  }
}
