import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { ApiError } from "./errors.js";
import type { SurfaceOptions } from "./plugin.js";
import { NAME_PARAMS } from "./schemas.js";
import {
  EVENTS_QUERY,
  type EventsQuery,
  eventsGone,
  isFollow,
  lastEventId,
  newest,
  type SseOptions,
  SseStreams,
} from "./sse-stream.js";

export interface MachineEventsOptions extends SurfaceOptions, SseOptions {}

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
  const streams = new SseStreams(app, options);

  app.get<{ Params: { name: string }; Querystring: EventsQuery }>(
    "/machines/:name/events",
    { schema: { params: NAME_PARAMS, querystring: EVENTS_QUERY } },
    async (request, reply) => {
      const { name } = request.params;
      if (!backend.get(name)) throw new ApiError("MACHINE_NOT_FOUND", name, { machine: name });
      if (isFollow(request.query)) return stream(request, reply, name);
      const since = request.query.since;
      if (since === undefined) {
        return { machine: name, lastSeq: events.lastSeq, events: newest(events.history(name), request.query.limit) };
      }
      const replay = events.since(since, { machine: name });
      if (!replay.ok) throw eventsGone(since, replay.oldestSeq, replay.lastSeq);
      return { machine: name, lastSeq: replay.lastSeq, events: newest(replay.events, request.query.limit) };
    },
  );

  function stream(request: FastifyRequest<{ Querystring: EventsQuery }>, reply: FastifyReply, name: string) {
    const since = request.query.since ?? lastEventId(request) ?? events.lastSeq;
    const refused = streams.refuse(reply);
    if (refused) return refused;
    // Checked before the headers go out, so a gone seq is a clean 410 the client can act on.
    const check = events.since(since, { machine: name });
    if (!check.ok) throw eventsGone(since, check.oldestSeq, check.lastSeq);

    // Retry hint for EventSource clients, and a first line so the client knows the stream is live.
    const out = streams.start(reply, `retry: 2000\n: metalman events for ${name}, lastSeq ${check.lastSeq}\n\n`);
    const sub = events.subscribe(out.event, { since, machine: name });
    // Cannot fail after the check above (same synchronous step), but never leave a stream open.
    if (!sub.ok) out.end();
    else out.attach(sub.unsubscribe);
    return reply;
  }
};
