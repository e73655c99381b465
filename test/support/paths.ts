import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the nearest folder above this file that holds package.json (works from dist/ too). */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 10; i++) {
    if (existsSync(path.join(dir, "package.json")) && existsSync(path.join(dir, "server"))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error("repository root not found above " + fileURLToPath(import.meta.url));
}

/** `../shared` beside the checkout (lab scripts, fixtures, spec). Override with METALMAN_SHARED. */
export function sharedDir(): string {
  return process.env.METALMAN_SHARED ?? path.resolve(repoRoot(), "..", "shared");
}
