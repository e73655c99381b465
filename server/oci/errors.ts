/**
 * The one error type of the OCI client. `retryable` says whether the same request may succeed
 * later (429, 5xx, a cut connection); everything else (404, bad digest, unknown media type) is
 * final for this attempt and is reported as it is.
 */
export class OciError extends Error {
  override readonly name = "OciError";
  constructor(
    message: string,
    readonly code: OciErrorCode,
    readonly retryable = false,
    /** Server-asked delay (Retry-After), ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export type OciErrorCode =
  | "BAD_REFERENCE"
  | "UNAUTHORIZED"
  | "NOT_FOUND"
  | "HTTP"
  | "NETWORK"
  | "DIGEST_MISMATCH"
  | "SIZE"
  | "UNSUPPORTED"
  | "NO_PLATFORM"
  | "INSECURE"
  | "BAD_MANIFEST";
