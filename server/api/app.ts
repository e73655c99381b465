import Fastify, { type FastifyInstance, LogController } from "fastify";
import type { Logger } from "pino";
import { installApiErrorHandler, sendApiError } from "./errors.js";
import { API_PREFIX, type ManagementApiOptions, managementApiPlugin } from "./plugin.js";

export interface ManagementAppOptions extends ManagementApiOptions {
  log: Logger;
}

/**
 * The management API's own Fastify instance (never the netboot listener: Machines and the PXE
 * LAN reach that one). It is not listening: the unix socket (unix-socket.ts) hands its requests
 * to `app.routing` once `ready()`; tests use `inject()`.
 */
export function buildManagementApp(options: ManagementAppOptions): FastifyInstance {
  const { log, ...api } = options;
  const app = Fastify({
    loggerInstance: log.child({ component: "api" }),
    // Actions are recorded on the event stream and in the log with who did them; no access log.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  }) as unknown as FastifyInstance;
  installApiErrorHandler(app);
  app.setNotFoundHandler((request, reply) =>
    sendApiError(
      reply,
      "NOT_FOUND",
      `${request.method} ${request.url.split("?", 1)[0]} (the API is under ${API_PREFIX})`,
    ),
  );
  app.register(managementApiPlugin, { ...api, prefix: API_PREFIX });
  return app;
}
