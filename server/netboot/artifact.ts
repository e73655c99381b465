import type { FileHandle } from "node:fs/promises";
import type { Machine } from "../inventory/types.js";

/**
 * What a netboot client gets for a path: shared by TFTP and HTTP so both resolve files,
 * templates and `cloud-init/user-data` identically (spec §5.3, §4).
 */
export type Artifact =
  | {
      kind: "file";
      /** The real path when resolved (logs; a consumer that opens it by path loses the confinement). */
      absPath: string;
      size: number;
      mtime: Date;
      /**
       * Opens the file again beneath the image root (docs/security.md): consumers read from this
       * handle, so no symlink swapped in after resolution can redirect them. The caller closes it.
       * Always set by NetbootResolver; optional only for test doubles.
       */
      open?(): Promise<FileHandle>;
    }
  | { kind: "rendered"; body: Buffer; contentType: string }
  | { kind: "not-ready"; reason: string; retryAfterSeconds: number }
  | { kind: "not-found"; reason: string }
  | { kind: "error"; reason: string };

export interface ArtifactResolver {
  /** `path` is the request path without its leading `/`. Never throws. */
  resolve(machine: Machine, path: string): Promise<Artifact>;
}
