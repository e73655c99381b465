import assert from "node:assert/strict";
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Registry } from "prom-client";
import { BootEventBus } from "../../../server/events/boot-events.js";
import { buildNetbootApp } from "../../../server/http/app.js";
import { DirImageStore } from "../../../server/images/dir-image-store.js";
import type { ArtifactResolver } from "../../../server/netboot/artifact.js";
import { NetbootResolver } from "../../../server/netboot/resolver.js";
import { TemplateError } from "../../../server/template/render.js";
import { FakeBackend } from "./fake-backend.js";
import {
  fakeRender,
  type Harness,
  harness,
  LEASE_IP,
  makeMachine,
  makeTempImage,
  OCI_IP,
  silentLog,
} from "./support.js";

const NOT_FOUND = "404 page not found\n";

describe("artifacts: files", () => {
  let h: Harness;
  before(async () => {
    h = await harness();
  });
  after(() => h.close());

  const get = (url: string, headers: Record<string, string> = {}, method: "GET" | "HEAD" = "GET") =>
    h.app.inject({ method, url, headers, remoteAddress: LEASE_IP });

  it("serves a file byte for byte with validators", async () => {
    const res = await get("/vmlinuz");
    assert.equal(res.statusCode, 200);
    assert.ok(res.rawPayload.equals(h.image.vmlinuz));
    assert.equal(res.headers["content-length"], String(h.image.vmlinuz.length));
    assert.equal(res.headers["accept-ranges"], "bytes");
    assert.equal(res.headers["content-type"], "application/octet-stream");
    assert.match(String(res.headers.etag), /^"[0-9a-f]+-[0-9a-f]+"$/);
    assert.ok(res.headers["last-modified"]);
  });

  it("answers HEAD with the length and no body", async () => {
    const res = await get("/vmlinuz", {}, "HEAD");
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers["content-length"], String(h.image.vmlinuz.length));
    assert.equal(res.rawPayload.length, 0);
  });

  it("serves a single range with 206", async () => {
    const res = await get("/vmlinuz", { range: "bytes=10-19" });
    assert.equal(res.statusCode, 206);
    assert.ok(res.rawPayload.equals(h.image.vmlinuz.subarray(10, 20)));
    assert.equal(res.headers["content-range"], `bytes 10-19/${h.image.vmlinuz.length}`);
    assert.equal(res.headers["content-length"], "10");
  });

  it("serves suffix and open-ended ranges", async () => {
    const size = h.image.vmlinuz.length;
    const suffix = await get("/vmlinuz", { range: "bytes=-5" });
    assert.equal(suffix.statusCode, 206);
    assert.ok(suffix.rawPayload.equals(h.image.vmlinuz.subarray(size - 5)));
    const open = await get("/vmlinuz", { range: `bytes=${size - 3}-` });
    assert.equal(open.statusCode, 206);
    assert.equal(open.headers["content-range"], `bytes ${size - 3}-${size - 1}/${size}`);
  });

  it("answers 416 to an unsatisfiable range", async () => {
    const size = h.image.vmlinuz.length;
    const res = await get("/vmlinuz", { range: `bytes=${size}-` });
    assert.equal(res.statusCode, 416);
    assert.equal(res.headers["content-range"], `bytes */${size}`);
  });

  it("ignores multiple ranges and a failed If-Range (full 200)", async () => {
    const multi = await get("/vmlinuz", { range: "bytes=0-1,5-6" });
    assert.equal(multi.statusCode, 200);
    assert.equal(multi.rawPayload.length, h.image.vmlinuz.length);
    const stale = await get("/vmlinuz", { range: "bytes=0-1", "if-range": '"0-0"' });
    assert.equal(stale.statusCode, 200);
  });

  it("answers 304 to If-None-Match and If-Modified-Since", async () => {
    const first = await get("/vmlinuz");
    const etag = String(first.headers.etag);
    const byTag = await get("/vmlinuz", { "if-none-match": etag });
    assert.equal(byTag.statusCode, 304);
    assert.equal(byTag.rawPayload.length, 0);
    const byDate = await get("/vmlinuz", { "if-modified-since": String(first.headers["last-modified"]) });
    assert.equal(byDate.statusCode, 304);
    const changed = await get("/vmlinuz", { "if-none-match": '"other"' });
    assert.equal(changed.statusCode, 200);
  });

  it("serves static files verbatim and an empty file", async () => {
    const res = await get("/cloud-init/network-config");
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, "version: 2\n");
    const empty = await get("/empty.bin");
    assert.equal(empty.statusCode, 200);
    assert.equal(empty.rawPayload.length, 0);
  });

  it("follows symlinks that stay inside the image", async () => {
    const res = await get("/alias");
    assert.equal(res.statusCode, 200);
    assert.ok(res.rawPayload.equals(h.image.vmlinuz));
  });

  it("never serves a template source raw, in any path form (§4.1)", async () => {
    for (const url of [
      "/grub/grub.cfg.tmpl",
      "/grub/grub.cfg.tmpl/",
      "/grub/grub.cfg.tmpl//",
      "/grub//grub.cfg.tmpl",
      "/./grub/./grub.cfg.tmpl",
      "/grub/grub.cfg%2etmpl",
      "/grub/grub.cfg%2Etmpl/",
      "/grub%2fgrub.cfg.tmpl",
      "/grub%2Fgrub.cfg.tmpl%2F",
      "/grub/grub.cfg.TMPL",
      "/grub/grub.cfg.Tmpl",
      "/grub/grub.cfg.tmpl%00",
      "/grub/grub.cfg.tmpl%00.txt",
      "/grub/grub.cfg.tmpl?x=1",
      "/grub/grub.cfg.tmpl#frag",
      "/tmpl-alias",
      "/grub/grub.cfg.link",
      "/sub/../grub/grub.cfg.tmpl",
      "/grub/grub.cfg.tmpl%20",
    ]) {
      const res = await get(url);
      assert.equal(res.statusCode, 404, url);
      assert.equal(res.body, NOT_FOUND, url);
      assert.doesNotMatch(res.body, /Machine/, url);
    }
    // The rendered form still works, also through the cleaned path forms.
    for (const url of ["/grub/grub.cfg", "/grub//grub.cfg", "/./grub/grub.cfg", "/grub%2fgrub.cfg"]) {
      const res = await get(url);
      assert.equal(res.statusCode, 200, url);
      assert.match(res.body, /^rendered grub\/grub\.cfg\.tmpl for node-01/, url);
    }
  });

  it("refuses absolute symlinks, even into the image", async () => {
    const res = await get("/abs-alias");
    assert.equal(res.statusCode, 404);
  });

  it("never serves template sources, directories or unknown files", async () => {
    for (const url of ["/grub/grub.cfg.tmpl", "/grub", "/grub/", "/cloud-init/", "/nope", "/"]) {
      const res = await get(url);
      assert.equal(res.statusCode, 404, url);
      assert.equal(res.body, NOT_FOUND, url);
    }
  });

  it("rejects traversal, encoded traversal, absolute paths and escaping symlinks", async () => {
    for (const url of [
      "/../../etc/passwd",
      "/%2e%2e/%2e%2e/etc/passwd",
      "/sub/../../../secret.txt",
      "/..%2f..%2fsecret.txt",
      "/%2fetc%2fpasswd",
      "/escape/secret.txt",
      "/leak.txt",
      "/sub%5c..%5c..%5csecret.txt",
      "/vmlinuz%00.txt",
    ]) {
      const res = await get(url);
      assert.equal(res.statusCode, 404, url);
      assert.equal(res.body, NOT_FOUND, url);
    }
  });

  it("emits http.artifact BootEvents with bytes", async () => {
    const res = await get("/vmlinuz", { range: "bytes=0-99" });
    assert.equal(res.statusCode, 206);
    const last = h.events.recent({ machine: "node-01" }).at(-1);
    assert.equal(last?.step, "http.artifact");
    assert.equal(last?.result, "ok");
    assert.equal(last?.ip, LEASE_IP);
    assert.equal(last?.mac, "aa:bb:cc:dd:ee:01");
    assert.equal(last?.detail?.bytes, 100);
    assert.equal(last?.detail?.path, "vmlinuz");
  });

  it("answers 405 with Allow for other methods", async () => {
    const res = await h.app.inject({ method: "PUT", url: "/vmlinuz", remoteAddress: LEASE_IP });
    assert.equal(res.statusCode, 405);
    assert.equal(res.headers.allow, "GET, HEAD");
    const post = await h.app.inject({ method: "PUT", url: "/pxe/disable", remoteAddress: LEASE_IP });
    assert.equal(post.statusCode, 405);
    assert.equal(post.headers.allow, "GET, POST");
  });
});

describe("artifacts: identity, readiness, templates", () => {
  let h: Harness;
  before(async () => {
    h = await harness({
      app: { trustedProxies: ["127.0.0.0/8"] },
      render: (source, machine, name) => {
        if (machine.metadata.name === "broken") throw new TemplateError("nil pointer evaluating", "exec");
        return `rendered ${name} for ${machine.metadata.name} (${source.trim()})\n`;
      },
      userData: async (machine) =>
        machine.metadata.name === "custom" ? Buffer.from("#cloud-config\nhostname: x\n") : undefined,
      machines: () => [
        makeMachine("node-01", LEASE_IP, "dir:image"),
        makeMachine("node-02", OCI_IP, "ghcr.io/azure/images/host-ubuntu2404:v1"),
        makeMachine("broken", "10.0.0.13", "dir:image"),
        makeMachine("custom", "10.0.0.14", "dir:image"),
        makeMachine("missing", "10.0.0.15", "dir:no-such-image"),
      ],
    });
  });
  after(() => h.close());

  it("answers 503 with Retry-After for a registry image", async () => {
    const res = await h.app.inject({ url: "/vmlinuz", remoteAddress: OCI_IP });
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers["retry-after"], "5");
    assert.equal(res.body, "file not yet available, retry later\n");
    assert.equal(res.headers["content-type"], "text/plain; charset=utf-8");
    const missing = await h.app.inject({ url: "/vmlinuz", remoteAddress: "10.0.0.15" });
    assert.equal(missing.statusCode, 503);
  });

  it("answers 404 to strangers", async () => {
    const res = await h.app.inject({ url: "/vmlinuz", remoteAddress: "10.9.9.9" });
    assert.equal(res.statusCode, 404);
    assert.equal(res.body, NOT_FOUND);
    assert.equal(h.events.recent().at(-1)?.reason, "unknown-client");
  });

  it("normalises IPv4-mapped IPv6 peers", async () => {
    const res = await h.app.inject({ url: "/vmlinuz", remoteAddress: `::ffff:${LEASE_IP}` });
    assert.equal(res.statusCode, 200);
  });

  it("ignores X-Forwarded-For from untrusted peers", async () => {
    const res = await h.app.inject({
      url: "/vmlinuz",
      remoteAddress: "10.9.9.9",
      headers: { "x-forwarded-for": LEASE_IP },
    });
    assert.equal(res.statusCode, 404);
  });

  it("honours X-Forwarded-For from a trusted proxy (right-most untrusted hop)", async () => {
    const res = await h.app.inject({
      url: "/vmlinuz",
      remoteAddress: "127.0.0.1",
      headers: { "x-forwarded-for": LEASE_IP },
    });
    assert.equal(res.statusCode, 200);
    const spoofed = await h.app.inject({
      url: "/vmlinuz",
      remoteAddress: "127.0.0.1",
      headers: { "x-forwarded-for": `${LEASE_IP}, 10.9.9.9` },
    });
    assert.equal(spoofed.statusCode, 404);
  });

  it("renders <path>.tmpl through the injected renderer", async () => {
    const res = await h.app.inject({ url: "/grub/grub.cfg", remoteAddress: LEASE_IP });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers["content-type"], "text/plain; charset=utf-8");
    assert.equal(res.body, "rendered grub/grub.cfg.tmpl for node-01 (menuentry {{ .Machine.Name }})\n");
    const event = h.events.recent({ machine: "node-01" }).at(-1);
    assert.equal(event?.step, "http.template");
    assert.equal(event?.detail?.bytes, Buffer.byteLength(res.body));
    const head = await h.app.inject({ method: "HEAD", url: "/grub/grub.cfg", remoteAddress: LEASE_IP });
    assert.equal(head.statusCode, 200);
    assert.equal(head.rawPayload.length, 0);
  });

  it("answers 404 to a render error and reports it", async () => {
    const res = await h.app.inject({ url: "/grub/grub.cfg", remoteAddress: "10.0.0.13" });
    assert.equal(res.statusCode, 404);
    const event = h.events.recent({ machine: "broken" }).at(-1);
    assert.equal(event?.result, "error");
    assert.match(String(event?.reason), /nil pointer/);
  });

  it("serves user-data: default and per machine", async () => {
    const plain = await h.app.inject({ url: "/cloud-init/user-data", remoteAddress: LEASE_IP });
    assert.equal(plain.statusCode, 200);
    assert.equal(plain.body, "#cloud-config\n");
    const custom = await h.app.inject({ url: "/cloud-init/user-data", remoteAddress: "10.0.0.14" });
    assert.equal(custom.body, "#cloud-config\nhostname: x\n");
    // user-data does not depend on the image being ready
    const oci = await h.app.inject({ url: "/cloud-init/user-data", remoteAddress: OCI_IP });
    assert.equal(oci.statusCode, 200);
  });
});

describe("artifacts over a real socket", () => {
  let h: Harness;
  let port = 0;
  before(async () => {
    h = await harness({ machines: () => [makeMachine("local", "127.0.0.1", "dir:image")] });
    await h.app.listen({ host: "127.0.0.1", port: 0 });
    const address = h.app.server.address();
    port = typeof address === "object" && address ? address.port : 0;
  });
  after(() => h.close());

  it("streams the whole file and a range", async () => {
    const full = await fetch(`http://127.0.0.1:${port}/vmlinuz`);
    assert.equal(full.status, 200);
    assert.ok(Buffer.from(await full.arrayBuffer()).equals(h.image.vmlinuz));
    const part = await fetch(`http://127.0.0.1:${port}/vmlinuz`, { headers: { range: "bytes=1000-299999" } });
    assert.equal(part.status, 206);
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(h.image.vmlinuz.subarray(1000)));
  });

  it("rejects raw (un-normalised) traversal paths", async () => {
    for (const target of [
      "/../secret.txt",
      "/%2e%2e/secret.txt",
      "/sub/../../secret.txt",
      "/..%2fsecret.txt",
      "/..\\secret.txt",
    ]) {
      const response = await rawGet(port, target);
      assert.match(response, /^HTTP\/1\.1 (404|400) /, target);
      assert.ok(!response.includes("top secret"), target);
    }
  });
});

/** Sends a request line exactly as written (fetch would normalise the path). */
function rawGet(port: number, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let data = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      data += chunk;
    });
    socket.on("end", () => resolve(data));
    socket.on("error", reject);
    socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  });
}

describe("artifacts: a symlink swapped in after resolution (§4.4)", () => {
  it("the body is read beneath the image root, never through the new symlink", async () => {
    const image = makeTempImage();
    const elsewhere = path.join(image.root, "elsewhere");
    mkdirSync(path.join(elsewhere, "disk"), { recursive: true });
    writeFileSync(path.join(elsewhere, "disk", "vmlinuz"), "foreign bytes outside the image root\n");
    const backend = new FakeBackend([makeMachine("node-01", LEASE_IP, "dir:image")]);
    const log = silentLog();
    // The image root is image/ itself, so `elsewhere` (beside it) is outside.
    const images = new DirImageStore({ baseDirOf: () => image.root, log, imageRoots: [image.imageDir] });
    const inner = new NetbootResolver({ images, render: fakeRender });
    const swapping: ArtifactResolver = {
      resolve: async (machine, requestPath) => {
        const artifact = await inner.resolve(machine, requestPath);
        // Between resolution and the open: disk/ becomes a symlink that leaves the root.
        renameSync(image.diskDir, `${image.diskDir}.real`);
        symlinkSync("../elsewhere/disk", image.diskDir);
        return artifact;
      },
    };
    const app = buildNetbootApp({
      log,
      backend,
      resolver: swapping,
      events: new BootEventBus(),
      metrics: new Registry(),
    });
    try {
      const res = await app.inject({ method: "GET", url: "/vmlinuz", remoteAddress: LEASE_IP });
      assert.doesNotMatch(res.body, /foreign/);
      assert.equal(res.statusCode, 404);
    } finally {
      await app.close();
      image.cleanup();
    }
  });
});
