/**
 * What the management API (and the CLI, the console, /readyz) sees of the OCI images: one entry
 * per image reference and architecture that a Machine uses. Rooms import this interface only.
 */
export type ImageState = "ready" | "pulling" | "failed" | "not-ready";

export interface ImageStatus {
  /** The reference as a Machine names it (`spec.pxe.image`). */
  ref: string;
  /** `ready`: served from the cache (a moved tag may be pulling meanwhile: see `pullingDigest`);
   *  `pulling`: nothing served yet, a pull runs; `failed`: nothing to serve, the last pull failed
   *  (retried); `not-ready`: not tried yet. */
  state: ImageState;
  architecture: string;
  /** Digest the reference resolved to (an index's for a multi-arch image), when one is served. */
  digest?: string;
  /** Digest of the platform manifest whose tree is served. */
  manifestDigest?: string;
  /** Download progress of a pull in flight (layer bytes), else the size of what is served. */
  bytes?: number;
  totalBytes?: number;
  /** Set while a pull of a new digest runs beside the one served (a moved tag). */
  pullingDigest?: string;
  /** Why it failed (or why the last refresh of a served image failed). */
  reason?: string;
  /** ISO time the registry last confirmed (or delivered) the digest. */
  resolvedAt?: string;
  /** Machines that use it, sorted. */
  machines: string[];
}

export interface GcResult {
  removed: Array<{ manifestDigest: string; bytes: number; sourceRef: string }>;
  freedBytes: number;
  /** Bytes of the cache after the collection. */
  cacheBytes: number;
}

export interface ImageCatalog {
  list(): ImageStatus[];
  /** Re-resolve (and pull when it moved) now: every image, or those whose ref is `ref`. Returns the matching entries. */
  pull(ref?: string): ImageStatus[];
  /** Delete cached images no Machine uses; `all: false` only beyond the size budget. */
  gc(options?: { all?: boolean }): Promise<GcResult>;
}
