import type { ServerResponse } from "node:http";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import type { StreamEvent } from "../events/boot-events.js";
import { ApiError, sendApiError } from "./errors.js";
import type { SurfaceOptions } from "./plugin.js";
import { NAME_PARAMS } from "./schemas.js";

export interface MachineEventsOptions extends SurfaceOptions {
  maxStreams: number;
  bufferBytes: number;
  heartbeatMs: number;
}

const EVENTS_QUERY = {
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

interface EventsQuery {
  since?: number;
  follow?: "1" | "0" | "true" | "false";
  limit?: number;
}

/**
 * `GET /machines/NAME/events`: one Machine's events from the event bus.
 * - `?since=SEQ` resumes after SEQ; a seq the bus can no longer catch up exactly (dropped,
 *   from an earlier run, ahead) answers 410 EVENTS_GONE with `oldestSeq` and `lastSeq`, like a
 *   Kubernetes watch: re-read the history, then follow from lastSeq.
 * - `?follow=1` is the same as a Server-Sent Events stream: replay after `since` (or
 *   `Last-Event-ID`), then live, with no gap and no double (`BootEventBus.subscribe`). Each event
 *   is `id: <seq>`, `event: machine-event`, `data: <json>`. A client that stops reading is
 *   dropped once `bufferBytes` are queued (it reconnects with its last id); the stream ends when
 *   the server closes.
 */
export const machineEventsPlugin: FastifyPluginAsync<MachineEventsOptions> = async (app, options) => {
  const { backend, events } = options;
  const open = new Set<ServerResponse>();

  // Streams never end by themselves: end them before the server waits for its connections.
  app.addHook("preClose", async () => {
    for (const raw of open) raw.end();
    open.clear();
  });

  app.get<{ Params: { name: string }; Querystring: EventsQuery }>(
    "/machines/:name/events",
    { schema: { params: NAME_PARAMS, querystring: EVENTS_QUERY } },
    async (request, reply) => {
      const { name } = request.params;
      if (!backend.get(name)) throw new ApiError("MACHINE_NOT_FOUND", name, { machine: name });
      const follow = request.query.follow === "1" || request.query.follow === "true";
      if (follow) return stream(request, reply, name);
      const since = request.query.since;
      if (since === undefined) {
        return { machine: name, lastSeq: events.lastSeq, events: newest(events.history(name), request.query.limit) };
      }
      const replay = events.since(since, { machine: name });
      if (!replay.ok) throw gone(since, replay.oldestSeq, replay.lastSeq);
      return { machine: name, lastSeq: replay.lastSeq, events: newest(replay.events, request.query.limit) };
    },
  );

  function stream(request: FastifyRequest<{ Querystring: EventsQuery }>, reply: FastifyReply, name: string) {
    const since = request.query.since ?? lastEventId(request) ?? events.lastSeq;
    if (open.size >= options.maxStreams) {
      return sendApiError(reply, "NOT_READY", `too many event streams open (${options.maxStreams}); retry later`);
    }
    // Checked before the headers go out, so a gone seq is a clean 410 the client can act on.
    const check = events.since(since, { machine: name });
    if (!check.ok) throw gone(since, check.oldestSeq, check.lastSeq);

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
    // Retry hint for EventSource clients, and a first line so the client knows the stream is live.
    write(`retry: 2000\n: metalman events for ${name}, lastSeq ${check.lastSeq}\n\n`);
    const sub = events.subscribe(
      (event: StreamEvent) => write(`id: ${event.seq}\nevent: machine-event\ndata: ${JSON.stringify(event)}\n\n`),
      { since, machine: name },
    );
    if (!sub.ok) {
      // Cannot happen after the check above (same synchronous step), but never leave a stream open.
      stop();
      raw.end();
      return reply;
    }
    unsubscribe = sub.unsubscribe;
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

function gone(since: number, oldestSeq: number | undefined, lastSeq: number): ApiError {
  return new ApiError("EVENTS_GONE", `since=${since}`, { oldestSeq, lastSeq });
}

function newest(list: StreamEvent[], limit: number | undefined): StreamEvent[] {
  return limit === undefined || list.length <= limit ? list : list.slice(list.length - limit);
}
