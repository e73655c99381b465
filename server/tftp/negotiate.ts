import {
  BLKSIZE_CAP_DEFAULT,
  BLKSIZE_DEFAULT,
  BLKSIZE_MAX,
  BLKSIZE_MIN,
  TftpOptionName,
  TIMEOUT_MAX_S,
  TIMEOUT_MIN_S,
  WINDOWSIZE_CAP_DEFAULT,
  WINDOWSIZE_MAX,
  WINDOWSIZE_MIN,
} from "./options.js";
import type { TftpOption } from "./packets.js";

export interface NegotiationLimits {
  /** Largest blksize we agree to (RFC 2348 lets the server answer a smaller one). */
  maxBlockSize: number;
  /** Largest windowsize we agree to (RFC 7440 likewise). */
  maxWindowSize: number;
}

export const DEFAULT_NEGOTIATION_LIMITS: NegotiationLimits = {
  maxBlockSize: BLKSIZE_CAP_DEFAULT,
  maxWindowSize: WINDOWSIZE_CAP_DEFAULT,
};

export interface NegotiatedTransfer {
  blksize: number;
  windowsize: number;
  /** Client-requested retransmit timeout in seconds, when accepted. */
  timeoutSeconds?: number;
  /** Options to acknowledge, in the client's order; empty = send no OACK, start DATA at once. */
  oack: TftpOption[];
}

/** A strict decimal: RFC option values are ASCII digits, nothing else (no sign, no spaces, no hex). */
function parseDecimal(value: string): number | undefined {
  if (!/^[0-9]{1,10}$/.test(value)) return undefined;
  return Number(value);
}

/**
 * Decides which options of an RRQ to accept. Unknown or out-of-range options are left out of the
 * OACK, which RFC 2347 defines as "not accepted" (the client then uses the defaults); only the
 * first occurrence of an option counts. `transferSize` answers `tsize` (bytes as sent on the wire).
 */
export function negotiate(
  requested: readonly TftpOption[],
  transferSize: number,
  limits: NegotiationLimits = DEFAULT_NEGOTIATION_LIMITS,
): NegotiatedTransfer {
  const result: NegotiatedTransfer = { blksize: BLKSIZE_DEFAULT, windowsize: 1, oack: [] };
  const seen = new Set<string>();
  for (const option of requested) {
    const name = option.name.toLowerCase();
    if (seen.has(name)) continue;
    seen.add(name);
    const n = parseDecimal(option.value);
    switch (name) {
      case TftpOptionName.blksize: {
        if (n === undefined || n < BLKSIZE_MIN || n > BLKSIZE_MAX) break;
        const cap = Math.max(BLKSIZE_MIN, Math.min(limits.maxBlockSize, BLKSIZE_MAX));
        result.blksize = Math.min(n, cap);
        result.oack.push({ name, value: String(result.blksize) });
        break;
      }
      case TftpOptionName.timeout: {
        // RFC 2349: the server must echo the client's value or not accept it at all.
        if (n === undefined || n < TIMEOUT_MIN_S || n > TIMEOUT_MAX_S) break;
        result.timeoutSeconds = n;
        result.oack.push({ name, value: String(n) });
        break;
      }
      case TftpOptionName.tsize: {
        if (n === undefined) break;
        result.oack.push({ name, value: String(transferSize) });
        break;
      }
      case TftpOptionName.windowsize: {
        if (n === undefined || n < WINDOWSIZE_MIN || n > WINDOWSIZE_MAX) break;
        result.windowsize = Math.min(n, Math.max(1, limits.maxWindowSize));
        result.oack.push({ name, value: String(result.windowsize) });
        break;
      }
    }
  }
  return result;
}
