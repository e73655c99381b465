import type { ServerResponse } from "node:http";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import type { StreamEvent } from "../events/boot-events.js";
import { ApiError, sendApiError } from "./errors.js";
import type { MachineEventsOptions } from "./machine-events.js";

const QUERY = {
  type: "object",
  additionalProperties: false,
  properties: {
    since: { type: "integer", minimum: -1 },
    follow: { type: "string", enum: ["1", "0", "true", "false"] },
    limit: { type: "integer", minimum: 1, maximum: 10_000 },
  },
} as const;

interface Query {
  since?: number;
  follow?: "1" | "0" | "true" | "false";
  limit?: number;
}

/**
 * `GET /events`: every event of the bus, the console's one live feed (a list view follows it
 * instead of one stream per Machine).
 * - Without `follow`: `{lastSeq, events}`: the recent events (Machines' and strangers'), or with
 *   `since` the Machine events after it (410 EVENTS_GONE when no longer held).
 * - `follow=1`: Server-Sent Events: replay after `since` / `Last-Event-ID`, then live, strangers
 *   included (`id: <seq>`, `event: machine-event`). When the seq cannot be caught up exactly the
 *   stream says `event: gone` (data `{oldestSeq, lastSeq}`) and continues live from lastSeq: the
 *   client re-reads its lists, and keeps the stream.
 */
export const allEventsPlugin: FastifyPluginAsync<MachineEventsOptions> = async (app, options) => {
  const { events } = options;
  const open = new Set<ServerResponse>();
  app.addHook("preClose", async () => {
    for (const raw of open) raw.end();
    open.clear();
  });

  app.get<{ Querystring: Query }>("/events", { schema: { querystring: QUERY } }, async (request, reply) => {
    const follow = request.query.follow === "1" || request.query.follow === "true";
    if (follow) return stream(request, reply);
    const { since, limit } = request.query;
    let list: StreamEvent[];
    let lastSeq = events.lastSeq;
    if (since === undefined) list = events.recent();
    else {
      const replay = events.since(since);
      if (!replay.ok) {
        throw new ApiError("EVENTS_GONE", `since=${since}`, { oldestSeq: replay.oldestSeq, lastSeq: replay.lastSeq });
      }
      list = replay.events;
      lastSeq = replay.lastSeq;
    }
    return { lastSeq, events: limit === undefined || list.length <= limit ? list : list.slice(list.length - limit) };
  });

  function stream(request: FastifyRequest<{ Querystring: Query }>, reply: FastifyReply) {
    if (open.size >= options.maxStreams) {
      return sendApiError(reply, "NOT_READY", `too many event streams open (${options.maxStreams}); retry later`);
    }
    const resumeFrom = request.query.since ?? lastEventId(request);
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
    function write(chunk: string) {
      if (raw.writableEnded || raw.destroyed) return;
      // A slow reader is dropped, never buffered without bound: it reconnects with its last id.
      if (raw.writableLength > options.bufferBytes) {
        stop();
        raw.destroy();
        return;
      }
      raw.write(chunk);
    }
    raw.on("close", stop);
    const deliver = (event: StreamEvent) =>
      write(`id: ${event.seq}\nevent: machine-event\ndata: ${JSON.stringify(event)}\n\n`);
    write(`retry: 2000\n: metalman events, lastSeq ${events.lastSeq}\n\n`);
    let sub = events.subscribe(deliver, { since: resumeFrom ?? events.lastSeq });
    if (!sub.ok) {
      write(`event: gone\ndata: ${JSON.stringify({ oldestSeq: sub.oldestSeq ?? null, lastSeq: sub.lastSeq })}\n\n`);
      // Same synchronous step: nothing can be emitted between the answer and this subscription.
      sub = events.subscribe(deliver, { since: events.lastSeq });
    }
    if (sub.ok) unsubscribe = sub.unsubscribe;
    if (raw.destroyed) stop();
    return reply;
  }
};

function lastEventId(request: FastifyRequest): number | undefined {
  const header = request.headers["last-event-id"];
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || !/^-?\d{1,19}$/.test(value.trim())) return undefined;
  return Number(value.trim());
}
