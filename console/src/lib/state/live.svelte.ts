/**
 * One SSE connection for the whole console; managers subscribe to the events they care about.
 * The newest seq is kept so a reconnect resumes exactly (lib/api/events.ts).
 */
import type { ApiClient } from "../api/client";
import { type LiveStream, openLiveStream } from "../api/events";
import type { BootEvent } from "../api/types";

export type LiveListener = (event: BootEvent) => void;

export class LiveManager {
  state = $state<"connecting" | "live" | "offline">("connecting");
  #stream: LiveStream | undefined;
  #listeners = new Set<LiveListener>();
  #goneListeners = new Set<() => void>();

  constructor(private readonly api: ApiClient) {}

  start(): void {
    if (this.#stream) return;
    this.#stream = openLiveStream((since) => this.api.eventsUrl(since), {
      onEvent: (event) => {
        for (const listener of this.#listeners) listener(event);
      },
      onGone: () => {
        for (const listener of this.#goneListeners) listener();
      },
      onState: (state) => {
        this.state = state;
      },
    });
  }

  stop(): void {
    this.#stream?.close();
    this.#stream = undefined;
    this.state = "offline";
  }

  subscribe(listener: LiveListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onGone(listener: () => void): () => void {
    this.#goneListeners.add(listener);
    return () => this.#goneListeners.delete(listener);
  }
}
