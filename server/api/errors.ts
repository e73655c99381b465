import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { errorCatalogue, fastifyErrorCode } from "../http/error-catalogue.js";

/**
 * The one catalogue of management API errors (the netboot listener has its own,
 * server/http/errors.ts, in Go's plain-text format). Every answer that is not a success is
 * `{ "error": { code, message, detail?, ...context } }` built from this table, so the CLI and
 * the console switch on `code` and show `message` + `detail`; the status is derived from it.
 * docs/management-api.md lists the codes and what the CLI does with them.
 */
export const API_ERRORS = errorCatalogue({
  400: { VALIDATION_FAILED: "request validation failed", BAD_REQUEST: "bad request" },
  401: { UNAUTHENTICATED: "authentication required", BAD_CREDENTIALS: "wrong user name or password" },
  403: {
    FORBIDDEN: "not allowed",
    CSRF_FAILED: "missing or wrong x-csrf-token header (take it from the session answer)",
  },
  404: {
    MACHINE_NOT_FOUND: "machine not found",
    OPERATION_NOT_FOUND: "machine operation not found",
    NOT_FOUND: "no such route",
    IMAGE_NOT_FOUND: "no Machine uses that image", // images (issue 7)
    USER_NOT_FOUND: "user not found",
    DISCOVERED_NOT_FOUND: "that MAC address is not among the discovered clients",
  },
  405: { METHOD_NOT_ALLOWED: "method not allowed" },
  409: {
    MACHINE_QUARANTINED:
      "machine is quarantined: its state file could not be trusted; no action until an operator lifts it",
    NO_BMC: "machine has no BMC configured (spec.pxe.redfish or spec.pxe.ipmi)",
    OPERATION_PENDING: "an operation of the same kind is already pending for this machine",
    OPERATION_EXISTS: "a machine operation of that name already exists",
    MACHINE_EXISTS: "a machine of that name already exists",
    USER_EXISTS: "a user of that name already exists",
    READ_ONLY_INVENTORY:
      "this inventory cannot be written from the API (cluster mode, or a file metalman did not write)",
    LAST_ADMIN: "the last admin cannot be deleted or demoted",
    UPGRADE_IN_PROGRESS: "an appliance upgrade is already under way",
  },
  410: { EVENTS_GONE: "events after that seq are no longer held: re-read the history, then follow from lastSeq" },
  413: { PAYLOAD_TOO_LARGE: "request body too large" },
  415: {
    UNSUPPORTED_MEDIA_TYPE: "unsupported media type (send application/json; an update bundle application/x-tar)",
  },
  422: {
    INVALID_MACHINE: "the machine is not valid",
    INVALID_OPERATION: "the machine operation is not valid",
    INVALID_BUNDLE: "not a metalman appliance update bundle (make-update.sh / build.sh)",
  },
  429: { RATE_LIMITED: "too many attempts; wait before trying again" },
  500: { INTERNAL: "internal server error" },
  503: { NOT_READY: "metalman is starting; retry in a moment", SHUTTING_DOWN: "metalman is shutting down" },
});

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
  return fastifyErrorCode<ApiErrorCode>(error, {
    validation: "VALIDATION_FAILED",
    fallback: "INTERNAL",
    byStatus: {
      400: "BAD_REQUEST",
      401: "UNAUTHENTICATED",
      403: "FORBIDDEN",
      413: "PAYLOAD_TOO_LARGE",
      415: "UNSUPPORTED_MEDIA_TYPE",
      429: "RATE_LIMITED",
      503: "SHUTTING_DOWN",
    },
  });
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
