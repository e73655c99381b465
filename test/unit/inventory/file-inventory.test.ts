import assert from "node:assert/strict";
import { mkdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { Registry } from "prom-client";
import { type MachineEvent, NotFoundError, UNCHANGED } from "../../../server/inventory/backend.js";
import { setCondition } from "../../../server/inventory/conditions.js";
import { FileInventory, type FileInventoryOptions } from "../../../server/inventory/file-inventory.js";
import { EXAMPLE_MACHINE_YAML, inventoryFixture, machineYaml, silentLog, tempDir, waitFor } from "./helpers.js";

function setup(
  t: { after(fn: () => Promise<void>): void },
  files: Record<string, string>,
  opts: Partial<FileInventoryOptions> = {},
) {
  return inventoryFixture(t, files, { deletionGraceMs: 0, ...opts });
}

describe("FileInventory", () => {
  it("loads multi-document files, ignores other kinds and indexes MACs and IPs", async (t) => {
    const secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n";
    const { open } = await setup(t, {
      "a.yaml": machineYaml("node-01", { mac: "AA:BB:CC:DD:EE:01", ip: "10.0.0.11" }) + "---\n" + secret,
      "b.yml": machineYaml("node-02", { mac: "aa:bb:cc:dd:ee:02", ip: "10.0.0.12" }),
      "notes.txt": "not yaml",
    });
    const inv = await open();
    assert.deepEqual(
      inv.list().map((m) => m.metadata.name),
      ["node-01", "node-02"],
    );
    assert.equal(inv.byMac("aa:bb:cc:dd:ee:01")?.metadata.name, "node-01");
    assert.equal(inv.byMac("AA:BB:CC:DD:EE:02")?.metadata.name, "node-02");
    assert.equal(inv.byIp("10.0.0.12")?.metadata.name, "node-02");
    assert.equal(inv.byIp("::ffff:10.0.0.11")?.metadata.name, "node-01");
    assert.equal(inv.byIp("10.0.0.99"), undefined);
    const m = inv.get("node-01")!;
    assert.equal(m.metadata.generation, 1);
    assert.match(m.metadata.resourceVersion!, /^\d+$/);
    assert.ok(m.metadata.uid);
    assert.deepEqual(inv.errors(), []);
    assert.deepEqual(inv.conflicts(), []);
  });

  it("skips invalid files and reports them by file and field; strict mode rejects", async (t) => {
    const { open } = await setup(t, {
      "good.yaml": machineYaml("node-01"),
      "bad.yaml": machineYaml("node-02", { mac: "nope", ip: "10.0.0.12" }),
      "broken.yaml": "apiVersion: [unclosed\n",
    });
    const inv = await open();
    assert.deepEqual(
      inv.list().map((m) => m.metadata.name),
      ["node-01"],
    );
    const messages = inv.errors().map((e) => e.message);
    assert.ok(
      messages.includes("machines/bad.yaml: spec.pxe.dhcpLeases[0].mac: must be a MAC address like aa:bb:cc:dd:ee:ff"),
    );
    assert.ok(messages.some((m) => m.startsWith("machines/broken.yaml: invalid YAML")));
    await assert.rejects(open({ strict: true }), (err: Error) => {
      assert.match(err.message, /has 2 problem\(s\)/);
      assert.match(err.message, /machines\/bad\.yaml: spec\.pxe\.dhcpLeases\[0\]\.mac/);
      return true;
    });
  });

  it("reports duplicate MACs, IPs and names; the first by name (or file) wins", async (t) => {
    const { open } = await setup(t, {
      "1.yaml": machineYaml("node-b", { mac: "aa:bb:cc:dd:ee:01", ip: "10.0.0.11" }),
      "2.yaml": machineYaml("node-a", { mac: "AA:BB:CC:DD:EE:01", ip: "10.0.0.11" }),
      "3.yaml": machineYaml("node-a", { mac: "aa:bb:cc:dd:ee:09", ip: "10.0.0.19" }),
    });
    const inv = await open();
    assert.equal(inv.byMac("aa:bb:cc:dd:ee:01")?.metadata.name, "node-a");
    assert.equal(inv.byIp("10.0.0.11")?.metadata.name, "node-a");
    assert.equal(inv.byMac("aa:bb:cc:dd:ee:09"), undefined, "the second definition of node-a is not served");
    const conflicts = inv.conflicts();
    assert.deepEqual(
      conflicts.map((c) => [c.kind, c.key, c.winner, c.losers]),
      [
        ["name", "node-a", "machines/2.yaml", ["machines/3.yaml"]],
        ["mac", "aa:bb:cc:dd:ee:01", "node-a", ["node-b"]],
        ["ipv4", "10.0.0.11", "node-a", ["node-b"]],
      ],
    );
  });

  it("scopes by site: --site X serves only X; empty site serves only unlabelled Machines", async (t) => {
    const files = {
      "a.yaml": machineYaml("in-a", { site: "rack-a", mac: "aa:bb:cc:dd:ee:01", ip: "10.0.0.1" }),
      "b.yaml": machineYaml("in-b", { site: "rack-b", mac: "aa:bb:cc:dd:ee:02", ip: "10.0.0.2" }),
      "c.yaml": machineYaml("plain", { mac: "aa:bb:cc:dd:ee:03", ip: "10.0.0.3" }),
    };
    const { open } = await setup(t, files);
    const siteA = await open({ site: "rack-a" });
    assert.deepEqual(
      siteA.list().map((m) => m.metadata.name),
      ["in-a"],
    );
    assert.equal(siteA.byMac("aa:bb:cc:dd:ee:02"), undefined);
    const noSite = await open({ site: "" });
    assert.deepEqual(
      noSite.list().map((m) => m.metadata.name),
      ["plain"],
    );
  });

  it("persists status outside the user's files, across instances", async (t) => {
    const { dir, stateDir, open } = await setup(t, { "node-01.yaml": EXAMPLE_MACHINE_YAML });
    const userFile = path.join(dir, "node-01.yaml");
    const inv = await open({ site: "rack-a" });
    const before = inv.get("node-01")!;
    // The file's status is the starting point when no state exists yet.
    assert.equal(before.status?.tpm?.ekPublicKey?.startsWith("-----BEGIN PUBLIC KEY-----"), true);
    const events: MachineEvent[] = [];
    inv.watch((e) => events.push(e));

    const written = await inv.updateStatus("node-01", (m) => ({
      ...m.status,
      tpm: { ekPublicKey: "PINNED" },
      conditions: setCondition(m.status?.conditions, { type: "X", status: "True", reason: "R", message: "" }),
    }));
    assert.equal(written.outcome, "updated");
    const updated = written.machine;
    assert.equal(updated.status?.tpm?.ekPublicKey, "PINNED");
    assert.ok(Number(updated.metadata.resourceVersion) > Number(before.metadata.resourceVersion));
    assert.equal(updated.metadata.generation, before.metadata.generation, "status does not bump generation");
    assert.deepEqual(
      events.map((e) => e.type),
      ["MODIFIED"],
    );
    assert.equal(await readFile(userFile, "utf8"), EXAMPLE_MACHINE_YAML, "user file untouched");
    const onDisk = JSON.parse(await readFile(path.join(stateDir, "status", "node-01.json"), "utf8"));
    assert.equal(onDisk.status.tpm.ekPublicKey, "PINNED");

    const same = await inv.updateStatus("node-01", (m) => ({ ...m.status }));
    assert.equal(same.outcome, "unchanged", "an equal status writes nothing");
    assert.equal((await inv.updateStatus("node-01", () => UNCHANGED)).outcome, "unchanged");
    await assert.rejects(
      inv.updateStatus("nobody", (m) => ({ ...m.status })),
      NotFoundError,
    );

    const again = await open({ site: "rack-a" });
    const reloaded = again.get("node-01")!;
    assert.equal(reloaded.status?.tpm?.ekPublicKey, "PINNED");
    assert.equal(reloaded.metadata.uid, before.metadata.uid);
    assert.equal(reloaded.metadata.generation, before.metadata.generation);
  });

  it("serialises concurrent updates of one Machine without losing any", async (t) => {
    const { open } = await setup(t, { "a.yaml": machineYaml("node-01") });
    const inv = await open();
    await Promise.all(
      Array.from({ length: 10 }, () =>
        inv.updateStatus("node-01", (m) => ({
          ...m.status,
          operations: { rebootCounter: (m.status?.operations?.rebootCounter ?? 0) + 1 },
        })),
      ),
    );
    assert.equal(inv.get("node-01")!.status?.operations?.rebootCounter, 10);
  });

  it("bumps generation on spec changes only; a Machine deleted and created again is a new Machine", async (t) => {
    const { dir, open } = await setup(t, { "a.yaml": machineYaml("node-01", { site: "x" }) });
    const inv = await open({ site: "x" });
    await inv.updateStatus("node-01", () => ({ tpm: { ekPublicKey: "EK" } }));
    const events: MachineEvent[] = [];
    inv.watch((e) => events.push(e));

    await writeFile(path.join(dir, "a.yaml"), machineYaml("node-01", { site: "x", image: "ghcr.io/x/y:v2" }));
    await inv.reload();
    const changed = inv.get("node-01")!;
    assert.equal(changed.metadata.generation, 2);
    assert.equal(changed.status?.tpm?.ekPublicKey, "EK");

    await rm(path.join(dir, "a.yaml"));
    await inv.reload();
    assert.equal(inv.get("node-01"), undefined);
    await writeFile(path.join(dir, "back.yaml"), machineYaml("node-01", { site: "x", image: "ghcr.io/x/y:v2" }));
    await inv.reload();
    const back = inv.get("node-01")!;
    assert.equal(back.status?.tpm, undefined, "no pin inherited from the deleted Machine");
    assert.equal(back.metadata.generation, 1);
    assert.notEqual(back.metadata.uid, changed.metadata.uid);
    assert.deepEqual(
      events.map((e) => e.type),
      ["MODIFIED", "DELETED", "ADDED"],
    );
    assert.equal(inv.sourceDirOf("node-01"), dir);
  });

  it("keeps serving the last valid version when a file turns invalid", async (t) => {
    const { dir, open } = await setup(t, { "a.yaml": machineYaml("node-01") });
    const inv = await open();
    await writeFile(path.join(dir, "a.yaml"), machineYaml("node-01", { mac: "broken" }));
    await inv.reload();
    assert.equal(inv.byMac("aa:bb:cc:dd:ee:01")?.metadata.name, "node-01");
    const messages = inv.errors().map((e) => e.message);
    assert.ok(
      messages.some((m) => m.includes("serving the last valid version of node-01")),
      messages.join("\n"),
    );
    await writeFile(path.join(dir, "a.yaml"), machineYaml("node-01"));
    await inv.reload();
    assert.deepEqual(inv.errors(), []);
  });

  it("reloads on change without a restart (watch)", async (t) => {
    const { dir, open } = await setup(t, {}, { watch: true, debounceMs: 20, rescanIntervalMs: 500 });
    const metrics = new Registry();
    const inv = await open({ metrics });
    const events: MachineEvent[] = [];
    inv.watch((e) => events.push(e));
    await writeFile(path.join(dir, "new.yaml"), machineYaml("node-07", { mac: "aa:bb:cc:dd:ee:07" }));
    const added = await waitFor("ADDED event", () => events.find((e) => e.type === "ADDED"));
    assert.equal(added.machine.metadata.name, "node-07");
    assert.equal(inv.byMac("aa:bb:cc:dd:ee:07")?.metadata.name, "node-07");

    await writeFile(path.join(dir, "new.yaml"), machineYaml("node-07", { mac: "aa:bb:cc:dd:ee:08" }));
    await waitFor("MODIFIED event", () => events.find((e) => e.type === "MODIFIED"));
    assert.equal(inv.byMac("aa:bb:cc:dd:ee:07"), undefined);
    assert.equal(inv.byMac("aa:bb:cc:dd:ee:08")?.metadata.name, "node-07");
    assert.match(await metrics.metrics(), /metalman_inventory_machines 1/);
  });

  it("rescans without reading anything when nothing changed, and re-reads only a changed file", async (t) => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 5; i++)
      files[`m${i}.yaml`] = machineYaml(`node-0${i}`, { mac: `aa:bb:cc:dd:ee:0${i}`, ip: `10.0.0.1${i}` });
    const { dir, open } = await setup(t, files);
    const metrics = new Registry();
    const inv = await open({ metrics });
    const counter = async (name: string) => {
      const metric = (await metrics.getSingleMetric(name)!.get()) as { values: Array<{ value: number }> };
      return metric.values.reduce((sum, v) => sum + v.value, 0);
    };
    assert.equal(await counter("metalman_inventory_file_reads_total"), 5);
    const reloads = await counter("metalman_inventory_reloads_total");
    const events: MachineEvent[] = [];
    inv.watch((e) => events.push(e));
    const before = inv.byMac("aa:bb:cc:dd:ee:02");

    await inv.rescan();
    await inv.rescan();
    assert.equal(await counter("metalman_inventory_file_reads_total"), 5, "no file read again");
    assert.equal(await counter("metalman_inventory_reloads_total"), reloads, "no reload work");
    assert.equal((await counter("metalman_inventory_scans_total")) >= 3, true);
    assert.equal(events.length, 0);
    assert.equal(inv.byMac("aa:bb:cc:dd:ee:02"), before, "the very same Machine object is served");

    const changed = path.join(dir, "m3.yaml");
    await writeFile(changed, machineYaml("node-03", { mac: "aa:bb:cc:dd:ee:33", ip: "10.0.0.13" }));
    // Make sure the change is visible even on a filesystem with coarse mtimes.
    const later = new Date(Date.now() + 10_000);
    await utimes(changed, later, later);
    await inv.rescan();
    assert.equal(await counter("metalman_inventory_file_reads_total"), 6, "only the changed file is read");
    assert.equal(await counter("metalman_inventory_reloads_total"), reloads + 1);
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.machine.metadata.name}`),
      ["MODIFIED node-03"],
    );
    assert.equal(inv.byMac("aa:bb:cc:dd:ee:33")?.metadata.name, "node-03");
    assert.equal(inv.byMac("aa:bb:cc:dd:ee:03"), undefined);
    assert.equal(inv.byMac("aa:bb:cc:dd:ee:02"), before, "untouched Machines are kept as they were");

    await rm(path.join(dir, "m4.yaml"));
    await writeFile(path.join(dir, "m5.yaml"), machineYaml("node-05", { mac: "aa:bb:cc:dd:ee:05", ip: "10.0.0.15" }));
    await inv.rescan();
    assert.equal(await counter("metalman_inventory_file_reads_total"), 7, "only the added file is read");
    assert.equal(inv.get("node-04"), undefined);
    assert.equal(inv.byIp("10.0.0.15")?.metadata.name, "node-05");
    assert.deepEqual(
      inv.list().map((m) => m.metadata.name),
      ["node-00", "node-01", "node-02", "node-03", "node-05"],
    );
  });

  it("re-reads only the file a watch event names", async (t) => {
    const { dir, open } = await setup(
      t,
      {
        "a.yaml": machineYaml("node-01"),
        "b.yaml": machineYaml("node-02", { mac: "aa:bb:cc:dd:ee:02", ip: "10.0.0.12" }),
      },
      // A long rescan interval: only the watch can pick up the change within the test.
      { watch: true, debounceMs: 20, rescanIntervalMs: 600_000 },
    );
    const metrics = new Registry();
    const inv = await open({ metrics });
    const reads = async () =>
      (
        (await metrics.getSingleMetric("metalman_inventory_file_reads_total")!.get()) as {
          values: Array<{ value: number }>;
        }
      ).values[0]!.value;
    assert.equal(await reads(), 2);
    await writeFile(path.join(dir, "b.yaml"), machineYaml("node-02", { mac: "aa:bb:cc:dd:ee:22", ip: "10.0.0.12" }));
    await waitFor("the change", () => inv.byMac("aa:bb:cc:dd:ee:22"));
    assert.equal(await reads(), 3);
    assert.equal(inv.byMac("aa:bb:cc:dd:ee:01")?.metadata.name, "node-01");
  });

  it("serves deep-frozen Machines; updateStatus's result is frozen too", async (t) => {
    const { open } = await setup(t, { "a.yaml": machineYaml("node-01") });
    const inv = await open();
    const machine = inv.byMac("aa:bb:cc:dd:ee:01")!;
    assert.ok(Object.isFrozen(machine));
    assert.ok(Object.isFrozen(machine.spec.pxe!.dhcpLeases![0]));
    assert.throws(() => {
      (machine.spec.pxe as { image: string }).image = "changed";
    }, TypeError);
    assert.throws(() => {
      machine.metadata.name = "other";
    }, TypeError);
    assert.equal(inv.byIp("10.0.0.11"), machine, "lookups share one object, no copy");

    const { machine: updated } = await inv.updateStatus("node-01", (current) => {
      assert.ok(Object.isFrozen(current), "mutate sees the stored Machine and returns a new status");
      return { ...current.status, tpm: { ekPublicKey: "EK" } };
    });
    assert.ok(Object.isFrozen(updated.status));
    assert.equal(updated.status?.tpm?.ekPublicKey, "EK");
    assert.equal(inv.get("node-01"), updated);
    assert.equal(machine.status?.tpm, undefined, "a Machine handed out earlier never changes");
  });

  it("reports a missing inventory folder and picks it up once it exists", async (t) => {
    const { dir: root, beforeRemove } = await tempDir(t);
    const dir = path.join(root, "later");
    const inv = new FileInventory({ dir, stateDir: path.join(root, "state"), log: silentLog, watch: false });
    beforeRemove(() => inv.close());
    await inv.load();
    assert.equal(inv.errors().length, 1);
    await mkdir(dir);
    await writeFile(path.join(dir, "a.yaml"), machineYaml("node-01"));
    await inv.reload();
    assert.deepEqual(inv.errors(), []);
    assert.equal(inv.list().length, 1);
  });
});
