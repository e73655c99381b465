import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Finding and loading the addons built from this folder by node-gyp (`npm ci` runs it). Every
 * addon is optional: callers fall back to plain Node (TFTP, HTTP) or explain what is missing
 * (interface-mode DHCP), so a load failure is a value, not an exception.
 */
export type AddonLoad<T> =
  | { ok: true; addon: T; path: string }
  | { ok: false; reason: "not-found"; candidates: string[] }
  | { ok: false; reason: "load-failed"; path: string; message: string; cause: unknown };

/** Where `file` can be once built: `server/native/build/Release/` above this module (works from dist/ and from source). */
export function addonCandidates(file: string): string[] {
  const candidates: string[] = [];
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth++) {
    candidates.push(path.join(dir, "server", "native", "build", "Release", file));
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return candidates;
}

/**
 * Loads `file` (or `explicitPath`) and checks it exports what the caller needs; an addon that
 * loads but lacks `requiredExport` (a stale build) counts as failed.
 */
export function loadAddon<T>(file: string, requiredExport: string, explicitPath?: string): AddonLoad<T> {
  const candidates = explicitPath ? [explicitPath] : addonCandidates(file);
  const found = candidates.find((candidate) => existsSync(candidate));
  if (found === undefined) return { ok: false, reason: "not-found", candidates };
  try {
    const addon = createRequire(import.meta.url)(found) as Record<string, unknown>;
    if (typeof addon[requiredExport] !== "function") {
      return {
        ok: false,
        reason: "load-failed",
        path: found,
        message: `no ${requiredExport} export`,
        cause: undefined,
      };
    }
    return { ok: true, addon: addon as T, path: found };
  } catch (cause) {
    return { ok: false, reason: "load-failed", path: found, message: (cause as Error).message, cause };
  }
}
