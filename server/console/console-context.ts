import type { FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { RoutePolicy } from "./access-policy.js";
import type { AuditLog } from "./audit-log.js";
import type { LoginLimiter } from "./login-limiter.js";
import type { Session, SessionStore } from "./sessions.js";
import type { UserStore } from "./user-store.js";

/** What the console's surfaces share: the stores behind login, roles and the audit log. */
export interface ConsoleContext {
  users: UserStore;
  sessions: SessionStore;
  audit: AuditLog;
  limiter: LoginLimiter;
  /** The client's address: the TCP peer, or X-Forwarded-For when the peer is a --trusted-proxy. */
  clientAddress(request: FastifyRequest): string;
  log: Logger;
}

export interface ConsoleRequestState {
  /** The session the request came with (undefined on public routes without one). */
  session?: Session & { id: string };
  policy?: RoutePolicy;
  /** Login: the user name tried, for the audit entry. */
  auditUser?: string;
  auditRole?: string;
  /** Login refused by the rate limit: audited once per window, not per attempt. */
  skipAudit?: boolean;
  /** Written by a handler when the target is not a route parameter. */
  auditTarget?: string;
  auditDetail?: string;
}

declare module "fastify" {
  interface FastifyRequest {
    metalmanConsole?: ConsoleRequestState;
  }
}
