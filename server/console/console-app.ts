import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import Fastify, { type FastifyInstance, type FastifyRequest, LogController } from "fastify";
import type { Logger } from "pino";
import type { Actor } from "../api/actor.js";
import { ApiError, installApiErrorHandler, sendApiError } from "../api/errors.js";
import { API_PREFIX, type ManagementApiOptions, managementApiPlugin } from "../api/plugin.js";
import { createClientIdentity } from "../http/client-identity.js";
import { isReadMethod, policyFor } from "./access-policy.js";
import type { AuditInput, AuditLog } from "./audit-log.js";
import { auditRoutes } from "./audit-routes.js";
import type { ConsoleContext, ConsoleRequestState } from "./console-context.js";
import { LoginLimiter, type LoginLimiterOptions } from "./login-limiter.js";
import { sessionRoutes } from "./session-routes.js";
import { csrfMatches, readCookie, SESSION_COOKIE, SessionStore, type SessionStoreOptions } from "./sessions.js";
import { userRoutes } from "./user-routes.js";
import { roleAtLeast, type UserStore } from "./user-store.js";

/** Where `vite build` puts the console (console/ -> dist/console), beside dist/server. */
export const DEFAULT_ASSETS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../console");

export interface ConsoleAppOptions extends Omit<ManagementApiOptions, "identify" | "extensions"> {
  log: Logger;
  users: UserStore;
  audit: AuditLog;
  /** TLS material; absent only in inject() tests. */
  https?: { cert: string; key: string };
  trustedProxies?: readonly string[];
  assetsDir?: string;
  sessions?: SessionStoreOptions;
  loginLimit?: LoginLimiterOptions;
  /** More surfaces inside the API context (the management API's own come first). */
  extensions?: ManagementApiOptions["extensions"];
}

export interface RegisteredRoute {
  method: string;
  url: string;
}

export interface ConsoleApp {
  app: FastifyInstance;
  /** Every route as registered (onRoute), for the test that none is reachable without auth. */
  routes: RegisteredRoute[];
  context: ConsoleContext;
}

const SECURITY_HEADERS: Record<string, string> = {
  // The built console is same-origin scripts and styles only (no CDN, works air-gapped).
  "content-security-policy":
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; " +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
};

/**
 * The console's own Fastify instance (HTTPS; never the netboot listener): the built Svelte app
 * as public static files, and under /api/v1 the management API (server/api/plugin.ts) plus the
 * console's session, user and audit routes, all behind one gate:
 *
 * 1. a session cookie, except for `POST|GET /api/v1/session` (401 UNAUTHENTICATED, even for a
 *    route that does not exist: the unauthenticated learn nothing);
 * 2. `x-csrf-token` equal to the session's token on every non-GET (403 CSRF_FAILED);
 * 3. the role the route needs (access-policy.ts; 403 FORBIDDEN);
 * 4. every state-changing request, allowed or not, is written to the audit log before its
 *    answer goes out.
 */
export function buildConsoleApp(options: ConsoleAppOptions): ConsoleApp {
  const log = options.log.child({ component: "console" });
  const identity = createClientIdentity(options.trustedProxies ?? []);
  const context: ConsoleContext = {
    users: options.users,
    sessions: new SessionStore(options.sessions),
    audit: options.audit,
    limiter: new LoginLimiter(options.loginLimit),
    clientAddress: (request) => identity(request.socket.remoteAddress, request.headers["x-forwarded-for"]) ?? "unknown",
    log,
  };
  const app = Fastify({
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    ...(options.https ? { https: { cert: options.https.cert, key: options.https.key, minVersion: "TLSv1.2" } } : {}),
  }) as unknown as FastifyInstance;

  const routes: RegisteredRoute[] = [];
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url });
  });
  app.addHook("onSend", async (_request, reply, payload) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.header(name, value);
    return payload;
  });

  app.decorateRequest("metalmanConsole", undefined);
  app.addHook("onRequest", async (request, reply) => {
    if (!request.url.startsWith("/api/")) return;
    const policy = policyFor(request.method, request.routeOptions.url);
    const state: ConsoleRequestState = { policy };
    request.metalmanConsole = state;
    const id = readCookie(request.headers.cookie, SESSION_COOKIE);
    let session = id ? context.sessions.get(id) : undefined;
    if (session && id) {
      // A user deleted or demoted through the CLI loses their session or role at once.
      await context.users.refresh();
      const user = context.users.get(session.user);
      if (!user) {
        context.sessions.delete(id);
        session = undefined;
      } else {
        session.role = user.role;
        state.session = { ...session, id };
      }
    }
    if (policy.public) return;
    if (!state.session) return sendApiError(reply, "UNAUTHENTICATED", "log in with POST /api/v1/session");
    if (!isReadMethod(request.method)) {
      const presented = request.headers["x-csrf-token"];
      if (!csrfMatches(state.session, Array.isArray(presented) ? presented[0] : presented)) {
        return sendApiError(reply, "CSRF_FAILED");
      }
    }
    if (!roleAtLeast(state.session.role, policy.role)) {
      return sendApiError(reply, "FORBIDDEN", `${policy.action ?? "this"} needs the ${policy.role} role`);
    }
  });

  // The audit entry is durable before the answer leaves (onSend runs before the first byte).
  app.addHook("onSend", async (request, reply, payload) => {
    const state = request.metalmanConsole;
    const action = state?.policy?.action;
    if (!state || !action || isReadMethod(request.method) || state.skipAudit) return payload;
    const user = state.session?.user ?? state.auditUser;
    // Nobody to name: an unauthenticated request refused at the gate is not an action.
    if (user === undefined) return payload;
    const status = reply.statusCode;
    const params = (request.params ?? {}) as Record<string, unknown>;
    const target =
      state.auditTarget ??
      (typeof params.name === "string" ? params.name : undefined) ??
      (typeof params.mac === "string" ? params.mac : undefined);
    const entry: AuditInput = {
      user,
      from: context.clientAddress(request),
      action,
      result:
        status < 400
          ? "ok"
          : status === 401 || status === 403 || status === 429
            ? "denied"
            : status >= 500
              ? "error"
              : "failed",
      status,
    };
    const role = state.session?.role ?? state.auditRole;
    if (role) entry.role = role;
    if (target !== undefined) entry.target = target;
    const code = status >= 400 ? errorCodeOf(payload) : undefined;
    const detail = [code, state.auditDetail].filter((d) => d !== undefined).join(" ");
    if (detail !== "") entry.detail = detail;
    try {
      await context.audit.append(entry);
    } catch (err) {
      log.error({ err, audit: entry }, "audit log write failed");
    }
    return payload;
  });

  const identify = (request: FastifyRequest): Actor => {
    const state = request.metalmanConsole;
    if (state?.session) return { user: state.session.user, transport: "https" };
    if (state?.policy?.public) return { user: "-", transport: "https" };
    throw new ApiError("UNAUTHENTICATED");
  };
  app.register(managementApiPlugin, {
    ...options,
    identify,
    extensions: [sessionRoutes(context), userRoutes(context), auditRoutes(context), ...(options.extensions ?? [])],
    prefix: API_PREFIX,
  });
  registerAssets(app, options.assetsDir ?? DEFAULT_ASSETS_DIR);
  return { app, routes, context };
}

function errorCodeOf(payload: unknown): string | undefined {
  if (typeof payload !== "string" || payload.length > 4096) return undefined;
  try {
    const code = (JSON.parse(payload) as { error?: { code?: unknown } }).error?.code;
    return typeof code === "string" ? code : undefined;
  } catch {
    return undefined;
  }
}

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>metalman console not built</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>The metalman console is not built</h1>
<p>The console API is running, but the web app's files are missing from <code>dist/console/</code>.</p>
<p>Build them with <code>npm run build</code> (it runs <code>vite build</code> for <code>console/</code>), then reload.</p>
</body></html>
`;

/**
 * The built console at `/` (public: it holds no data), with SPA fallback: a GET for a path
 * that is no file and not under /api answers index.html, so deep links work. Without a build,
 * every such GET answers a page saying how to build it.
 */
function registerAssets(app: FastifyInstance, assetsDir: string): void {
  const built = existsSync(path.join(assetsDir, "index.html"));
  if (built) {
    app.register(fastifyStatic, { root: assetsDir, prefix: "/", wildcard: true, index: ["index.html"] });
  }
  app.setNotFoundHandler((request, reply) => {
    const pathname = request.url.split("?", 1)[0] ?? "/";
    if (pathname.startsWith("/api/") || pathname === "/api") {
      return sendApiError(reply, "NOT_FOUND", `${request.method} ${pathname} (the API is under ${API_PREFIX})`);
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return sendApiError(reply, "NOT_FOUND", `${request.method} ${pathname}`);
    }
    if (!built)
      return reply.code(503).type("text/html; charset=utf-8").header("cache-control", "no-store").send(NOT_BUILT_PAGE);
    return reply.type("text/html; charset=utf-8").header("cache-control", "no-store").sendFile("index.html");
  });
  installApiErrorHandler(app);
}
