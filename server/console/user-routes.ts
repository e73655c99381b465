import type { FastifyPluginAsync } from "fastify";
import { ApiError } from "../api/errors.js";
import type { SurfaceOptions } from "../api/plugin.js";
import type { ConsoleContext } from "./console-context.js";
import { MAX_PASSWORD, MIN_PASSWORD, ROLES, USER_NAME_PATTERN, UserStoreError } from "./user-store.js";

const NAME = { type: "string", pattern: USER_NAME_PATTERN, maxLength: 32 } as const;
const PASSWORD = { type: "string", minLength: MIN_PASSWORD, maxLength: MAX_PASSWORD } as const;
const ROLE = { type: "string", enum: [...ROLES] } as const;
const EMPTY = { type: "object", additionalProperties: false, properties: {} } as const;
const USER_PARAMS = { type: "object", required: ["name"], additionalProperties: false, properties: { name: NAME } };

function apiErrorOf(err: unknown): unknown {
  if (!(err instanceof UserStoreError)) return err;
  switch (err.code) {
    case "EXISTS":
      return new ApiError("USER_EXISTS", err.message);
    case "NOT_FOUND":
      return new ApiError("USER_NOT_FOUND", err.message);
    case "LAST_ADMIN":
      return new ApiError("LAST_ADMIN", err.message);
    case "INVALID":
      return new ApiError("VALIDATION_FAILED", err.message);
    default:
      return new ApiError("INTERNAL", "the users file cannot be read (see the log)");
  }
}

/** `GET|POST /users`, `PUT|DELETE /users/NAME` (admin). Answers never carry a hash or password. */
export function userRoutes(ctx: ConsoleContext): FastifyPluginAsync<SurfaceOptions> {
  return async (app) => {
    app.get("/users", { schema: { querystring: EMPTY } }, async () => {
      await ctx.users.refresh(0);
      return { items: ctx.users.list() };
    });

    app.post<{ Body: { name: string; role: (typeof ROLES)[number]; password: string } }>(
      "/users",
      {
        schema: {
          querystring: EMPTY,
          body: {
            type: "object",
            required: ["name", "role", "password"],
            additionalProperties: false,
            properties: { name: NAME, role: ROLE, password: PASSWORD },
          },
        },
      },
      async (request, reply) => {
        const { name, role, password } = request.body;
        if (request.metalmanConsole) request.metalmanConsole.auditTarget = name;
        try {
          const user = await ctx.users.add(name, role, password);
          return reply.code(201).send({ user });
        } catch (err) {
          throw apiErrorOf(err);
        }
      },
    );

    app.put<{ Params: { name: string }; Body: { role?: (typeof ROLES)[number]; password?: string } }>(
      "/users/:name",
      {
        schema: {
          params: USER_PARAMS,
          querystring: EMPTY,
          body: {
            type: "object",
            minProperties: 1,
            additionalProperties: false,
            properties: { role: ROLE, password: PASSWORD },
          },
        },
      },
      async (request) => {
        const { name } = request.params;
        try {
          let user = ctx.users.get(name);
          if (request.body.role !== undefined) user = await ctx.users.setRole(name, request.body.role);
          if (request.body.password !== undefined) user = await ctx.users.setPassword(name, request.body.password);
          if (!user) throw new ApiError("USER_NOT_FOUND", name);
          // New password or role: every session of that user logs in again.
          ctx.sessions.endUser(name);
          if (request.metalmanConsole) {
            request.metalmanConsole.auditDetail = Object.keys(request.body).sort().join(",");
          }
          return { user };
        } catch (err) {
          throw apiErrorOf(err);
        }
      },
    );

    app.delete<{ Params: { name: string } }>(
      "/users/:name",
      { schema: { params: USER_PARAMS, querystring: EMPTY } },
      async (request, reply) => {
        try {
          await ctx.users.remove(request.params.name);
        } catch (err) {
          throw apiErrorOf(err);
        }
        ctx.sessions.endUser(request.params.name);
        return reply.code(204).send();
      },
    );
  };
}
