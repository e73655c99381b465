import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import type { StreamEvent } from "../events/boot-events.js";
import type { MachineEventsOptions } from "./machine-events.js";
import { EVENTS_QUERY, type EventsQuery, eventsGone, isFollow, lastEventId, newest, SseStreams } from "./sse-stream.js";

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
  const streams = new SseStreams(app, options);

  app.get<{ Querystring: EventsQuery }>(
    "/events",
    { schema: { querystring: EVENTS_QUERY } },
    async (request, reply) => {
      if (isFollow(request.query)) return stream(request, reply);
      const { since, limit } = request.query;
      let list: StreamEvent[];
      let lastSeq = events.lastSeq;
      if (since === undefined) list = events.recent();
      else {
        const replay = events.since(since);
        if (!replay.ok) throw eventsGone(since, replay.oldestSeq, replay.lastSeq);
        list = replay.events;
        lastSeq = replay.lastSeq;
      }
      return { lastSeq, events: newest(list, limit) };
    },
  );

  function stream(request: FastifyRequest<{ Querystring: EventsQuery }>, reply: FastifyReply) {
    const refused = streams.refuse(reply);
    if (refused) return refused;
    const resumeFrom = request.query.since ?? lastEventId(request);
    const out = streams.start(reply, `retry: 2000\n: metalman events, lastSeq ${events.lastSeq}\n\n`);
    let sub = events.subscribe(out.event, { since: resumeFrom ?? events.lastSeq });
    if (!sub.ok) {
      out.write(`event: gone\ndata: ${JSON.stringify({ oldestSeq: sub.oldestSeq ?? null, lastSeq: sub.lastSeq })}\n\n`);
      // Same synchronous step: nothing can be emitted between the answer and this subscription.
      sub = events.subscribe(out.event, { since: events.lastSeq });
    }
    out.attach(sub.ok ? sub.unsubscribe : () => {});
    return reply;
  }
};
