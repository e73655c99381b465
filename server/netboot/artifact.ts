import type { Machine } from "../inventory/types.js";

/**
 * What a netboot client gets for a path: shared by TFTP and HTTP so both resolve files,
 * templates and `cloud-init/user-data` identically (spec §5.3, §4).
 */
export type Artifact =
  | { kind: "file"; absPath: string; size: number; mtime: Date }
  | { kind: "rendered"; body: Buffer; contentType: string }
  | { kind: "not-ready"; reason: string; retryAfterSeconds: number }
  | { kind: "not-found"; reason: string }
  | { kind: "error"; reason: string };

export interface ArtifactResolver {
  /** `path` is the request path without its leading `/`. Never throws. */
  resolve(machine: Machine, path: string): Promise<Artifact>;
}
