import type { FastifyPluginAsync, FastifyReply } from "fastify";
import { ApiError, sendApiError } from "../api/errors.js";
import type { SurfaceOptions } from "../api/plugin.js";
import { RateLimiter } from "../util/rate-limiter.js";
import type { ConsoleContext } from "./console-context.js";
import { readCookie, SESSION_COOKIE } from "./sessions.js";
import { MAX_PASSWORD } from "./user-store.js";

const LOGIN_BODY = {
  type: "object",
  required: ["username", "password"],
  additionalProperties: false,
  properties: {
    username: { type: "string", minLength: 1, maxLength: 64 },
    password: { type: "string", minLength: 1, maxLength: MAX_PASSWORD },
  },
} as const;

const EMPTY = { type: "object", additionalProperties: false, properties: {} } as const;

function setSessionCookie(reply: FastifyReply, value: string, maxAgeSeconds: number): void {
  // Secure: the console is HTTPS only. SameSite=Strict: no cross-site request carries it.
  reply.header(
    "set-cookie",
    `${SESSION_COOKIE}=${value}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=${maxAgeSeconds}`,
  );
}

/**
 * `POST /session` (login), `GET /session` (who am I, and the CSRF token), `DELETE /session`
 * (logout). Login is rate-limited per client address and per user name (LoginLimiter); a
 * refused attempt costs an attacker as much time as a right one (scrypt either way).
 */
export function sessionRoutes(ctx: ConsoleContext): FastifyPluginAsync<SurfaceOptions> {
  return async (app) => {
    // Rate-limited refusals are audited once per key and window, so a flood cannot fill the disk.
    const limitedAudit = new RateLimiter({ intervalMs: 60_000 });

    app.post<{ Body: { username: string; password: string } }>(
      "/session",
      { schema: { body: LOGIN_BODY, querystring: EMPTY } },
      async (request, reply) => {
        const { username, password } = request.body;
        const from = ctx.clientAddress(request);
        const state = request.metalmanConsole ?? {};
        request.metalmanConsole = state;
        state.auditUser = username.slice(0, 64);
        const keys = [`ip:${from}`, `user:${username}`];
        const wait = ctx.limiter.retryAfterSeconds(keys);
        if (wait > 0) {
          state.skipAudit = !limitedAudit.check(`${from} ${username}`).allowed;
          reply.header("retry-after", String(wait));
          throw new ApiError("RATE_LIMITED", `retry in ${wait} s`, { retryAfterSeconds: wait });
        }
        const user = await ctx.users.authenticate(username, password);
        if (!user) {
          ctx.limiter.fail(keys);
          throw new ApiError("BAD_CREDENTIALS");
        }
        ctx.limiter.succeed(`user:${username}`);
        state.auditRole = user.role;
        const { id, session } = ctx.sessions.create(user.name, user.role);
        setSessionCookie(reply, id, ctx.sessions.maxAgeSeconds);
        return { user: { name: user.name, role: user.role }, csrfToken: session.csrfToken };
      },
    );

    app.get("/session", { schema: { querystring: EMPTY } }, async (request, reply) => {
      const session = request.metalmanConsole?.session;
      if (!session) return sendApiError(reply, "UNAUTHENTICATED", "log in with POST /api/v1/session");
      return { user: { name: session.user, role: session.role }, csrfToken: session.csrfToken };
    });

    app.delete("/session", { schema: { querystring: EMPTY } }, async (request, reply) => {
      const id = readCookie(request.headers.cookie, SESSION_COOKIE);
      if (id) ctx.sessions.delete(id);
      setSessionCookie(reply, "", 0);
      return reply.code(204).send();
    });
  };
}
