/**
 * Appliance upgrades from the API (server/appliance/upgrade-spool.ts behind
 * `POST /api/v1/appliance/upgrade`): a bundle made as make-update.sh makes it (bundle.env first,
 * GNU tar) is streamed to the spool and handed to the root side as pending.tar + pending.json; a
 * second upload while one is pending is refused; a file that is not a bundle, or is too large, is
 * refused and leaves nothing behind; the root side's status.json is what GET answers.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { unixSocketIdentity } from "../../../server/api/actor.js";
import { buildManagementApp } from "../../../server/api/app.js";
import { UpgradeSpool } from "../../../server/appliance/upgrade-spool.js";
import { BootEventBus } from "../../../server/events/boot-events.js";
import { FileInventory } from "../../../server/inventory/file-inventory.js";
import { silentLog } from "../api/helpers.js";

describe("appliance upgrade spool (POST /api/v1/appliance/upgrade)", () => {
  let root: string;
  let spoolDir: string;
  let bundle: Buffer;
  let inventory: FileInventory;
  let app: FastifyInstance;
  let small: FastifyInstance;

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), "mm-upgrade-"));
    spoolDir = path.join(root, "upgrade");
    // A bundle as build/appliance/make-update.sh writes it: GNU tar, bundle.env first, sparse root.
    const work = path.join(root, "bundle");
    await mkdir(work);
    await writeFile(
      path.join(work, "bundle.env"),
      "VERSION=0.2.0\nKERNEL=6.1.0-50-amd64\nSHA256_root=aa\nSHA256_vmlinuz=bb\nSHA256_initrd=cc\n",
    );
    execFileSync("truncate", ["-s", "8M", path.join(work, "root.ext4")]);
    for (const f of ["vmlinuz", "initrd.img"]) await writeFile(path.join(work, f), `${f} bytes`);
    const tar = path.join(root, "bundle.tar");
    execFileSync("tar", ["-C", work, "--sparse", "-cf", tar, "bundle.env", "root.ext4", "vmlinuz", "initrd.img"]);
    bundle = await readFile(tar);
    await mkdir(path.join(root, "machines"));
    inventory = new FileInventory({
      dir: path.join(root, "machines"),
      stateDir: path.join(root, "state"),
      log: silentLog,
      watch: false,
    });
    await inventory.load();
    const make = (spool: UpgradeSpool) =>
      buildManagementApp({
        log: silentLog,
        backend: inventory,
        events: new BootEventBus(),
        identify: unixSocketIdentity,
        upgrades: spool,
      });
    app = make(new UpgradeSpool({ dir: spoolDir, now: () => new Date("2026-12-02T01:00:00Z") }));
    small = make(new UpgradeSpool({ dir: path.join(root, "small"), maxBytes: 4096 }));
    await app.ready();
    await small.ready();
  });
  after(async () => {
    await app.close();
    await small.close();
    await inventory.close();
    await rm(root, { recursive: true, force: true });
  });

  const upload = (target: FastifyInstance, payload: Buffer, type = "application/x-tar") =>
    target.inject({ method: "POST", url: "/api/v1/appliance/upgrade", headers: { "content-type": type }, payload });

  it("refuses what is not a bundle and keeps nothing of it", async () => {
    const res = await upload(app, Buffer.from("not a tar at all, just some bytes".repeat(40)));
    assert.equal(res.statusCode, 422, res.body);
    assert.equal(res.json().error.code, "INVALID_BUNDLE");
    assert.match(res.json().error.detail, /not a tar archive|shorter than one tar header/);
    assert.deepEqual(await readdir(spoolDir), []);
    const json = await app.inject({
      method: "POST",
      url: "/api/v1/appliance/upgrade",
      headers: { "content-type": "application/json" },
      payload: "{}",
    });
    assert.equal(json.statusCode, 415, json.body);
  });

  it("refuses a bundle over the size limit, by its content-length or while streaming", async () => {
    const res = await upload(small, bundle);
    assert.equal(res.statusCode, 413, res.body);
    assert.equal(res.json().error.code, "PAYLOAD_TOO_LARGE");
    assert.deepEqual(await readdir(path.join(root, "small")).catch(() => []), []);
    // Without a content-length (a chunked upload) the bound holds while streaming, and the partial file goes.
    const spool = new UpgradeSpool({ dir: path.join(root, "small-stream"), maxBytes: 4096 });
    await assert.rejects(
      spool.accept(Readable.from([bundle.subarray(0, 3000), bundle.subarray(3000, 6000)]), { requestedBy: "t" }),
      (err: Error & { reason?: string }) => err.reason === "too-large",
    );
    assert.deepEqual(await readdir(path.join(root, "small-stream")), []);
  });

  it("stores a bundle for the root side (pending.json, then pending.tar) and says so", async () => {
    const res = await upload(app, bundle);
    assert.equal(res.statusCode, 202, res.body);
    const body = res.json();
    assert.equal(body.state, "pending");
    assert.equal(body.version, "0.2.0");
    assert.equal(body.bytes, bundle.length);
    assert.match(body.sha256, /^[0-9a-f]{64}$/);
    assert.equal(body.requestedBy, "unknown", "the caller as the socket names it");
    assert.deepEqual((await readdir(spoolDir)).sort(), ["pending.json", "pending.tar"]);
    assert.deepEqual(await readFile(path.join(spoolDir, "pending.tar")), bundle);
    const status = await app.inject({ method: "GET", url: "/api/v1/appliance/upgrade" });
    assert.equal(status.json().state, "pending");
    assert.equal(status.json().version, "0.2.0");
  });

  it("refuses a second upload while one is pending", async () => {
    const res = await upload(app, bundle);
    assert.equal(res.statusCode, 409, res.body);
    assert.equal(res.json().error.code, "UPGRADE_IN_PROGRESS");
  });

  it("answers the root side's status once it took the bundle (installing, failed)", async () => {
    // What metalman-upgrade-spool does: takes pending.tar, writes status.json.
    await rm(path.join(spoolDir, "pending.tar"));
    await rm(path.join(spoolDir, "pending.json"));
    await writeFile(
      path.join(spoolDir, "status.json"),
      JSON.stringify({ state: "failed", message: "0.2.0 is older than 0.3.0", version: "0.2.0", requestedBy: "root" }),
    );
    const status = await app.inject({ method: "GET", url: "/api/v1/appliance/upgrade" });
    assert.equal(status.json().state, "failed");
    assert.match(status.json().message, /older/);
    // A failed one does not block the next upload.
    const again = await upload(app, bundle);
    assert.equal(again.statusCode, 202, again.body);
  });

  it("is not served without a spool (not an appliance image)", async () => {
    const plain = buildManagementApp({
      log: silentLog,
      backend: inventory,
      events: new BootEventBus(),
      identify: unixSocketIdentity,
    });
    await plain.ready();
    try {
      const res = await upload(plain, bundle);
      assert.equal(res.statusCode, 404, res.body);
    } finally {
      await plain.close();
    }
  });
});
