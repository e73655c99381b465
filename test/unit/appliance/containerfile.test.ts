import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { parseServePxeArgs } from "../../../server/config/serve-pxe-config.js";
import { repoRoot } from "../../support/paths.js";

/**
 * The Containerfile cannot be built here (no registry for a base image; docs/appliance.md), so
 * this checks what a build would trip over: stages, sources, what the runtime copies from the
 * build stage, the non-root user, and that its default command is a valid serve-pxe command line.
 */

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

function instructions(): Instruction[] {
  const text = readFileSync(path.join(repoRoot(), "Containerfile"), "utf8");
  const joined = text
    .split("\n")
    .filter((l) => !l.trimStart().startsWith("#"))
    .join("\n")
    .replace(/\\\n/g, " ");
  let stage = -1;
  const out: Instruction[] = [];
  for (const line of joined.split("\n")) {
    const m = line.trim().match(/^([A-Z]+)\s+(.*)$/);
    if (!m) continue;
    if (m[1] === "FROM") stage++;
    out.push({ op: m[1]!, args: m[2]!.trim(), stage });
  }
  return out;
}

describe("Containerfile (static check)", () => {
  const ins = instructions();
  const last = Math.max(...ins.map((i) => i.stage));

  it("is multi-stage: npm ci and the build in a build stage, a slim runtime stage", () => {
    const froms = ins.filter((i) => i.op === "FROM");
    assert.ok(froms.length >= 2);
    assert.match(froms[0]!.args, / AS build$/);
    assert.match(froms[last]!.args, /RUN_IMAGE/);
    assert.match(readFileSync(path.join(repoRoot(), "Containerfile"), "utf8"), /ARG RUN_IMAGE=\S+-slim\n/);
    const buildRuns = ins.filter((i) => i.stage === 0 && i.op === "RUN").map((i) => i.args);
    assert.ok(buildRuns.some((r) => /\bnpm ci\b/.test(r)));
    assert.ok(buildRuns.some((r) => /npm run build/.test(r) && /npm prune --omit=dev/.test(r)));
    assert.ok(!ins.some((i) => i.stage === last && i.op === "RUN" && /npm (ci|install)/.test(i.args)));
  });

  it("copies only sources that exist, and from the build stage what the build produces", () => {
    for (const i of ins.filter((x) => x.op === "COPY")) {
      const parts = i.args.split(/\s+/);
      const from = parts.find((p) => p.startsWith("--from="));
      const sources = parts.filter((p) => !p.startsWith("--")).slice(0, -1);
      for (const source of sources) {
        if (!from) {
          assert.ok(existsSync(path.join(repoRoot(), source)), `COPY ${source}: not in the repository`);
          continue;
        }
        const rel = source.replace(/^\/src\//, "");
        if (rel === "node") {
          assert.ok(ins.some((x) => x.stage === 0 && x.op === "RUN" && x.args.includes("/src/node")));
          continue;
        }
        // What the build stage makes is what `npm ci && npm run build` makes in this checkout.
        assert.ok(existsSync(path.join(repoRoot(), rel)), `COPY --from=build ${source}: the build does not make it`);
      }
    }
  });

  it("runs as a non-root user with the entry point of the built server", () => {
    const user = ins.filter((i) => i.stage === last && i.op === "USER").pop();
    assert.ok(user, "USER in the runtime stage");
    assert.doesNotMatch(user.args, /^(0|root)(:|$)/);
    const entry = JSON.parse(ins.find((i) => i.stage === last && i.op === "ENTRYPOINT")!.args) as string[];
    assert.equal(entry[0], "node");
    assert.equal(entry[1], "/usr/lib/metalman/app/dist/server/main.js");
    assert.ok(existsSync(path.join(repoRoot(), "dist/server/main.js")));
    const expose = ins.find((i) => i.stage === last && i.op === "EXPOSE")!.args.split(/\s+/);
    for (const port of ["67/udp", "69/udp", "8880/tcp", "8081/tcp"]) assert.ok(expose.includes(port), port);
  });

  it("its default command is a valid serve-pxe command line", () => {
    const cmd = JSON.parse(ins.find((i) => i.stage === last && i.op === "CMD")!.args) as string[];
    assert.equal(cmd[0], "serve-pxe");
    const config = parseServePxeArgs(cmd.slice(1), { HOME: "/var/lib/metalman" });
    assert.equal(config.stateDir, "/var/lib/metalman/state");
    assert.deepEqual(config.imageRoots, ["/usr/share/metalman/images", "/var/lib/metalman/images"]);
  });
});
