/**
 * The live stream: one EventSource on the firehose (`/events?follow=1`). The browser resends the
 * last `id:` as Last-Event-ID when it reconnects by itself; when the EventSource gives up (a
 * network error that closes it, the server restarting) this module opens a new one with
 * `since=<last seq seen>`, so no event is missed or shown twice. `event: gone` means the seq is
 * too old: the stream goes on live and the caller re-reads its lists.
 */
import type { BootEvent } from "./types";

export interface LiveStreamHandlers {
  onEvent: (event: BootEvent) => void;
  onGone: () => void;
  onState: (state: "connecting" | "live" | "offline") => void;
}

export interface LiveStream {
  close(): void;
  readonly lastSeq: number | undefined;
}

export function openLiveStream(
  urlFor: (since?: number) => string,
  handlers: LiveStreamHandlers,
  since?: number,
): LiveStream {
  let lastSeq = since;
  let source: EventSource | undefined;
  let closed = false;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let backoff = 500;

  const connect = () => {
    if (closed) return;
    handlers.onState("connecting");
    source = new EventSource(urlFor(lastSeq));
    source.onopen = () => {
      backoff = 500;
      handlers.onState("live");
    };
    source.addEventListener("machine-event", (message) => {
      const event = JSON.parse((message as MessageEvent<string>).data) as BootEvent;
      // A replay after a reconnect never shows an event twice.
      if (lastSeq !== undefined && event.seq <= lastSeq) return;
      lastSeq = event.seq;
      handlers.onEvent(event);
    });
    source.addEventListener("gone", (message) => {
      // The seq is too old to catch up exactly. The server goes on live on the same stream from
      // its lastSeq (docs/console-api.md); the caller re-reads its lists.
      let resumeAt: number | undefined;
      try {
        resumeAt = (JSON.parse((message as MessageEvent<string>).data) as { lastSeq?: number }).lastSeq;
      } catch {
        resumeAt = undefined;
      }
      lastSeq = typeof resumeAt === "number" ? resumeAt : undefined;
      handlers.onGone();
    });
    source.onerror = () => {
      if (closed || source?.readyState !== EventSource.CLOSED) {
        handlers.onState("connecting");
        return;
      }
      handlers.onState("offline");
      retryTimer = setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10_000);
    };
  };
  connect();
  return {
    close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      source?.close();
    },
    get lastSeq() {
      return lastSeq;
    },
  };
}
