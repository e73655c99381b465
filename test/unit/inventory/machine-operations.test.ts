/**
 * Issue 5 §3.3: MachineOperation objects (spec §2.7 schema) behind the backend interface, kept
 * in the state folder standalone: validated, crash-safe, versioned from the backend's one
 * sequence, watchable, and a corrupt file is set aside and reported, never acted on.
 */
import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { GoneError, type MachineBackend, UNCHANGED } from "../../../server/inventory/backend.js";
import {
  AlreadyExistsError,
  type InvalidOperationError,
  type MachineOperationEvent,
} from "../../../server/inventory/machine-operation.js";
import { inventoryFixture, machineYaml } from "./helpers.js";

function setup(t: { after(fn: () => Promise<void>): void }) {
  return inventoryFixture(t, { "a.yaml": machineYaml("node-01") });
}

const REBOOT = {
  metadata: { name: "rack-a-reboot-01" },
  spec: { machineRef: "node-01", operationKind: "HostReboot" as const, ttlSecondsAfterFinished: 300 },
};

describe("MachineOperation store", () => {
  it("creates, watches, updates status and deletes through the backend interface", async (t) => {
    const { open } = await setup(t);
    const backend: MachineBackend = await open();
    const listed = backend.operations.list();
    assert.deepEqual([...listed], []);
    const seen: MachineOperationEvent[] = [];
    backend.operations.watch((e) => seen.push(e), { resourceVersion: listed.resourceVersion });

    const created = await backend.operations.create(REBOOT);
    assert.equal(created.apiVersion, "unbounded-cloud.io/v1alpha3");
    assert.equal(created.kind, "MachineOperation");
    assert.ok(created.metadata.uid);
    assert.equal(created.metadata.generation, 1);
    assert.ok(Object.isFrozen(created));
    // One version sequence for Machines and operations (as etcd's revision).
    assert.ok(BigInt(created.metadata.resourceVersion!) > BigInt(listed.resourceVersion));
    assert.equal(backend.list().resourceVersion, created.metadata.resourceVersion);
    await assert.rejects(backend.operations.create(REBOOT), AlreadyExistsError);

    const updated = await backend.operations.updateStatus("rack-a-reboot-01", (op) => ({
      ...op.status,
      phase: "InProgress",
      message: "targets complete=0 failed=0 inProgress=1 pending=0",
      startedAt: "2026-12-01T10:00:00Z",
      targets: [{ machineRef: "node-01", phase: "InProgress", stage: "WaitingOff", attempts: 1 }],
    }));
    assert.equal(updated.status?.targets?.[0]?.stage, "WaitingOff");
    const same = await backend.operations.updateStatus("rack-a-reboot-01", () => UNCHANGED);
    assert.equal(same, updated);
    await assert.rejects(
      backend.operations.updateStatus("rack-a-reboot-01", (op) => ({ ...op.status, phase: "Done" as never })),
      (err: InvalidOperationError) => err.errors.some((e) => e.startsWith("status.phase: must be one of")),
    );
    assert.equal(await backend.operations.delete("rack-a-reboot-01"), true);
    assert.equal(await backend.operations.delete("rack-a-reboot-01"), false);
    assert.deepEqual(
      seen.map((e) => e.type),
      ["ADDED", "MODIFIED", "DELETED"],
    );
    const versions = seen.map((e) => BigInt(e.operation.metadata.resourceVersion!));
    assert.deepEqual(
      versions,
      [...versions].sort((a, b) => (a < b ? -1 : 1)),
    );
  });

  it("rejects what the schema does not allow, naming the field", async (t) => {
    const { open } = await setup(t);
    const inv = await open();
    const bad = async (op: unknown, expected: RegExp) =>
      assert.rejects(inv.operations.create(op as never), (err: InvalidOperationError) => {
        assert.ok(
          err.errors.some((e) => expected.test(e)),
          err.errors.join("\n"),
        );
        return true;
      });
    await bad(
      { metadata: { name: "x" }, spec: { machineRef: "node-01", operationKind: "HostReboots" } },
      /^spec\.operationKind: must be one of/,
    );
    await bad(
      { metadata: { name: "x" }, spec: { operationKind: "HostReboot" } },
      /exactly one of machineRef and machineSelector/,
    );
    await bad(
      { metadata: { name: "X_1" }, spec: { machineRef: "node-01", operationKind: "HostReboot" } },
      /^metadata\.name: must be a DNS-1123 name/,
    );
    await bad(
      {
        metadata: { name: "x" },
        spec: { machineRef: "node-01", operationKind: "HostReboot", ttlSecondsAfterFinished: -1 },
      },
      /^spec\.ttlSecondsAfterFinished/,
    );
    await bad(
      { metadata: { name: "x" }, spec: { machineRef: "node-01", operationKind: "HostReboot", typo: 1 } },
      /^spec\.typo: unknown field/,
    );
    await bad(
      {
        metadata: { name: "x" },
        spec: { machineRef: "node-01", operationKind: "AgentUpgrade", parameters: { url: "a\u0000b" } },
      },
      /^spec\.parameters\.url: has control characters/,
    );
    assert.deepEqual([...inv.operations.list()], []);
  });

  it("survives a restart (versions move on) and sets a corrupt file aside as a problem", async (t) => {
    const { stateDir, open } = await setup(t);
    const first = await open();
    const created = await first.operations.create(REBOOT);
    await first.operations.create({
      metadata: { name: "poweroff" },
      spec: { machineRef: "node-01", operationKind: "HostPowerOff" },
    });
    const lastVersion = first.operations.list().resourceVersion;
    await first.close();
    const opsDir = path.join(stateDir, "operations");
    await writeFile(path.join(opsDir, "poweroff.json"), '{"apiVersion": "unbounded-cloud.io/v1alpha3", "kind": "Mach');

    const second = await open();
    const back = second.operations.get("rack-a-reboot-01")!;
    assert.equal(back.metadata.uid, created.metadata.uid);
    assert.ok(BigInt(back.metadata.resourceVersion!) > BigInt(lastVersion));
    assert.throws(() => second.operations.watch(() => {}, { resourceVersion: lastVersion }), GoneError);
    assert.equal(second.operations.get("poweroff"), undefined, "a corrupt operation is never acted on");
    const problem = second.problems().find((p) => p.kind === "state");
    assert.ok(problem?.message.includes("poweroff.json"), JSON.stringify(second.problems()));
    const files = await readdir(opsDir);
    assert.ok(files.includes("poweroff.json.corrupt"), files.join(", "));
    assert.match(await readFile(path.join(opsDir, "poweroff.json.corrupt"), "utf8"), /"kind": "Mach$/);
  });
});
