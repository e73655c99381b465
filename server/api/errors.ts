import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

/**
 * The one catalogue of management API errors (the netboot listener has its own,
 * server/http/errors.ts, in Go's plain-text format). Every answer that is not a success is
 * `{ "error": { code, message, detail?, ...context } }` built from this table, so the CLI and
 * the console switch on `code` and show `message` + `detail`; the status is derived from it.
 * docs/management-api.md lists the codes and what the CLI does with them.
 */
export const API_ERRORS = {
  VALIDATION_FAILED: { status: 400, message: "request validation failed" },
  BAD_REQUEST: { status: 400, message: "bad request" },
  UNAUTHENTICATED: { status: 401, message: "authentication required" },
  BAD_CREDENTIALS: { status: 401, message: "wrong user name or password" },
  FORBIDDEN: { status: 403, message: "not allowed" },
  CSRF_FAILED: { status: 403, message: "missing or wrong x-csrf-token header (take it from the session answer)" },
  MACHINE_NOT_FOUND: { status: 404, message: "machine not found" },
  OPERATION_NOT_FOUND: { status: 404, message: "machine operation not found" },
  NOT_FOUND: { status: 404, message: "no such route" },
  IMAGE_NOT_FOUND: { status: 404, message: "no Machine uses that image" }, // images (issue 7)
  METHOD_NOT_ALLOWED: { status: 405, message: "method not allowed" },
  MACHINE_QUARANTINED: {
    status: 409,
    message: "machine is quarantined: its state file could not be trusted; no action until an operator lifts it",
  },
  NO_BMC: { status: 409, message: "machine has no BMC configured (spec.pxe.redfish or spec.pxe.ipmi)" },
  OPERATION_PENDING: { status: 409, message: "an operation of the same kind is already pending for this machine" },
  OPERATION_EXISTS: { status: 409, message: "a machine operation of that name already exists" },
  MACHINE_EXISTS: { status: 409, message: "a machine of that name already exists" },
  USER_EXISTS: { status: 409, message: "a user of that name already exists" },
  USER_NOT_FOUND: { status: 404, message: "user not found" },
  DISCOVERED_NOT_FOUND: { status: 404, message: "that MAC address is not among the discovered clients" },
  READ_ONLY_INVENTORY: {
    status: 409,
    message: "this inventory cannot be written from the API (cluster mode, or a file metalman did not write)",
  },
  LAST_ADMIN: { status: 409, message: "the last admin cannot be deleted or demoted" },
  UPGRADE_IN_PROGRESS: { status: 409, message: "an appliance upgrade is already under way" },
  INVALID_BUNDLE: { status: 422, message: "not a metalman appliance update bundle (make-update.sh / build.sh)" },
  INVALID_MACHINE: { status: 422, message: "the machine is not valid" },
  INVALID_OPERATION: { status: 422, message: "the machine operation is not valid" },
  EVENTS_GONE: {
    status: 410,
    message: "events after that seq are no longer held: re-read the history, then follow from lastSeq",
  },
  PAYLOAD_TOO_LARGE: { status: 413, message: "request body too large" },
  RATE_LIMITED: { status: 429, message: "too many attempts; wait before trying again" },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    message: "unsupported media type (send application/json; an update bundle application/x-tar)",
  },
  INTERNAL: { status: 500, message: "internal server error" },
  NOT_READY: { status: 503, message: "metalman is starting; retry in a moment" },
  SHUTTING_DOWN: { status: 503, message: "metalman is shutting down" },
} as const satisfies Record<string, { status: number; message: string }>;

export type ApiErrorCode = keyof typeof API_ERRORS;

/** Extra machine-readable fields of an error (e.g. `operation`, `lastSeq`): scalars only. */
export type ApiErrorContext = Record<string, string | number | boolean | undefined>;

export interface ApiErrorBody {
  error: { code: ApiErrorCode; message: string; detail?: string } & ApiErrorContext;
}

/** Thrown by handlers; the plugin's error handler turns it into the catalogue answer. */
export class ApiError extends Error {
  constructor(
    readonly code: ApiErrorCode,
    readonly detail?: string,
    readonly context: ApiErrorContext = {},
  ) {
    super(detail === undefined ? API_ERRORS[code].message : `${API_ERRORS[code].message}: ${detail}`);
    this.name = "ApiError";
  }
}

export function apiErrorBody(code: ApiErrorCode, detail?: string, context: ApiErrorContext = {}): ApiErrorBody {
  const error: ApiErrorBody["error"] = { code, message: API_ERRORS[code].message };
  if (detail !== undefined) error.detail = detail;
  for (const [key, value] of Object.entries(context)) {
    if (value !== undefined && !(key in error)) error[key] = value;
  }
  return { error };
}

export function sendApiError(
  reply: FastifyReply,
  code: ApiErrorCode,
  detail?: string,
  context?: ApiErrorContext,
): FastifyReply {
  return reply
    .code(API_ERRORS[code].status)
    .header("cache-control", "no-store")
    .send(apiErrorBody(code, detail, context));
}

/** Fastify's own errors (schema validation, body limit, content type, JSON syntax, closing) onto the catalogue. */
export function apiErrorCodeFor(error: FastifyError): ApiErrorCode {
  if (error.validation) return "VALIDATION_FAILED";
  switch (error.statusCode) {
    case 400:
      return "BAD_REQUEST";
    case 401:
      return "UNAUTHENTICATED";
    case 403:
      return "FORBIDDEN";
    case 413:
      return "PAYLOAD_TOO_LARGE";
    case 415:
      return "UNSUPPORTED_MEDIA_TYPE";
    case 429:
      return "RATE_LIMITED";
    case 503:
      return "SHUTTING_DOWN";
    default:
      return "INTERNAL";
  }
}

/**
 * Error handler for the API's encapsulation context: it applies to the API's routes only, so
 * the same plugin can be registered on another Fastify instance (the console's HTTPS listener)
 * without touching that instance's own handlers.
 */
export function installApiErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | ApiError, request: FastifyRequest, reply: FastifyReply) => {
    if (error instanceof ApiError) {
      if (API_ERRORS[error.code].status >= 500) request.log.error({ err: error }, "management request failed");
      return sendApiError(reply, error.code, error.detail, error.context);
    }
    const code = apiErrorCodeFor(error);
    if (API_ERRORS[code].status >= 500) request.log.error({ err: error }, "management request failed");
    else request.log.debug({ err: error }, "management request rejected");
    // Validation and JSON syntax messages name the field and never echo a secret (we hold none).
    const detail = code === "VALIDATION_FAILED" || code === "BAD_REQUEST" ? error.message : undefined;
    return sendApiError(reply, code, detail);
  });
}
