import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { errorCatalogue, fastifyErrorCode } from "./error-catalogue.js";

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
export const HTTP_ERRORS = errorCatalogue({
  400: { BAD_REQUEST: "bad request", VALIDATION_FAILED: "request validation failed" },
  404: { NOT_FOUND: "404 page not found" },
  405: { METHOD_NOT_ALLOWED: "Method Not Allowed" },
  408: { REQUEST_TIMEOUT: "request timeout" },
  412: { PRECONDITION_FAILED: "precondition failed" },
  413: { PAYLOAD_TOO_LARGE: "request body too large" },
  415: { UNSUPPORTED_MEDIA_TYPE: "unsupported media type" },
  416: { RANGE_NOT_SATISFIABLE: "invalid range: failed to overlap" },
  500: { PXE_DISABLE_FAILED: "failed to disable PXE", INTERNAL: "internal server error" },
  503: {
    ARTIFACT_NOT_READY: "file not yet available, retry later",
    NOT_READY: "not ready",
    SHUTTING_DOWN: "server is shutting down",
  },
});

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
  return fastifyErrorCode<HttpErrorCode>(error, {
    validation: "VALIDATION_FAILED",
    fallback: "INTERNAL",
    byStatus: {
      400: "BAD_REQUEST",
      408: "REQUEST_TIMEOUT",
      413: "PAYLOAD_TOO_LARGE",
      415: "UNSUPPORTED_MEDIA_TYPE",
      503: "SHUTTING_DOWN",
    },
  });
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
