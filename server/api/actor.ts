import type { FastifyRequest } from "fastify";
import { ApiError } from "./errors.js";

/**
 * Who asked for an action: recorded on the operation (annotations), on the event stream and
 * in the log. `transport` says how the caller was authenticated, `user` who it says it is.
 */
export interface Actor {
  /** The user name, as established by the transport (see `identify`). */
  user: string;
  /** `unix-socket`: local, authenticated by the socket file's 0600 mode; later `https`. */
  transport: string;
}

/** Resolves the caller of a request, or throws an ApiError (UNAUTHENTICATED, FORBIDDEN). */
export type Identify = (request: FastifyRequest) => Actor | Promise<Actor>;

/** The header the CLI sends with the OS user name it runs as. */
export const USER_HEADER = "x-metalman-user";

const USER_NAME = /^[A-Za-z0-9._@-][A-Za-z0-9._@$-]{0,63}$/;

/**
 * Identity on the unix socket. Node cannot read the peer's uid (SO_PEERCRED), so the socket
 * file's mode (0600, owned by the user metalman runs as) is the authentication: only that user
 * and root can connect. The user name is what the client says (the CLI sends the OS user in
 * `x-metalman-user`): it tells operators apart in the audit trail, it grants nothing. A client
 * that sends none is recorded as `unknown`; a malformed name is refused, so the audit trail
 * never holds control characters or an unbounded string.
 */
export function unixSocketIdentity(request: FastifyRequest): Actor {
  const raw = request.headers[USER_HEADER];
  if (raw === undefined) return { user: "unknown", transport: "unix-socket" };
  const user = Array.isArray(raw) ? raw[0] : raw;
  if (user === undefined || !USER_NAME.test(user)) {
    throw new ApiError("BAD_REQUEST", `${USER_HEADER} must be 1-64 of [A-Za-z0-9._@$-]`);
  }
  return { user, transport: "unix-socket" };
}
