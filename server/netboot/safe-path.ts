import type { Stats } from "node:fs";
import { realpath, stat } from "node:fs/promises";
import path from "node:path";

export type SafePathResult =
  | { ok: true; absPath: string; stat: Stats }
  | { ok: false; reason: "invalid-path" | "outside-root" | "not-found" | "not-a-file" };

/**
 * Checks the text of a request path (no leading `/`) and returns its clean segments, or
 * undefined when it must be refused: empty or `.`, absolute, `..` segments, NUL,
 * backslashes (a Windows separator some clients send to confuse prefix checks).
 * Empty and `.` segments (`a//b`, `./a`) are dropped.
 */
export function requestPathSegments(requestPath: string): string[] | undefined {
  if (requestPath === "" || requestPath.startsWith("/")) return undefined;
  if (requestPath.includes("\0") || requestPath.includes("\\")) return undefined;
  const segments: string[] = [];
  for (const segment of requestPath.split("/")) {
    if (segment === "..") return undefined;
    if (segment !== "" && segment !== ".") segments.push(segment);
  }
  return segments.length === 0 ? undefined : segments;
}

/**
 * Resolves `requestPath` to a regular file under `root`. The text check comes first;
 * then the real path (symlinks followed) must stay inside the real path of the root, so a
 * symlink inside the image that points outside it is refused while symlinks between files
 * of the image work. Directories are "not-a-file": we never list them (spec §12 item 8).
 */
export async function resolveUnderRoot(root: string, requestPath: string): Promise<SafePathResult> {
  const segments = requestPathSegments(requestPath);
  if (segments === undefined) return { ok: false, reason: "invalid-path" };
  let realRoot: string;
  let realTarget: string;
  try {
    realRoot = await realpath(root);
    realTarget = await realpath(path.join(realRoot, ...segments));
  } catch {
    return { ok: false, reason: "not-found" };
  }
  if (!realTarget.startsWith(realRoot.endsWith(path.sep) ? realRoot : realRoot + path.sep)) {
    return { ok: false, reason: "outside-root" };
  }
  let targetStat: Stats;
  try {
    targetStat = await stat(realTarget);
  } catch {
    return { ok: false, reason: "not-found" };
  }
  if (!targetStat.isFile()) return { ok: false, reason: "not-a-file" };
  return { ok: true, absPath: realTarget, stat: targetStat };
}
