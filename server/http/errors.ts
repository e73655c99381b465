import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

/**
 * The one catalogue of HTTP errors. Machine-facing netboot routes answer in Go's
 * `http.Error` format (text/plain, message + "\n", nosniff) because upstream clients
 * (GRUB, wget, cloud-init, curl in the installer) only look at the status, and humans
 * debugging with curl expect those exact bodies. API routes (console, later) answer with
 * `{ "error": { code, message, detail? } }` built from the same table.
 *
 * Decision: an artifact that fails to resolve with an internal error (template render
 * error, user-data source error, broken image metadata) answers 404 like upstream, not
 * 500: netboot clients treat both the same, and the real reason goes to the log and the
 * BootEvent stream (`result: "error"`), which is where operators look.
 */
export const HTTP_ERRORS = {
  NOT_FOUND: { status: 404, message: "404 page not found" },
  ARTIFACT_NOT_READY: { status: 503, message: "file not yet available, retry later" },
  RANGE_NOT_SATISFIABLE: { status: 416, message: "invalid range: failed to overlap" },
  PRECONDITION_FAILED: { status: 412, message: "precondition failed" },
  BAD_REQUEST: { status: 400, message: "bad request" },
  VALIDATION_FAILED: { status: 400, message: "request validation failed" },
  METHOD_NOT_ALLOWED: { status: 405, message: "Method Not Allowed" },
  PAYLOAD_TOO_LARGE: { status: 413, message: "request body too large" },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: "unsupported media type" },
  PXE_DISABLE_FAILED: { status: 500, message: "failed to disable PXE" },
  NOT_READY: { status: 503, message: "not ready" },
  SHUTTING_DOWN: { status: 503, message: "server is shutting down" },
  REQUEST_TIMEOUT: { status: 408, message: "request timeout" },
  INTERNAL: { status: 500, message: "internal server error" },
} as const satisfies Record<string, { status: number; message: string }>;

export type HttpErrorCode = keyof typeof HTTP_ERRORS;

export interface ApiErrorBody {
  error: { code: HttpErrorCode; message: string; detail?: string };
}

/** Go `http.Error` format; `body` overrides the catalogue message (readyz lists failing checks). */
export function sendPlainError(
  reply: FastifyReply,
  code: HttpErrorCode,
  options: { headers?: Record<string, string>; body?: string } = {},
): FastifyReply {
  const spec = HTTP_ERRORS[code];
  reply
    .code(spec.status)
    .header("content-type", "text/plain; charset=utf-8")
    .header("x-content-type-options", "nosniff");
  for (const [name, value] of Object.entries(options.headers ?? {})) reply.header(name, value);
  return reply.send((options.body ?? spec.message) + "\n");
}

export function apiErrorBody(code: HttpErrorCode, detail?: string): ApiErrorBody {
  const body: ApiErrorBody = { error: { code, message: HTTP_ERRORS[code].message } };
  if (detail !== undefined) body.error.detail = detail;
  return body;
}

export function sendApiError(reply: FastifyReply, code: HttpErrorCode, detail?: string): FastifyReply {
  return reply.code(HTTP_ERRORS[code].status).send(apiErrorBody(code, detail));
}

/** Maps Fastify's own errors (body limit, content type, schema validation, closing) onto the catalogue. */
export function errorCodeFor(error: FastifyError): HttpErrorCode {
  if (error.validation) return "VALIDATION_FAILED";
  switch (error.statusCode) {
    case 400:
      return "BAD_REQUEST";
    case 408:
      return "REQUEST_TIMEOUT";
    case 413:
      return "PAYLOAD_TOO_LARGE";
    case 415:
      return "UNSUPPORTED_MEDIA_TYPE";
    case 503:
      return "SHUTTING_DOWN";
    default:
      return "INTERNAL";
  }
}

/**
 * Error and not-found handlers for an app. `allowedMethods(path)` names the methods a
 * known path accepts, so a wrong method answers 405 with `Allow` (Go ServeMux behaviour)
 * instead of 404.
 */
export function installErrorHandlers(
  app: FastifyInstance,
  options: { style: "plain" | "api"; allowedMethods: (path: string) => string | undefined },
): void {
  const send = (reply: FastifyReply, code: HttpErrorCode, detail?: string, headers?: Record<string, string>) => {
    if (options.style === "api") {
      for (const [name, value] of Object.entries(headers ?? {})) reply.header(name, value);
      return sendApiError(reply, code, detail);
    }
    return sendPlainError(reply, code, { headers });
  };
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const code = errorCodeFor(error);
    if (HTTP_ERRORS[code].status >= 500) request.log.error({ err: error }, "request failed");
    else request.log.debug({ err: error }, "request rejected");
    return send(reply, code, code === "VALIDATION_FAILED" ? error.message : undefined);
  });
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split("?", 1)[0] ?? "/";
    const allow = options.allowedMethods(path);
    if (allow !== undefined && !allow.split(", ").includes(request.method)) {
      return send(reply, "METHOD_NOT_ALLOWED", undefined, { allow });
    }
    return send(reply, "NOT_FOUND");
  });
}
