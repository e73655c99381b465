import type { IncomingHttpHeaders } from "node:http";
import path from "node:path";

/** HTTP semantics of static files (RFC 9110 §13 conditionals, §14 ranges), as pure functions. */

export interface FileValidators {
  size: number;
  mtime: Date;
}

/** Strong validator: images are immutable once unpacked, so size + mtime identify the content. */
export function etagFor(file: FileValidators): string {
  return `"${file.size.toString(16)}-${Math.floor(file.mtime.getTime()).toString(16)}"`;
}

export function lastModifiedFor(file: FileValidators): string {
  return file.mtime.toUTCString();
}

/** HTTP dates have second precision: compare on whole seconds. */
function mtimeSeconds(file: FileValidators): number {
  return Math.floor(file.mtime.getTime() / 1000);
}

function parseHttpDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}

function etagList(header: string): string[] {
  return header
    .split(",")
    .map((tag) => tag.trim())
    .filter((tag) => tag !== "");
}

function opaque(tag: string): string {
  return tag.startsWith("W/") ? tag.slice(2) : tag;
}

export type PreconditionOutcome = "proceed" | "not-modified" | "precondition-failed";

/** RFC 9110 §13.2.2 evaluation order, for GET and HEAD. */
export function evaluatePreconditions(headers: IncomingHttpHeaders, file: FileValidators): PreconditionOutcome {
  const etag = etagFor(file);
  const ifMatch = headers["if-match"];
  if (ifMatch !== undefined) {
    const tags = etagList(ifMatch);
    if (!tags.includes("*") && !tags.some((tag) => !tag.startsWith("W/") && tag === etag)) return "precondition-failed";
  } else {
    const since = parseHttpDate(headers["if-unmodified-since"]);
    if (since !== undefined && mtimeSeconds(file) > since) return "precondition-failed";
  }
  const ifNoneMatch = headers["if-none-match"];
  if (ifNoneMatch !== undefined) {
    const tags = etagList(ifNoneMatch);
    if (tags.includes("*") || tags.some((tag) => opaque(tag) === etag)) return "not-modified";
    return "proceed";
  }
  const modifiedSince = parseHttpDate(headers["if-modified-since"]);
  if (modifiedSince !== undefined && mtimeSeconds(file) <= modifiedSince) return "not-modified";
  return "proceed";
}

export type RangeSelection =
  | { kind: "full" }
  | { kind: "partial"; start: number; end: number }
  | { kind: "unsatisfiable" };

/**
 * One byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`) → 206. Several ranges, a syntax
 * error or a failed `If-Range` → the whole file (RFC 9110 lets a server ignore Range;
 * multipart/byteranges is not worth it for netboot clients, which never ask for it).
 */
export function selectRange(headers: IncomingHttpHeaders, file: FileValidators): RangeSelection {
  const header = headers.range;
  if (header === undefined) return { kind: "full" };
  const ifRangeHeader = headers["if-range"];
  const ifRange = Array.isArray(ifRangeHeader) ? ifRangeHeader[0] : ifRangeHeader;
  if (ifRange !== undefined && !ifRangeMatches(ifRange.trim(), file)) return { kind: "full" };
  const match = /^bytes=\s*(\d*)-(\d*)\s*$/i.exec(header);
  if (!match) return { kind: "full" };
  const [, first, last] = match as unknown as [string, string, string];
  if (first === "" && last === "") return { kind: "full" };
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0 || file.size === 0) return { kind: "unsatisfiable" };
    return { kind: "partial", start: Math.max(0, file.size - suffix), end: file.size - 1 };
  }
  const start = Number(first);
  const end = last === "" ? file.size - 1 : Number(last);
  if (last !== "" && end < start) return { kind: "full" };
  if (start >= file.size) return { kind: "unsatisfiable" };
  return { kind: "partial", start, end: Math.min(end, file.size - 1) };
}

function ifRangeMatches(ifRange: string, file: FileValidators): boolean {
  if (ifRange.startsWith('"') || ifRange.startsWith("W/")) return ifRange === etagFor(file);
  const date = parseHttpDate(ifRange);
  return date !== undefined && date === mtimeSeconds(file);
}

const CONTENT_TYPES: Record<string, string> = {
  ".cfg": "text/plain; charset=utf-8",
  ".conf": "text/plain; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".ipxe": "text/plain; charset=utf-8",
  ".sh": "text/plain; charset=utf-8",
  ".yaml": "text/plain; charset=utf-8",
  ".yml": "text/plain; charset=utf-8",
  ".json": "application/json",
  ".html": "text/html; charset=utf-8",
  ".gz": "application/gzip",
  ".xz": "application/x-xz",
  ".zst": "application/zstd",
  ".tar": "application/x-tar",
  ".iso": "application/x-iso9660-image",
};

/** By extension only: sniffing would cost a read per request, and netboot clients ignore the type. */
export function contentTypeFor(filePath: string): string {
  return CONTENT_TYPES[path.extname(filePath).toLowerCase()] ?? "application/octet-stream";
}
