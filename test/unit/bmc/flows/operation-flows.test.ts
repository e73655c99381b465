/**
 * Issue 6 §5: MachineOperation host operations (spec §2.7, §8.9) through the real operation
 * store of a FileInventory and an in-memory BMC: targets, stages, phases, aggregation,
 * bounded attempts, serialisation, quarantine, and deletion after ttlSecondsAfterFinished.
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import type { MachineOperation, OperationKind } from "../../../../server/inventory/machine-operation.js";
import { rig } from "./setup.js";

const MIN = 60_000;

function op(name: string, kind: OperationKind, extra: Partial<MachineOperation["spec"]> = {}) {
  return { metadata: { name }, spec: { machineRef: "node-01", operationKind: kind, ...extra } };
}

/** The installer's report on node-01: Repaved=True, now (by the rig's clock). */
async function repaved(r: Awaited<ReturnType<typeof rig>>): Promise<void> {
  await r.inv.updateStatus("node-01", (m) => ({
    ...m.status,
    conditions: [
      {
        type: "Repaved",
        status: "True",
        reason: "Succeeded",
        message: "",
        lastTransitionTime: new Date(r.clock.now()).toISOString(),
      },
    ],
  }));
}

describe("MachineOperation host operations", { timeout: 60_000 }, () => {
  it("HostReboot: disables the override, ForceOff until Off, On until On; targets, stages, Completed; TTL deletes it", async (t) => {
    const r = await rig(t);
    r.driver.lag = true;
    r.driver.override = { target: "Pxe", enabled: "Continuous" };
    r.rec.start();
    await r.settle();
    await r.inv.operations.create(op("reboot-1", "HostReboot", { ttlSecondsAfterFinished: 300 }));
    await r.settle();
    let status = r.inv.operations.get("reboot-1")?.status;
    assert.equal(status?.phase, "InProgress");
    assert.equal(status?.targets?.[0]?.stage, "WaitingOff");
    assert.equal(status?.targets?.[0]?.message, "sent ForceOff");
    assert.equal(status?.targets?.[0]?.attempts, 1);
    assert.equal(status?.message, "targets complete=0 failed=0 inProgress=1 pending=0");
    assert.deepEqual(r.driver.override, { target: "None", enabled: "Disabled" });
    r.driver.settle();
    await r.advance(5000);
    assert.equal(r.inv.operations.get("reboot-1")?.status?.targets?.[0]?.stage, "WaitingOn");
    r.driver.settle();
    await r.advance(5000);
    status = r.inv.operations.get("reboot-1")?.status;
    assert.equal(status?.phase, "Complete");
    assert.equal(status?.targets?.[0]?.message, "HostReboot completed");
    assert.ok(status?.completedAt);
    const completed = status?.conditions?.find((c) => c.type === "Completed");
    assert.deepEqual([completed?.status, completed?.reason], ["True", "Succeeded"]);
    assert.deepEqual(r.driver.boots, ["Hdd"]);
    // The counter flow did not act meanwhile (no counters), and only one ForceOff/On went out.
    assert.equal(r.driver.count("power:ForceOff"), 1);
    assert.equal(r.driver.count("power:On"), 1);
    assert.ok(r.seen.some((e) => e.step === "operation.done" && e.result === "ok"));
    await r.advance(299_000);
    assert.ok(r.inv.operations.get("reboot-1"), "kept until completedAt + ttl");
    await r.advance(2000);
    assert.equal(r.inv.operations.get("reboot-1"), undefined);
  });

  it("HostPowerOff completes at once when Off; HostPowerOn powers on", async (t) => {
    const r = await rig(t);
    r.driver.state = "Off";
    r.rec.start();
    await r.settle();
    await r.inv.operations.create(op("off-1", "HostPowerOff"));
    await r.settle();
    assert.equal(r.inv.operations.get("off-1")?.status?.phase, "Complete");
    assert.equal(r.inv.operations.get("off-1")?.status?.targets?.[0]?.message, "HostPowerOff completed");
    assert.equal(r.driver.count("power:ForceOff"), 0);
    await r.inv.operations.create(op("on-1", "HostPowerOn"));
    await r.settle();
    assert.equal(r.inv.operations.get("on-1")?.status?.phase, "Complete");
    assert.equal(r.driver.state, "On");
  });

  it("HostPowerOff that never reaches Off fails after 3 attempts, 5 minutes apart", async (t) => {
    const r = await rig(t);
    r.driver.lag = true; // stays PoweringOff
    r.rec.start();
    await r.settle();
    await r.inv.operations.create(op("off-2", "HostPowerOff"));
    await r.settle();
    await r.advance(16 * MIN);
    const status = r.inv.operations.get("off-2")?.status;
    assert.equal(r.driver.count("power:ForceOff"), 3);
    assert.equal(status?.phase, "Failed");
    assert.equal(status?.targets?.[0]?.message, "ExecutionFailed: timed out waiting for power off after 3 attempts");
    const completed = status?.conditions?.find((c) => c.type === "Completed");
    assert.deepEqual([completed?.status, completed?.reason], ["False", "TargetFailed"]);
  });

  it("fails MachineNotFound, UnsupportedTarget; selectors pick labelled Machines in name order, one at a time", async (t) => {
    const r = await rig(t, { machines: ["node-01", "node-02"] });
    await writeFile(
      path.join(r.dir, "plain.yaml"),
      "apiVersion: unbounded-cloud.io/v1alpha3\nkind: Machine\nmetadata: {name: plain}\nspec:\n  pxe:\n    image: x\n",
    );
    await r.inv.reload();
    r.rec.start();
    await r.settle();
    await r.inv.operations.create(op("a", "HostReboot", { machineRef: "ghost" }));
    await r.inv.operations.create(op("b", "HostReboot", { machineRef: "plain" }));
    await r.settle();
    assert.match(r.inv.operations.get("a")?.status?.message ?? "", /^MachineNotFound/);
    assert.match(r.inv.operations.get("b")?.status?.message ?? "", /^UnsupportedTarget/);
    await r.inv.operations.create({
      metadata: { name: "rack" },
      spec: { machineSelector: { matchLabels: { rack: "a" } }, operationKind: "HostPowerOff" },
    });
    await r.settle();
    const status = r.inv.operations.get("rack")?.status;
    assert.deepEqual(
      status?.targets?.map((x) => [x.machineRef, x.phase]),
      [
        ["node-01", "Complete"],
        ["node-02", "Complete"],
      ],
    );
    assert.equal(status?.message, "targets complete=2 failed=0 inProgress=0 pending=0");
  });

  it("an operation waits for an older one on the same Machine", async (t) => {
    const r = await rig(t);
    r.driver.lag = true;
    r.rec.start();
    await r.settle();
    await r.inv.operations.create(op("first", "HostPowerOff"));
    await r.settle();
    // Same creationTimestamp (the store runs on the test's clock): the name breaks the tie.
    await r.inv.operations.create(op("second", "HostPowerOn"));
    await r.settle();
    assert.equal(r.inv.operations.get("second")?.status?.phase, "Pending");
    assert.equal(r.inv.operations.get("second")?.status?.message, "waiting for older host operation first");
    r.driver.settle();
    await r.advance(10_000);
    assert.equal(r.inv.operations.get("first")?.status?.phase, "Complete");
    r.driver.settle(); // the On sent meanwhile takes effect
    await r.advance(10_000);
    assert.equal(r.inv.operations.get("second")?.status?.phase, "Complete");
    assert.equal(r.driver.state, "On");
  });

  it("refuses a quarantined Machine: the target fails Quarantined, no BMC call", async (t) => {
    const r = await rig(t, {
      beforeLoad: async ({ stateDir }) => {
        await mkdir(path.join(stateDir, "status"), { recursive: true });
        await writeFile(path.join(stateDir, "status", "node-01.json"), "not json");
      },
    });
    r.rec.start();
    await r.settle();
    await r.inv.operations.create(op("reboot-q", "HostReboot"));
    await r.settle();
    const status = r.inv.operations.get("reboot-q")?.status;
    assert.equal(status?.phase, "Failed");
    assert.match(status?.targets?.[0]?.message ?? "", /^Quarantined: /);
    assert.deepEqual(r.driver.calls, []);
  });

  it("HostReplace right after another repave: the earlier Repaved=True does not count as this image written", async (t) => {
    const r = await rig(t);
    await repaved(r);
    r.rec.start();
    await r.settle();
    // The operation starts within a second of that Repaved (the CLI e2e repaves right after the
    // counter repave); the old check took it for this one's image.
    await r.advance(900);
    await r.inv.operations.create(op("replace-1", "HostReplace"));
    await r.settle();
    await r.advance(20_000);
    assert.equal(r.inv.operations.get("replace-1")?.status?.targets?.[0]?.stage, "WaitingRepave");
    await r.advance(5000);
    assert.equal(r.inv.operations.get("replace-1")?.status?.targets?.[0]?.stage, "WaitingRepave");
  });

  it("HostReplace: ForceOff, Pxe/Once, On, waits for /pxe/disable then cloud-init; replace conditions snapshotted", async (t) => {
    const r = await rig(t);
    r.rec.start();
    await r.settle();
    await r.inv.operations.create(op("replace-1", "HostReplace"));
    await r.settle();
    let status = r.inv.operations.get("replace-1")?.status;
    assert.deepEqual(
      status?.conditions?.map((c) => [c.type, c.status]),
      [
        ["Completed", "False"],
        ["BootLoaderDownloaded", "Unknown"],
        ["BootImageWritten", "Unknown"],
        ["CloudInitDone", "Unknown"],
      ],
    );
    await r.advance(20_000);
    assert.equal(r.inv.operations.get("replace-1")?.status?.targets?.[0]?.stage, "WaitingRepave");
    assert.deepEqual(r.driver.boots, ["Pxe"]);
    assert.deepEqual(
      r.driver.calls.filter((c) => c.startsWith("set:") || c.startsWith("power:")),
      ["power:ForceOff", "set:Pxe/Once", "power:On"],
    );
    // The installer reports: Repaved=True on the Machine.
    await repaved(r);
    await r.advance(5000);
    assert.equal(r.inv.operations.get("replace-1")?.status?.targets?.[0]?.stage, "WaitingCloudInit");
    await r.inv.updateStatus("node-01", (m) => ({
      ...m.status,
      conditions: [
        ...(m.status?.conditions ?? []),
        {
          type: "CloudInitDone",
          status: "True",
          reason: "Succeeded",
          message: "",
          lastTransitionTime: new Date(r.clock.now()).toISOString(),
        },
      ],
    }));
    await r.advance(5000);
    status = r.inv.operations.get("replace-1")?.status;
    assert.equal(status?.phase, "Complete");
    assert.equal(status?.targets?.[0]?.message, "HostReplace completed");
  });
});
