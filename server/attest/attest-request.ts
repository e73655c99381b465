/**
 * The `POST /attest` body (spec §7.2): `{"ekPub": b64, "srkPub": b64}` plus our optional
 * `ekCert` (DER of the EK certificate from NV index 0x01C00002 / 0x01C0000A). Pure: bytes in,
 * fields or a refusal out. Values are standard base64 with padding, what Go's encoding/json
 * writes for a []byte; like Go, CR and LF inside the text are ignored and anything else that is
 * not base64 makes the body invalid. Unknown fields are ignored; `null` or `""` is missing.
 */
export interface AttestRequest {
  ekPub: Buffer;
  srkPub: Buffer;
  ekCert?: Buffer;
}

export type ParsedAttestRequest =
  | { ok: true; request: AttestRequest }
  | { ok: false; reason: "invalid-body" | "missing-fields" };

const FIELDS = ["ekPub", "srkPub", "ekCert"] as const;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function parseAttestRequest(body: Buffer): ParsedAttestRequest {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    return { ok: false, reason: "invalid-body" };
  }
  // Go decodes `null` into the zero struct: both fields empty, so "missing" rather than "invalid".
  if (value === null) return { ok: false, reason: "missing-fields" };
  if (typeof value !== "object" || Array.isArray(value)) return { ok: false, reason: "invalid-body" };
  const record = value as Record<string, unknown>;
  const bytes: Partial<Record<(typeof FIELDS)[number], Buffer>> = {};
  for (const field of FIELDS) {
    const text = record[field];
    if (text === undefined || text === null) continue;
    if (typeof text !== "string") return { ok: false, reason: "invalid-body" };
    const decoded = decodeStdBase64(text);
    if (decoded === undefined) return { ok: false, reason: "invalid-body" };
    if (decoded.length > 0) bytes[field] = decoded;
  }
  if (!bytes.ekPub || !bytes.srkPub) return { ok: false, reason: "missing-fields" };
  const request: AttestRequest = { ekPub: bytes.ekPub, srkPub: bytes.srkPub };
  if (bytes.ekCert) request.ekCert = bytes.ekCert;
  return { ok: true, request };
}

/** RFC 4648 §4 with padding; CR/LF skipped (Go's decoder does the same). Undefined when not base64. */
export function decodeStdBase64(text: string): Buffer | undefined {
  const compact = text.includes("\r") || text.includes("\n") ? text.replace(/[\r\n]/g, "") : text;
  if (!BASE64.test(compact)) return undefined;
  return Buffer.from(compact, "base64");
}
