import assert from "node:assert/strict";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { pack } from "tar-stream";
import { entryComponents, LayerUnpacker } from "../../../server/images/layer-unpack.js";

type Entry = {
  name: string;
  type?: "file" | "directory" | "symlink" | "link" | "fifo";
  body?: string;
  linkname?: string;
  mode?: number;
};

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on("data", (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((resolve) => p.on("end", () => resolve()));
  for (const e of entries) {
    await new Promise<void>((resolve, reject) =>
      p.entry(
        {
          name: e.name,
          type: e.type ?? "file",
          mode: e.mode ?? 0o644,
          ...(e.linkname ? { linkname: e.linkname } : {}),
        },
        e.type === undefined || e.type === "file" ? (e.body ?? "") : "",
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

const scratch = mkdtempSync(path.join(tmpdir(), "oc-unpack-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let n = 0;

async function unpack(layers: Entry[][], gzip = true): Promise<string> {
  const root = path.join(scratch, `root-${++n}`);
  const unpacker = new LayerUnpacker(root, { maxBytes: 1 << 20, maxEntries: 1000 });
  for (const [i, entries] of layers.entries()) {
    const file = path.join(scratch, `layer-${n}-${i}`);
    const tar = await tarOf(entries);
    writeFileSync(file, gzip ? gzipSync(tar) : tar);
    await unpacker.apply(file, gzip ? "gzip" : "none", `layer ${i}`);
  }
  return root;
}

describe("layer unpacking", () => {
  it("keeps only /disk, applies layers in order, keeps relative symlinks and hard links, drops setuid", async () => {
    const root = await unpack([
      [
        { name: "etc/passwd", body: "outside /disk: not kept" },
        { name: "./disk/", type: "directory" },
        { name: "disk/vmlinuz", body: "v1" },
        { name: "disk/grub/grub.cfg.tmpl", body: "menu" },
        { name: "disk/tool", body: "x", mode: 0o4755 },
      ],
      [
        { name: "/disk/vmlinuz", body: "v2" },
        { name: "disk/boot", type: "symlink", linkname: "grub" },
        { name: "disk/kernel", type: "link", linkname: "disk/vmlinuz" },
        { name: "disk/fifo", type: "fifo" },
      ],
    ]);
    assert.equal(existsSync(path.join(root, "etc")), false);
    assert.equal(readFileSync(path.join(root, "disk/vmlinuz"), "utf8"), "v2");
    assert.equal(readFileSync(path.join(root, "disk/grub/grub.cfg.tmpl"), "utf8"), "menu");
    assert.equal(readlinkSync(path.join(root, "disk/boot")), "grub");
    assert.equal(lstatSync(path.join(root, "disk/kernel")).ino, lstatSync(path.join(root, "disk/vmlinuz")).ino);
    assert.equal(lstatSync(path.join(root, "disk/tool")).mode & 0o7000, 0, "setuid dropped");
    assert.equal(existsSync(path.join(root, "disk/fifo")), false, "a FIFO is skipped");
  });

  it("honours whiteouts and opaque directories of lower layers", async () => {
    const root = await unpack(
      [
        [
          { name: "disk/a", body: "a" },
          { name: "disk/dir/old1", body: "1" },
          { name: "disk/dir/old2", body: "2" },
          { name: "disk/gone/x", body: "x" },
        ],
        [
          { name: "disk/.wh.a" },
          { name: "disk/.wh.gone" },
          { name: "disk/dir/new", body: "n" },
          { name: "disk/dir/.wh..wh..opq" },
        ],
      ],
      false,
    );
    assert.equal(existsSync(path.join(root, "disk/a")), false);
    assert.equal(existsSync(path.join(root, "disk/gone")), false);
    assert.equal(existsSync(path.join(root, "disk/dir/old1")), false);
    assert.equal(existsSync(path.join(root, "disk/dir/old2")), false);
    assert.equal(
      readFileSync(path.join(root, "disk/dir/new"), "utf8"),
      "n",
      "the layer's own entry survives its opaque marker",
    );
  });

  it("refuses an entry that climbs out with ..", async () => {
    await assert.rejects(unpack([[{ name: "disk/../../evil", body: "x" }]]), /leaves the image root: refused/);
    assert.throws(() => entryComponents("disk/a/../../..", "t"), /leaves the image root/);
  });

  it("refuses to write through a symlink (a lower layer's link to / must not receive files)", async () => {
    const outside = path.join(scratch, "outside");
    await assert.rejects(
      unpack([
        [{ name: "disk/escape", type: "symlink", linkname: outside }],
        [{ name: "disk/escape/owned", body: "x" }],
      ]),
      /through the symlink disk\/escape: refused/,
    );
    assert.equal(existsSync(path.join(outside, "owned")), false);
    await assert.rejects(
      unpack([
        [
          { name: "disk/l", type: "symlink", linkname: "/etc" },
          { name: "disk/h", type: "link", linkname: "disk/l/passwd" },
        ],
      ]),
      /through the symlink/,
    );
  });

  it("refuses a hard link to a file outside /disk, and stops at the size bound", async () => {
    await assert.rejects(
      unpack([
        [
          { name: "etc/shadow", body: "s" },
          { name: "disk/s", type: "link", linkname: "etc/shadow" },
        ],
      ]),
      /outside \/disk/,
    );
    await assert.rejects(unpack([[{ name: "disk/big", body: "x".repeat((1 << 20) + 1) }]]), /unpacks to more than/);
  });
});
