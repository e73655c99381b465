/**
 * Issue 5 §2.2: saving an inventory file never deletes Machines. An editor that truncates and
 * then writes, or a file caught half-written, keeps serving the last version; only removing
 * the file deletes. A ConfigMap-mounted folder (kubelet's `..data` symlink swap) reloads
 * within seconds. Real files, real fs.watch, default timings.
 */
import assert from "node:assert/strict";
import { mkdir, rename, rm, symlink, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import type { MachineEvent } from "../../../server/inventory/backend.js";
import { FileInventory, type FileInventoryOptions } from "../../../server/inventory/file-inventory.js";
import { machineYaml, silentLog, tempDir, waitFor } from "./helpers.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function open(
  t: { after(fn: () => Promise<void>): void },
  dir: string,
  more: Partial<FileInventoryOptions> = {},
) {
  const { dir: root, beforeRemove } = await tempDir(t);
  const inv = new FileInventory({ dir, stateDir: path.join(root, "state"), log: silentLog, ...more });
  beforeRemove(() => inv.close());
  await inv.load();
  const events: MachineEvent[] = [];
  inv.watch((e) => events.push(e));
  return { inv, events };
}

/** Polls `get` every few ms while `during` runs: any miss is what a PXE client would see as 404. */
async function missesWhile(inv: FileInventory, name: string, during: () => Promise<void>): Promise<number> {
  let misses = 0;
  let done = false;
  const poller = (async () => {
    while (!done) {
      if (inv.get(name) === undefined || inv.byMac("aa:bb:cc:dd:ee:01") === undefined) misses++;
      await sleep(2);
    }
  })();
  await during();
  done = true;
  await poller;
  return misses;
}

describe("inventory saves", () => {
  it("truncate-then-write (`: > node-01.yaml`, then the content) deletes nothing", async (t) => {
    const { dir: root } = await tempDir(t);
    const file = path.join(root, "node-01.yaml");
    const text = machineYaml("node-01");
    await writeFile(file, text);
    const { inv, events } = await open(t, root, { debounceMs: 20 });
    const misses = await missesWhile(inv, "node-01", async () => {
      await writeFile(file, ""); // the truncation, seen by the watch on its own
      await sleep(500);
      await writeFile(file, text);
      await sleep(500);
    });
    assert.equal(misses, 0, "the Machine was never missing");
    assert.deepEqual(
      events.filter((e) => e.type !== "MODIFIED").map((e) => e.type),
      [],
      "no DELETED/ADDED",
    );
    assert.deepEqual(inv.errors(), [], "the restored file is clean again");
  });

  it("a file caught half-written at a document boundary keeps its Machines", async (t) => {
    const { dir: root } = await tempDir(t);
    const file = path.join(root, "rack.yaml");
    const text = `${machineYaml("node-01")}---\n${machineYaml("node-02", { mac: "aa:bb:cc:dd:ee:02", ip: "10.0.0.12" })}`;
    await writeFile(file, text);
    const { inv, events } = await open(t, root, { debounceMs: 20 });
    await writeFile(file, machineYaml("node-01")); // the writer got this far
    await sleep(600);
    assert.ok(inv.get("node-02"), "still served while the file may be being written");
    await writeFile(file, text);
    await sleep(3000);
    assert.ok(inv.get("node-02"));
    assert.deepEqual(
      events.filter((e) => e.type !== "MODIFIED").map((e) => e.type),
      [],
    );
  });

  it("removing the file deletes its Machines (after the grace)", async (t) => {
    const { dir: root } = await tempDir(t);
    const file = path.join(root, "node-01.yaml");
    await writeFile(file, machineYaml("node-01"));
    const { inv, events } = await open(t, root, { debounceMs: 20, deletionGraceMs: 300 });
    await unlink(file);
    const deleted = await waitFor("DELETED", () => events.find((e) => e.type === "DELETED"), 5000);
    assert.equal(deleted.machine.metadata.name, "node-01");
    assert.equal(inv.get("node-01"), undefined);
  });

  it("a ConfigMap folder (kubelet ..data symlink swap) reloads within seconds", async (t) => {
    const { dir: root } = await tempDir(t);
    // kubelet's AtomicWriter layout: <ts>/files, ..data -> <ts>, name -> ..data/name.
    const v1 = path.join(root, "..2026_12_01_10_00_00.000000001");
    await mkdir(v1);
    await writeFile(path.join(v1, "node-01.yaml"), machineYaml("node-01", { ip: "10.0.0.11" }));
    await symlink(path.basename(v1), path.join(root, "..data"));
    await symlink(path.join("..data", "node-01.yaml"), path.join(root, "node-01.yaml"));
    const { inv } = await open(t, root);
    assert.equal(inv.get("node-01")?.spec.pxe?.dhcpLeases?.[0]?.ipv4, "10.0.0.11");

    const v2 = path.join(root, "..2026_12_01_10_05_00.000000002");
    await mkdir(v2);
    await writeFile(path.join(v2, "node-01.yaml"), machineYaml("node-01", { ip: "10.0.0.99" }));
    await symlink(path.basename(v2), path.join(root, "..data_tmp"));
    await rename(path.join(root, "..data_tmp"), path.join(root, "..data"));
    await rm(v1, { recursive: true });
    const started = Date.now();
    await waitFor("the new ConfigMap content", () => inv.byIp("10.0.0.99"), 4000);
    assert.ok(Date.now() - started < 4000);
  });
});
