/**
 * §4.1 and §4.4 of issue 5 over the real file system: template sources are never served raw in
 * any path form, and every component of an artifact path is opened beneath the root, by both
 * openers (openat2 through the native addon, and the O_NOFOLLOW component walk), including
 * while a directory is swapped for an escaping symlink in a loop (bounded).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { ImageLookup, ImageStore } from "../../../server/images/image-store.js";
import { API_VERSION, type Machine } from "../../../server/inventory/types.js";
import { NetbootResolver } from "../../../server/netboot/resolver.js";
import {
  type BeneathOpener,
  beneathOpener,
  isTemplateSourceName,
  openBeneath,
  requestPathSegments,
  walkBeneath,
} from "../../../server/netboot/safe-path.js";

const machine: Machine = {
  apiVersion: API_VERSION,
  kind: "Machine",
  metadata: { name: "node-01" },
  spec: { pxe: { image: "dir:x" } },
};

const native = beneathOpener();
const openers: [string, BeneathOpener][] = [["walk", walkBeneath]];
if (native.kind === "openat2") openers.push(["openat2", native.open]);

describe("opener choice", () => {
  it("falls back to the component walk when the addon is missing or not wanted", () => {
    assert.equal(beneathOpener({ addonPath: "/nonexistent/metalman_open_beneath.node" }).kind, "walk");
    assert.equal(beneathOpener({ preferNative: false }).kind, "walk");
    // On this Linux with the addon built, openat2 is used (CI builds the addon with npm ci).
    assert.equal(native.kind, "openat2");
  });
});

describe("template sources by text", () => {
  it("decides on the cleaned path and in any case", () => {
    for (const form of [
      "grub/grub.cfg.tmpl",
      "grub/grub.cfg.tmpl/",
      "grub//grub.cfg.tmpl//",
      "./grub/./grub.cfg.tmpl",
      "grub/grub.cfg.TMPL",
      "grub/grub.cfg.TmPl/",
    ]) {
      const segments = requestPathSegments(form);
      assert.ok(segments, form);
      assert.equal(isTemplateSourceName(segments.at(-1)!), true, form);
    }
    for (const form of ["grub/grub.cfg", "grub/tmpl", "grub/grub.tmpl.cfg", "tmpl/x"]) {
      assert.equal(isTemplateSourceName(requestPathSegments(form)!.at(-1)!), false, form);
    }
    for (const bad of ["grub/grub.cfg.tmpl\0", "a\nb", "a\rb", "a\u007fb", "a\\b", "../x", "x/../../y"]) {
      assert.equal(requestPathSegments(bad), undefined, JSON.stringify(bad));
    }
  });
});

for (const [kind, opener] of openers) {
  describe(`opened beneath the root (${kind})`, () => {
    let base = "";
    let root = "";
    before(() => {
      base = mkdtempSync(path.join(tmpdir(), "metalman-beneath-"));
      root = path.join(base, "root");
      mkdirSync(path.join(root, "a", "b"), { recursive: true });
      writeFileSync(path.join(root, "a", "b", "file"), "inside");
      writeFileSync(path.join(root, "x.tmpl"), "{{ .Secret }}");
      writeFileSync(path.join(base, "secret"), "outside");
      mkdirSync(path.join(base, "outdir", "b"), { recursive: true });
      writeFileSync(path.join(base, "outdir", "b", "file"), "outside");
      symlinkSync("b/file", path.join(root, "a", "rel"));
      symlinkSync("../a/b/file", path.join(root, "a", "up-in"));
      symlinkSync("../../secret", path.join(root, "a", "up-out"));
      symlinkSync(path.join(root, "a", "b", "file"), path.join(root, "a", "abs-in"));
      symlinkSync("/etc/passwd", path.join(root, "abs-out"));
      symlinkSync("../outdir", path.join(root, "dir-out"));
      symlinkSync("x.tmpl", path.join(root, "looks-static"));
      symlinkSync("loop2", path.join(root, "loop1"));
      symlinkSync("loop1", path.join(root, "loop2"));
      symlinkSync("/proc/self/root/etc/passwd", path.join(root, "magic"));
      execFileSync("mkfifo", [path.join(root, "fifo")]);
    });
    after(() => rmSync(base, { recursive: true, force: true }));

    const read = async (rel: string, allowTemplateSource = false) => {
      const result = await openBeneath(root, rel, opener, { allowTemplateSource });
      if (!result.ok) return result.reason;
      try {
        return (await result.handle.readFile("utf8")) as string;
      } finally {
        await result.handle.close();
      }
    };

    it("opens files and symlinks that stay inside", async () => {
      assert.equal(await read("a/b/file"), "inside");
      assert.equal(await read("a/rel"), "inside");
      assert.equal(await read("a/up-in"), "inside");
    });

    it("refuses an escape at every component", async () => {
      assert.equal(await read("a/up-out"), "outside-root");
      assert.equal(await read("abs-out"), "outside-root");
      assert.equal(await read("a/abs-in"), "outside-root", "absolute symlinks are refused even into the root");
      assert.equal(await read("dir-out/b/file"), "outside-root", "first component");
      assert.equal(await read("magic"), "outside-root");
      assert.equal(await read("loop1"), "outside-root");
      assert.equal(await read("../secret"), "outside-root");
    });

    it("refuses directories, FIFOs (without blocking) and missing files", async () => {
      assert.equal(await read("a"), "not-a-file");
      assert.equal(await read("fifo"), "not-a-file");
      assert.equal(await read("nope"), "not-found");
      assert.equal(await read("a/b/file/x"), "not-found");
    });

    it("refuses a file whose real name is a template source unless rendering", async () => {
      assert.equal(await read("looks-static"), "template-source");
      assert.equal(await read("x.tmpl"), "template-source");
      assert.equal(await read("x.tmpl", true), "{{ .Secret }}");
    });

    it("never leaves the root while a component is swapped for an escaping symlink (bounded race)", async () => {
      // The attacker flips root/race between a real directory and a symlink to ../outdir as fast
      // as it can, in a child process; we resolve race/b/file the whole time.
      mkdirSync(path.join(root, "race-real", "b"), { recursive: true });
      writeFileSync(path.join(root, "race-real", "b", "file"), "inside");
      const flipper = path.join(base, "flip.sh");
      writeFileSync(
        flipper,
        `cd ${JSON.stringify(root)}\nfor i in $(seq 1 20000); do rm -f race; mv race-real race; mv race race-real; ln -s ../outdir race; done\n`,
      );
      const { spawn } = await import("node:child_process");
      const child = spawn("bash", [flipper], { stdio: "ignore" });
      const counts = { inside: 0, outside: 0, refused: 0 };
      try {
        const deadline = Date.now() + 3000;
        for (let i = 0; i < 20_000 && Date.now() < deadline && child.exitCode === null; i++) {
          const got = await read("race/b/file");
          if (got === "inside") counts.inside++;
          else if (got === "outside") counts.outside++;
          else counts.refused++;
        }
      } finally {
        child.kill("SIGKILL");
        await new Promise((resolve) => child.once("close", resolve));
        try {
          unlinkSync(path.join(root, "race.tmp"));
        } catch {}
      }
      assert.equal(counts.outside, 0, JSON.stringify(counts));
      assert.ok(counts.inside + counts.refused > 100, JSON.stringify(counts));
    });
  });
}

describe("NetbootResolver confinement", () => {
  let base = "";
  let lookup: ImageLookup;
  const images: ImageStore = { lookupForMachine: () => lookup };
  const resolver = new NetbootResolver({ images, render: (_s, m) => `rendered for ${m.metadata.name}` });
  before(() => {
    base = mkdtempSync(path.join(tmpdir(), "metalman-confine-"));
    mkdirSync(path.join(base, "roots", "img", "disk", "grub"), { recursive: true });
    writeFileSync(path.join(base, "roots", "img", "disk", "grub", "grub.cfg.tmpl"), "T");
    writeFileSync(path.join(base, "roots", "img", "disk", "vmlinuz"), "kernel");
    mkdirSync(path.join(base, "elsewhere", "disk"), { recursive: true });
    writeFileSync(path.join(base, "elsewhere", "disk", "vmlinuz"), "foreign");
    symlinkSync("../elsewhere", path.join(base, "roots", "link"));
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  it("opens the image's disk/ beneath its image root", async () => {
    const root = path.join(base, "roots");
    lookup = { state: "ready", ref: "dir:x", diskDir: path.join(root, "img", "disk"), metadata: {}, root };
    const file = await resolver.resolve(machine, "vmlinuz");
    assert.equal(file.kind, "file");
    assert.ok(file.kind === "file" && file.open);
    const handle = await file.open();
    assert.equal(await handle.readFile("utf8"), "kernel");
    await handle.close();
    assert.equal((await resolver.resolve(machine, "grub/grub.cfg")).kind, "rendered");
    // An image folder reached through a symlink that leaves the root is refused.
    lookup = { state: "ready", ref: "dir:x", diskDir: path.join(root, "link", "disk"), metadata: {}, root };
    assert.deepEqual(await resolver.resolve(machine, "vmlinuz"), { kind: "not-found", reason: "outside-root" });
  });

  it("the consumer's open() resolves again, beneath the root", async () => {
    const root = path.join(base, "roots");
    lookup = { state: "ready", ref: "dir:x", diskDir: path.join(root, "img", "disk"), metadata: {}, root };
    const file = await resolver.resolve(machine, "vmlinuz");
    assert.ok(file.kind === "file" && file.open);
    // Swapped after resolution: the image folder now leads outside.
    renameSync(path.join(root, "img"), path.join(root, "img-old"));
    symlinkSync("../elsewhere", path.join(root, "img"));
    try {
      await assert.rejects(file.open());
    } finally {
      unlinkSync(path.join(root, "img"));
      renameSync(path.join(root, "img-old"), path.join(root, "img"));
    }
  });
});
