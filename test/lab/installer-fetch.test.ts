/**
 * The debian-12 image's installer download (netboot-images/debian-12/build/fetch.sh) under the real
 * busybox wget the initramfs runs, against a loopback server: 503 means "wait and retry" (the
 * appliance is still pulling the image), a dropped connection is retried, a 404 gives up at once
 * without a partial file, and a 5xx that never ends gives up after a bounded number of tries.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, it } from "node:test";
import { repoRoot } from "../support/paths.js";
import { labSuite } from "./harness.js";

const FETCH_SH = path.join(repoRoot(), "netboot-images", "debian-12", "build", "fetch.sh");

labSuite("debian-12 installer fetch under busybox wget", ["busybox"], () => {
  let server: Server;
  let base = "";
  let work = "";
  const hits = new Map<string, number>();

  before(async () => {
    work = mkdtempSync(path.join(tmpdir(), "metalman-fetch-"));
    // Only busybox applets on PATH, as in the initramfs (the host's GNU wget retries by itself).
    mkdirSync(path.join(work, "bin"));
    const install = spawnSync("busybox", ["--install", "-s", path.join(work, "bin")], { encoding: "utf8" });
    assert.equal(install.status, 0, install.stderr);
    server = createServer((request, response) => {
      const url = request.url ?? "";
      const n = (hits.get(url) ?? 0) + 1;
      hits.set(url, n);
      if (url === "/pulling" && n <= 2) return response.writeHead(503).end("not ready");
      if (url === "/dropped" && n <= 2) return request.socket.destroy();
      if (url === "/missing") return response.writeHead(404).end("no such file");
      if (url === "/broken") return response.writeHead(500).end("always failing");
      response.writeHead(200, { "content-type": "application/octet-stream" }).end(`payload of ${url}\n`);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(work, { recursive: true, force: true });
  });

  /** Runs `fetch URL OUT 0.2` in busybox sh (async, so the in-process server keeps answering). */
  async function fetch(route: string): Promise<{ code: number | null; out: string; file?: string }> {
    const out = path.join(work, route.slice(1));
    const script = `say() { echo "T $*"; }; ROLE=installer; . "$1"; fetch "$2" "$3" 0.2`;
    const child = spawn(path.join(work, "bin", "sh"), ["-c", script, "sh", FETCH_SH, `${base}${route}`, out], {
      env: { PATH: path.join(work, "bin"), TMPDIR: work },
    });
    let text = "";
    child.stdout.on("data", (c: Buffer) => (text += c.toString()));
    child.stderr.on("data", (c: Buffer) => (text += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    return { code, out: text, file: existsSync(out) ? readFileSync(out, "utf8") : undefined };
  }

  it("busybox is the version the image ships (1.35, same wget)", () => {
    const version = spawnSync("busybox", [], { encoding: "utf8" }).stdout.split("\n")[0] ?? "";
    assert.match(version, /BusyBox v1\.3[5-9]/);
  });

  it("503 means wait: two 503s, then the file", async () => {
    const r = await fetch("/pulling");
    assert.equal(r.code, 0, r.out);
    assert.equal(r.file, "payload of /pulling\n");
    assert.equal((r.out.match(/installer-fetch-wait .*status=503/g) ?? []).length, 2, r.out);
    assert.equal(hits.get("/pulling"), 3);
  });

  it("a dropped connection is retried", async () => {
    const r = await fetch("/dropped");
    assert.equal(r.code, 0, r.out);
    assert.equal(r.file, "payload of /dropped\n");
    assert.match(r.out, /installer-fetch-retry .*status=none attempt=1/);
  });

  it("404 gives up at once, leaving no file", async () => {
    const r = await fetch("/missing");
    assert.notEqual(r.code, 0);
    assert.equal(r.file, undefined);
    assert.match(r.out, /installer-fetch-refused .*status=404/);
    assert.equal(hits.get("/missing"), 1);
  });

  it("a 500 that never ends gives up after 8 attempts", { timeout: 120_000 }, async () => {
    const r = await fetch("/broken");
    assert.notEqual(r.code, 0);
    assert.equal(r.file, undefined);
    assert.match(r.out, /installer-fetch-gave-up .*status=500/);
    assert.equal(hits.get("/broken"), 8);
  });
});
