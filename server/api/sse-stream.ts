import type { ServerResponse } from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { StreamEvent } from "../events/boot-events.js";
import { ApiError, sendApiError } from "./errors.js";

/** The query of the event routes (`GET /events`, `GET /machines/NAME/events`). */
export const EVENTS_QUERY = {
  type: "object",
  additionalProperties: false,
  properties: {
    // A seq of this stream (docs/events.md): events after it. Absent: the history (or, with follow, live only).
    since: { type: "integer", minimum: -1 },
    follow: { type: "string", enum: ["1", "0", "true", "false"] },
    // The newest N of the answer (not with follow).
    limit: { type: "integer", minimum: 1, maximum: 10_000 },
  },
} as const;

export interface EventsQuery {
  since?: number;
  follow?: "1" | "0" | "true" | "false";
  limit?: number;
}

export interface SseOptions {
  maxStreams: number;
  bufferBytes: number;
  heartbeatMs: number;
}

/** One open Server-Sent Events stream (the reply is hijacked, the headers are out). */
export interface SseStream {
  /** Writes a chunk; a reader that lets more than `bufferBytes` queue up is dropped (it resumes from its last id). */
  write(chunk: string): void;
  /** Writes one bus event as `id: <seq>`, `event: machine-event`, `data: <json>`. */
  event(event: StreamEvent): void;
  /** Hands over the bus subscription's unsubscribe, called when the stream stops. */
  attach(unsubscribe: () => void): void;
  /** Stops the stream (heartbeat, subscription) and ends the response. */
  end(): void;
}

export function isFollow(query: EventsQuery): boolean {
  return query.follow === "1" || query.follow === "true";
}

/** The newest `limit` of a list (all of it without a limit). */
export function newest(list: StreamEvent[], limit: number | undefined): StreamEvent[] {
  return limit === undefined || list.length <= limit ? list : list.slice(list.length - limit);
}

/** 410 EVENTS_GONE: the seq can no longer be caught up exactly (re-read, then follow from lastSeq). */
export function eventsGone(since: number, oldestSeq: number | undefined, lastSeq: number): ApiError {
  return new ApiError("EVENTS_GONE", `since=${since}`, { oldestSeq, lastSeq });
}

/** The seq of an EventSource's `Last-Event-ID` header, when it is one. */
export function lastEventId(request: FastifyRequest): number | undefined {
  const header = request.headers["last-event-id"];
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || !/^-?\d{1,19}$/.test(value.trim())) return undefined;
  return Number(value.trim());
}

/**
 * The streams of one route plugin: at most `maxStreams` open, a heartbeat each, bounded buffering,
 * and every stream ended before the server waits for its connections (streams never end by themselves).
 */
export class SseStreams {
  private readonly open = new Set<ServerResponse>();

  constructor(
    app: FastifyInstance,
    private readonly options: SseOptions,
  ) {
    app.addHook("preClose", async () => {
      for (const raw of this.open) raw.end();
      this.open.clear();
    });
  }

  /** With `maxStreams` open: answers 503 NOT_READY and returns the reply; else undefined. */
  refuse(reply: FastifyReply): FastifyReply | undefined {
    if (this.open.size < this.options.maxStreams) return undefined;
    return sendApiError(reply, "NOT_READY", `too many event streams open (${this.options.maxStreams}); retry later`);
  }

  /** Hijacks the reply, sends the SSE headers and the first lines (`banner`, written as is). */
  start(reply: FastifyReply, banner: string): SseStream {
    const { open, options } = this;
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    open.add(raw);
    let unsubscribe: () => void = () => {};
    const heartbeat = setInterval(() => write(": keep-alive\n\n"), options.heartbeatMs);
    heartbeat.unref();
    const stop = () => {
      clearInterval(heartbeat);
      unsubscribe();
      open.delete(raw);
    };
    const write = (chunk: string) => {
      if (raw.writableEnded || raw.destroyed) return;
      // A slow reader must not make us buffer without bound: drop it, it resumes from its last id.
      if (raw.writableLength > options.bufferBytes) {
        stop();
        raw.destroy();
        return;
      }
      raw.write(chunk);
    };
    raw.on("close", stop);
    write(banner);
    return {
      write,
      event: (event) => write(`id: ${event.seq}\nevent: machine-event\ndata: ${JSON.stringify(event)}\n\n`),
      attach: (next) => {
        unsubscribe = next;
        if (raw.destroyed) stop();
      },
      end: () => {
        stop();
        raw.end();
      },
    };
  }
}
