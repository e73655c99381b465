import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { DirImageStore } from "../../../server/images/dir-image-store.js";
import { API_VERSION, type Machine } from "../../../server/inventory/types.js";

const machine = (image: string): Machine => ({
  apiVersion: API_VERSION,
  kind: "Machine",
  metadata: { name: "m" },
  spec: { pxe: { image } },
});

describe("DirImageStore", () => {
  let root = "";
  let store: DirImageStore;
  let clock = 1_000_000;
  before(() => {
    root = mkdtempSync(path.join(tmpdir(), "metalman-images-"));
    mkdirSync(path.join(root, "img", "disk"), { recursive: true });
    mkdirSync(path.join(root, "bare", "disk"), { recursive: true });
    mkdirSync(path.join(root, "bad", "disk"), { recursive: true });
    mkdirSync(path.join(root, "list", "disk"), { recursive: true });
    writeFileSync(path.join(root, "img", "disk", "metadata.yaml"), "dhcpBootImageName: shimx64.efi\n");
    writeFileSync(path.join(root, "bad", "disk", "metadata.yaml"), "dhcpBootImageName: [unclosed\n");
    writeFileSync(path.join(root, "list", "disk", "metadata.yaml"), "- a\n- b\n");
    store = new DirImageStore({ baseDirOf: () => root, log: pino({ level: "silent" }), now: () => clock });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("resolves relative and absolute dir: refs with metadata", () => {
    const relative = store.lookupForMachine(machine("dir:img"));
    assert.deepEqual(relative, {
      state: "ready",
      ref: "dir:img",
      diskDir: path.join(root, "img", "disk"),
      metadata: { dhcpBootImageName: "shimx64.efi" },
    });
    const absolute = store.lookupForMachine(machine(`dir:${path.join(root, "img")}`));
    assert.equal(absolute.state, "ready");
  });

  it("treats a missing metadata.yaml as empty metadata", () => {
    const result = store.lookupForMachine(machine("dir:bare"));
    assert.equal(result.state, "ready");
    assert.deepEqual(result.state === "ready" && result.metadata, {});
  });

  it("reports parse errors and non-mapping metadata as errors", () => {
    assert.equal(store.lookupForMachine(machine("dir:bad")).state, "error");
    assert.equal(store.lookupForMachine(machine("dir:list")).state, "error");
  });

  it("reuses a lookup for revalidateMs, then re-reads metadata.yaml when its mtime changed", () => {
    const file = path.join(root, "img", "disk", "metadata.yaml");
    const first = store.lookupForMachine(machine("dir:img"));
    assert.equal(first.state, "ready");
    assert.ok(Object.isFrozen(first));
    writeFileSync(file, "dhcpBootImageName: shimaa64.efi\n");
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    clock += 1999;
    assert.equal(store.lookupForMachine(machine("dir:img")), first, "within revalidateMs: the cached lookup");
    clock += 1;
    const result = store.lookupForMachine(machine("dir:img"));
    assert.equal(result.state === "ready" && result.metadata.dhcpBootImageName, "shimaa64.efi");
  });

  it("caches per base folder: the same relative ref under another folder is looked up on its own", () => {
    let base = root;
    const perBase = new DirImageStore({ baseDirOf: () => base, log: pino({ level: "silent" }), now: () => clock });
    assert.equal(perBase.lookupForMachine(machine("dir:img")).state, "ready");
    base = path.join(root, "nowhere");
    assert.equal(perBase.lookupForMachine(machine("dir:img")).state, "not-ready");
  });

  it("answers not-ready for a missing folder and for registry refs", () => {
    const missing = store.lookupForMachine(machine("dir:nope"));
    assert.equal(missing.state, "not-ready");
    assert.match(missing.state === "not-ready" ? missing.reason : "", /does not exist/);
    assert.equal(missing.state === "not-ready" && missing.retryAfterSeconds, 5);
    assert.deepEqual(store.lookupForMachine(machine("ghcr.io/azure/images/host-ubuntu2404:v1")), {
      state: "not-ready",
      ref: "ghcr.io/azure/images/host-ubuntu2404:v1",
      reason: "registry images are not yet available in this version",
      retryAfterSeconds: 5,
    });
  });

  it("refuses relative refs without a base folder and machines without an image", () => {
    const noBase = new DirImageStore({ baseDirOf: () => undefined, log: pino({ level: "silent" }) });
    assert.equal(noBase.lookupForMachine(machine("dir:img")).state, "error");
    assert.equal(noBase.lookupForMachine({ ...machine(""), spec: {} }).state, "error");
  });
});

describe("DirImageStore image roots (§4.4)", () => {
  let base = "";
  before(() => {
    base = mkdtempSync(path.join(tmpdir(), "metalman-roots-"));
    mkdirSync(path.join(base, "roots", "a", "img", "disk"), { recursive: true });
    mkdirSync(path.join(base, "roots", "b", "img", "disk"), { recursive: true });
    mkdirSync(path.join(base, "outside", "disk"), { recursive: true });
    mkdirSync(path.join(base, "roots", "a-sibling", "disk"), { recursive: true });
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  const store = () =>
    new DirImageStore({
      baseDirOf: () => path.join(base, "roots", "a"),
      log: pino({ level: "silent" }),
      imageRoots: [path.join(base, "roots", "a"), path.join(base, "roots", "b")],
    });

  it("serves dir: images inside any root, naming the root", () => {
    const inA = store().lookupForMachine(machine("dir:img"));
    assert.equal(inA.state, "ready");
    assert.equal(inA.state === "ready" && inA.root, path.join(base, "roots", "a"));
    const inB = store().lookupForMachine(machine(`dir:${path.join(base, "roots", "b", "img")}`));
    assert.equal(inB.state === "ready" && inB.root, path.join(base, "roots", "b"));
  });

  it("refuses dir: images outside every root, by absolute path, by .. and by a prefix look-alike", () => {
    for (const ref of [
      `dir:${path.join(base, "outside")}`,
      "dir:../../outside",
      `dir:${path.join(base, "roots", "a", "..", "..", "outside")}`,
      `dir:${path.join(base, "roots", "a-sibling")}`,
      "dir:/",
    ]) {
      const lookup = store().lookupForMachine(machine(ref));
      assert.equal(lookup.state, "error", ref);
      assert.match(lookup.state === "error" ? lookup.reason : "", /is not under an --image-root/, ref);
    }
  });
});
