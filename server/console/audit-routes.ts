import type { FastifyPluginAsync } from "fastify";
import type { SurfaceOptions } from "../api/plugin.js";
import type { ConsoleContext } from "./console-context.js";

const AUDIT_QUERY = {
  type: "object",
  additionalProperties: false,
  properties: {
    limit: { type: "integer", minimum: 1, maximum: 1000, default: 100 },
    before: { type: "integer", minimum: 1 },
  },
} as const;

/** `GET /audit?limit=&before=` (admin): newest first; page with `before` = the last seq seen. */
export function auditRoutes(ctx: ConsoleContext): FastifyPluginAsync<SurfaceOptions> {
  return async (app) => {
    app.get<{ Querystring: { limit: number; before?: number } }>(
      "/audit",
      { schema: { querystring: AUDIT_QUERY } },
      async (request) => ({
        lastSeq: ctx.audit.lastSeq,
        items: ctx.audit.query({ limit: request.query.limit, before: request.query.before }),
      }),
    );
  };
}
