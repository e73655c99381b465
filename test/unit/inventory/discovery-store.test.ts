import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { FileDiscoveryStore } from "../../../server/inventory/discovery-store.js";
import { silentLog, tempDir } from "./helpers.js";

describe("FileDiscoveryStore", () => {
  it("records, merges details and counts, most recent first", async (t) => {
    const { dir: stateDir, beforeRemove } = await tempDir(t);
    let now = Date.parse("2026-01-01T00:00:00Z");
    const store = new FileDiscoveryStore({ stateDir, log: silentLog, now: () => new Date(now) });
    beforeRemove(() => store.close());
    store.record({ mac: "AA:BB:CC:DD:EE:01", arch: 7, vendorClass: "PXEClient:Arch:00007" });
    now += 1000;
    store.record({ mac: "aa:bb:cc:dd:ee:02" });
    now += 1000;
    store.record({ mac: "aa:bb:cc:dd:ee:01", relayAddress: "10.0.0.1" });
    const list = store.list();
    assert.deepEqual(
      list.map((c) => c.mac),
      ["aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:02"],
    );
    assert.equal(list[0]!.count, 2);
    assert.equal(list[0]!.arch, 7);
    assert.equal(list[0]!.relayAddress, "10.0.0.1");
    assert.equal(list[0]!.firstSeen, "2026-01-01T00:00:00.000Z");
    assert.equal(list[0]!.lastSeen, "2026-01-01T00:00:02.000Z");
  });

  it("evicts the least recently seen beyond the bound", async (t) => {
    const { dir: stateDir, beforeRemove } = await tempDir(t);
    const store = new FileDiscoveryStore({ stateDir, log: silentLog, maxEntries: 3 });
    beforeRemove(() => store.close());
    for (let i = 1; i <= 5; i++) store.record({ mac: `aa:bb:cc:dd:ee:0${i}` });
    assert.deepEqual(
      store.list().map((c) => c.mac),
      ["aa:bb:cc:dd:ee:05", "aa:bb:cc:dd:ee:04", "aa:bb:cc:dd:ee:03"],
    );
  });

  it("persists on close (coalesced, not per packet) and loads in a new instance", async (t) => {
    const { dir: stateDir, beforeRemove } = await tempDir(t);
    const store = new FileDiscoveryStore({ stateDir, log: silentLog, flushIntervalMs: 60_000 });
    await store.load();
    for (let i = 0; i < 100; i++) store.record({ mac: "aa:bb:cc:dd:ee:01", uuid: "u-1" });
    store.record({ mac: "aa:bb:cc:dd:ee:02" });
    await assert.rejects(readFile(path.join(stateDir, "discovered.json")), "nothing written before the interval");
    await store.close();
    const again = new FileDiscoveryStore({ stateDir, log: silentLog });
    beforeRemove(() => again.close());
    await again.load();
    const list = again.list();
    assert.deepEqual(
      list.map((c) => [c.mac, c.count]),
      [
        ["aa:bb:cc:dd:ee:02", 1],
        ["aa:bb:cc:dd:ee:01", 100],
      ],
    );
    assert.equal(list[1]!.uuid, "u-1");
    assert.equal(again.remove("AA:BB:CC:DD:EE:02"), true);
    assert.equal(again.list().length, 1);
  });
});
