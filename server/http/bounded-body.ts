import type { FastifyRequest } from "fastify";

/** A request body read up to a limit; the rest is not read (upstream `io.LimitReader` semantics). */
export interface BoundedBody {
  bytes: Buffer;
  truncated: boolean;
}

export class BodyReadError extends Error {
  readonly statusCode = 400;
}

/**
 * Fastify content-type parser (any type, or none) for machine-facing routes that must
 * accept whatever a client sends and never fail on content: keeps the first `limit`
 * bytes and stops reading there. The handler sets `Connection: close` for a truncated
 * body, so the unread rest is not parsed as a next request.
 */
export function boundedBodyParser(limit: number) {
  return (
    _request: FastifyRequest,
    payload: NodeJS.ReadableStream,
    done: (error: Error | null, body?: BoundedBody) => void,
  ) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let finished = false;
    const finish = (error: Error | null, body?: BoundedBody) => {
      if (finished) return;
      finished = true;
      payload.removeListener("data", onData);
      done(error, body);
    };
    const onData = (chunk: Buffer | string) => {
      const buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      const room = limit - size;
      if (buffer.length >= room) {
        chunks.push(buffer.subarray(0, room));
        size = limit;
        finish(null, { bytes: Buffer.concat(chunks, size), truncated: buffer.length > room });
        return;
      }
      chunks.push(buffer);
      size += buffer.length;
    };
    payload.on("data", onData);
    payload.on("end", () => finish(null, { bytes: Buffer.concat(chunks, size), truncated: false }));
    payload.on("error", (error: Error) => finish(new BodyReadError(`reading request body: ${error.message}`)));
  };
}
