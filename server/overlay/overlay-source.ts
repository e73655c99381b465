import type { OverlayResources } from "./resources.js";

/**
 * Where the overlay's resources come from: the upstream cluster's `net.unbounded-cloud.io`
 * objects (cluster mode), or a fixed set (tests). The reconciler reads only this interface.
 */
export interface OverlaySource {
  /** The latest consistent view; undefined until the first list has arrived. */
  snapshot(): OverlayResources | undefined;
  /** Called after every change of the snapshot; returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
}

/** A source whose snapshot is set by hand: tests, and sites that pre-seed the overlay in a file. */
export class StaticOverlaySource implements OverlaySource {
  #resources: OverlayResources | undefined;
  readonly #listeners = new Set<() => void>();

  constructor(resources?: OverlayResources) {
    this.#resources = resources;
  }

  snapshot(): OverlayResources | undefined {
    return this.#resources;
  }

  set(resources: OverlayResources): void {
    this.#resources = resources;
    for (const listener of [...this.#listeners]) listener();
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
