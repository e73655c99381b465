import { mkdirSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "../../support/paths.js";

/** Where a browser test writes its screenshots: $METALMAN_TEST_OUTPUT/browser/NAME, else tmp/test-output/... */
export function testOutputDir(name: string): string {
  const base = process.env.METALMAN_TEST_OUTPUT ?? path.join(repoRoot(), "tmp", "test-output");
  const dir = path.join(base, "browser", name);
  mkdirSync(dir, { recursive: true });
  return dir;
}
