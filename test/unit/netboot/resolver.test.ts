import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { ImageLookup, ImageStore } from "../../../server/images/image-store.js";
import { API_VERSION, type Machine } from "../../../server/inventory/types.js";
import { NetbootResolver } from "../../../server/netboot/resolver.js";
import { requestPathSegments, resolveUnderRoot } from "../../../server/netboot/safe-path.js";
import { TemplateError } from "../../../server/template/render.js";

const machine: Machine = {
  apiVersion: API_VERSION,
  kind: "Machine",
  metadata: { name: "node-01" },
  spec: { pxe: { image: "dir:x" } },
};

describe("safe paths", () => {
  let root = "";
  let disk = "";
  before(() => {
    root = mkdtempSync(path.join(tmpdir(), "metalman-safe-"));
    disk = path.join(root, "disk");
    mkdirSync(path.join(disk, "sub"), { recursive: true });
    writeFileSync(path.join(disk, "file"), "ok");
    writeFileSync(path.join(root, "secret.txt"), "secret");
    symlinkSync("../file", path.join(disk, "sub", "inner"));
    symlinkSync(path.join(root, "secret.txt"), path.join(disk, "outer"));
    symlinkSync(root, path.join(disk, "up"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("rejects unsafe request paths by text", () => {
    for (const bad of ["", ".", "/etc/passwd", "../x", "a/../../x", "sub/..", "a\\b", "a\0b", "./", "//"]) {
      assert.equal(requestPathSegments(bad), undefined, JSON.stringify(bad));
    }
    assert.deepEqual(requestPathSegments("a//b/./c"), ["a", "b", "c"]);
  });

  it("serves regular files and inner symlinks only", async () => {
    assert.equal((await resolveUnderRoot(disk, "file")).ok, true);
    assert.deepEqual(await resolveUnderRoot(disk, "sub//./inner/"), await resolveUnderRoot(disk, "file"));
    assert.equal((await resolveUnderRoot(disk, "sub/inner")).ok, true);
    assert.deepEqual(await resolveUnderRoot(disk, "sub"), { ok: false, reason: "not-a-file" });
    assert.deepEqual(await resolveUnderRoot(disk, "outer"), { ok: false, reason: "outside-root" });
    assert.deepEqual(await resolveUnderRoot(disk, "up/secret.txt"), { ok: false, reason: "outside-root" });
    assert.deepEqual(await resolveUnderRoot(disk, "missing"), { ok: false, reason: "not-found" });
    assert.deepEqual(await resolveUnderRoot(disk, "../secret.txt"), { ok: false, reason: "invalid-path" });
  });
});

describe("NetbootResolver", () => {
  let root = "";
  let lookup: ImageLookup;
  const images: ImageStore = { lookupForMachine: () => lookup };
  before(() => {
    root = mkdtempSync(path.join(tmpdir(), "metalman-resolver-"));
    mkdirSync(path.join(root, "grub"), { recursive: true });
    writeFileSync(path.join(root, "grub", "grub.cfg.tmpl"), "T");
    writeFileSync(path.join(root, "grub", "grub.cfg"), "static loses to template");
    writeFileSync(path.join(root, "bad.tmpl"), "B");
    writeFileSync(path.join(root, "vmlinuz"), "kernel");
    writeFileSync(path.join(root, "cloud-init-user-data-ignored"), "");
    lookup = { state: "ready", ref: "dir:x", diskDir: root, metadata: {} };
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const resolver = new NetbootResolver({
    images,
    render: (source, m, name) => {
      if (source === "B") throw new TemplateError("boom", "exec");
      return `${name}:${m.metadata.name}`;
    },
  });

  it("prefers <path>.tmpl and renders it", async () => {
    const artifact = await resolver.resolve(machine, "grub/grub.cfg");
    assert.equal(artifact.kind, "rendered");
    assert.equal(artifact.kind === "rendered" && artifact.body.toString(), "grub/grub.cfg.tmpl:node-01");
    assert.equal(artifact.kind === "rendered" && artifact.contentType, "text/plain; charset=utf-8");
  });

  it("returns files, not-found for sources, invalid and missing paths", async () => {
    const file = await resolver.resolve(machine, "vmlinuz");
    assert.equal(file.kind === "file" && file.size, 6);
    assert.equal((await resolver.resolve(machine, "grub/grub.cfg.tmpl")).kind, "not-found");
    assert.equal((await resolver.resolve(machine, "../etc/passwd")).kind, "not-found");
    assert.equal((await resolver.resolve(machine, "")).kind, "not-found");
    assert.equal((await resolver.resolve(machine, "nope")).kind, "not-found");
    assert.equal((await resolver.resolve(machine, "grub")).kind, "not-found");
  });

  it("maps render errors and image states", async () => {
    const bad = await resolver.resolve(machine, "bad");
    assert.equal(bad.kind, "error");
    assert.match(bad.kind === "error" ? bad.reason : "", /boom/);
    lookup = { state: "not-ready", ref: "r", reason: "pulling", retryAfterSeconds: 7 };
    assert.deepEqual(await resolver.resolve(machine, "vmlinuz"), {
      kind: "not-ready",
      reason: "pulling",
      retryAfterSeconds: 7,
    });
    lookup = { state: "error", ref: "r", reason: "metadata broken" };
    assert.deepEqual(await resolver.resolve(machine, "vmlinuz"), { kind: "error", reason: "metadata broken" });
    lookup = { state: "ready", ref: "dir:x", diskDir: root, metadata: {} };
  });

  it("serves user-data first, with a default and error mapping", async () => {
    lookup = { state: "not-ready", ref: "r", reason: "pulling", retryAfterSeconds: 5 };
    const dflt = await resolver.resolve(machine, "cloud-init/user-data");
    assert.equal(dflt.kind === "rendered" && dflt.body.toString(), "#cloud-config\n");
    const failing = new NetbootResolver({
      images,
      render: () => "",
      userData: async () => {
        throw new Error("configmap unreadable");
      },
    });
    assert.equal((await failing.resolve(machine, "cloud-init/user-data")).kind, "error");
    assert.equal((await resolver.resolve({ ...machine, spec: {} }, "vmlinuz")).kind, "not-found");
    lookup = { state: "ready", ref: "dir:x", diskDir: root, metadata: {} };
  });
});
