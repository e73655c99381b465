import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "../../support/paths.js";

/** Where a browser test writes its screenshots (emptied first): $METALMAN_TEST_OUTPUT/browser/NAME, else tmp/test-output/... */
export function testOutputDir(name: string): string {
  const base = process.env.METALMAN_TEST_OUTPUT ?? path.join(repoRoot(), "tmp", "test-output");
  const dir = path.join(base, "browser", name);
  // Fresh for each run: a picture left from an earlier run must not pass for this one's.
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}
