import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { type BoundedBody, boundedBodyParser } from "../http/bounded-body.js";
import type { ClientIdentity } from "../http/client-identity.js";
import type { HttpMetrics } from "../http/http-metrics.js";
import { leaseMac, requesterIp } from "../http/request-identity.js";
import { type AttestAnswer, AttestService, type AttestServiceOptions } from "./attest-service.js";

/** Spec §7.2: bodies over 1 MiB are refused with 400. */
export const ATTEST_BODY_LIMIT = 1024 * 1024;

export interface AttestPluginOptions extends AttestServiceOptions {
  /** The netboot app's identity (source IP; X-Forwarded-For only from a trusted proxy). */
  identify: ClientIdentity;
  bodyLimitBytes?: number;
  /** Malformed bodies are counted in `metalman_http_malformed_total{route="/attest"}`. */
  metrics?: HttpMetrics;
}

/**
 * `POST /attest` on the netboot HTTP port, compatible with the upstream agent (spec §7).
 * Encapsulated: its body parser (raw bytes of any content type, cut at the limit) applies
 * to this route only. The size is checked before anything is parsed: a declared
 * Content-Length over the limit is refused before the body is read, and a chunked body is
 * read only up to the limit. The policy is `AttestService`.
 */
export const attestPlugin: FastifyPluginAsync<AttestPluginOptions> = async (app, options) => {
  const limit = options.bodyLimitBytes ?? ATTEST_BODY_LIMIT;
  const service = new AttestService(options);

  app.removeAllContentTypeParsers();
  // One byte over the limit is read, so "more than the limit" is seen even when a chunk ends exactly at it.
  app.addContentTypeParser("*", boundedBodyParser(limit + 1));

  const send = (reply: FastifyReply, answer: AttestAnswer, close: boolean) => {
    if (close) reply.header("connection", "close");
    if (answer.status === 200) {
      return reply
        .code(200)
        .header("content-type", "application/json")
        .send(Buffer.from(`${JSON.stringify(answer.body)}\n`));
    }
    if (answer.status === 400) options.metrics?.malformed.inc({ route: "/attest", reason: answer.reason });
    if (answer.retryAfterSeconds !== undefined) reply.header("retry-after", String(answer.retryAfterSeconds));
    // Go's http.Error format, like every machine-facing error (server/http/errors.ts).
    return reply
      .code(answer.status)
      .header("content-type", "text/plain; charset=utf-8")
      .header("x-content-type-options", "nosniff")
      .send(`${answer.message}\n`);
  };

  app.route({
    method: "POST",
    url: "/attest",
    bodyLimit: limit + 1,
    // Refused before a byte of the body is read: the declared size alone is over the limit.
    onRequest: async (request: FastifyRequest, reply: FastifyReply) => {
      const declared = Number(request.headers["content-length"] ?? "0");
      if (Number.isFinite(declared) && declared > limit) {
        const ip = requesterIp(options.identify, request);
        return send(reply, await service.attest({ ip, body: Buffer.alloc(0), tooLarge: true }), true);
      }
    },
    handler: async (request, reply) => {
      const body = request.body as BoundedBody | undefined;
      const tooLarge = (body?.truncated ?? false) || (body?.bytes.length ?? 0) > limit;
      const ip = requesterIp(options.identify, request);
      const answer = await service.attest({
        ip,
        mac: (machine) => (ip === undefined ? undefined : leaseMac(machine, ip)),
        body: body?.bytes ?? Buffer.alloc(0),
        tooLarge,
      });
      return send(reply, answer, tooLarge);
    },
  });
};
