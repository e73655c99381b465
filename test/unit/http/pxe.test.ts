import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { Machine } from "../../../server/inventory/types.js";
import { type Harness, harness, LEASE_IP, makeMachine } from "./support.js";

const T0 = new Date("2026-04-27T10:00:00.000Z");

function repaveMachine(spec: number, status: number | undefined): Machine {
  const machine = makeMachine("node-01", LEASE_IP, "ghcr.io/azure/images/host-ubuntu2404:v1", {
    operations: { rebootCounter: 4, repaveCounter: spec },
  });
  if (status !== undefined) machine.status = { operations: { rebootCounter: 4, repaveCounter: status } };
  return machine;
}

describe("/pxe/disable", () => {
  let h: Harness;
  let now = T0;
  beforeEach(async () => {
    now = T0;
    h = await harness({
      machines: () => [repaveMachine(2, 1)],
      app: { now: () => now },
    });
  });
  afterEach(() => h.close());

  it("answers 404 to strangers and writes nothing", async () => {
    const res = await h.app.inject({ url: "/pxe/disable", remoteAddress: "10.9.9.9" });
    assert.equal(res.statusCode, 404);
    assert.equal(res.body, "404 page not found\n");
    assert.equal(h.backend.updateCalls, 0);
  });

  it("records the repave counter and Repaved=True, then is idempotent", async () => {
    const res = await h.app.inject({ method: "POST", url: "/pxe/disable", remoteAddress: LEASE_IP });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, "");
    const machine = h.backend.get("node-01")!;
    assert.deepEqual(machine.status?.operations, { rebootCounter: 4, repaveCounter: 2 });
    assert.deepEqual(machine.status?.conditions, [
      {
        type: "Repaved",
        status: "True",
        reason: "Succeeded",
        message: "image=ghcr.io/azure/images/host-ubuntu2404:v1",
        observedGeneration: 3,
        lastTransitionTime: "2026-04-27T10:00:00Z",
      },
    ]);
    assert.equal(h.events.recent().at(-1)?.result, "ok");
    const again = await h.app.inject({ method: "GET", url: "/pxe/disable", remoteAddress: LEASE_IP });
    assert.equal(again.statusCode, 200);
    assert.equal(h.backend.updateCalls, 1);
    assert.equal(h.events.recent().at(-1)?.reason, "already-cleared");
  });

  it("completes a repave asked through the API (a pending HostReplace operation)", async () => {
    // console (issue 8) and BMC flows (issue 6): no counter bump; /pxe/disable marks the
    // operation's image written and the Machine Repaved (server/bmc/pending-replace.ts).
    const machine = repaveMachine(2, 2);
    h.backend.put(machine);
    const written: string[] = [];
    h.backend.operations = {
      list: () => [
        {
          metadata: { name: "node-01-repave-x" },
          spec: { operationKind: "HostReplace", machineRef: "node-01" },
          status: { phase: "InProgress", targets: [{ machineRef: "node-01", stage: "WaitingRepave" }] },
        },
      ],
      updateStatus: async (name: string, mutate: (op: unknown) => unknown) => {
        written.push(name);
        mutate({ status: {} });
        return { outcome: "written" };
      },
    } as unknown as typeof h.backend.operations;
    const res = await h.app.inject({ method: "POST", url: "/pxe/disable", remoteAddress: LEASE_IP });
    assert.equal(res.statusCode, 200);
    assert.equal(h.events.recent().at(-1)?.result, "ok");
    const after = h.backend.get("node-01")!;
    assert.equal(after.status?.operations?.repaveCounter, 2, "counters untouched");
    assert.equal(after.status?.conditions?.find((c) => c.type === "Repaved")?.status, "True");
    assert.deepEqual(written, ["node-01-repave-x"], "BootImageWritten recorded on the operation");
  });

  it("accepts GET (busybox wget) and a POST with any body", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/pxe/disable",
      remoteAddress: LEASE_IP,
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: "done=1",
    });
    assert.equal(res.statusCode, 200);
    assert.equal(h.backend.get("node-01")?.status?.operations?.repaveCounter, 2);
  });

  it("retries on conflict (fix of spec §12 item 17)", async () => {
    h.backend.concurrentWrites = 3;
    const res = await h.app.inject({ url: "/pxe/disable", remoteAddress: LEASE_IP });
    assert.equal(res.statusCode, 200);
    assert.equal(h.backend.updateCalls, 4);
    assert.equal(h.backend.get("node-01")?.status?.operations?.repaveCounter, 2);
  });

  it("answers 500 when conflicts persist or the write fails", async () => {
    h.backend.concurrentWrites = 5;
    const res = await h.app.inject({ url: "/pxe/disable", remoteAddress: LEASE_IP });
    assert.equal(res.statusCode, 500);
    assert.equal(res.body, "failed to disable PXE\n");
    assert.equal(h.backend.updateCalls, 5);
    h.backend.updateError = new Error("disk full");
    const failed = await h.app.inject({ url: "/pxe/disable", remoteAddress: LEASE_IP });
    assert.equal(failed.statusCode, 500);
    assert.equal(h.events.recent().at(-1)?.result, "error");
  });
});

describe("/pxe/disable without status.operations", () => {
  it("treats absent counters as 0", async () => {
    const h = await harness({ machines: () => [repaveMachine(1, undefined)] });
    try {
      const res = await h.app.inject({ url: "/pxe/disable", remoteAddress: LEASE_IP });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(h.backend.get("node-01")?.status?.operations, { repaveCounter: 1 });
    } finally {
      await h.close();
    }
  });
});

describe("POST /cloudinit/log", () => {
  let h: Harness;
  let now = T0;
  beforeEach(async () => {
    now = T0;
    h = await harness({
      machines: () => [repaveMachine(0, 0)],
      app: { now: () => now },
    });
  });
  afterEach(() => h.close());

  const post = (payload: unknown, headers: Record<string, string> = { "content-type": "application/json" }) =>
    h.app.inject({
      method: "POST",
      url: "/cloudinit/log",
      remoteAddress: LEASE_IP,
      headers,
      payload: typeof payload === "string" || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload),
    });
  const condition = () => h.backend.get("node-01")?.status?.conditions?.find((c) => c.type === "CloudInitDone");
  const event = (eventType: string, name: string, extra: Record<string, unknown> = {}) => ({
    name,
    description: `running ${name}`,
    event_type: eventType,
    origin: "cloudinit",
    timestamp: 1775657336.9,
    ...extra,
  });

  it("start → False/Running with the stage quoted", async () => {
    const res = await post(event("start", "init-local"));
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, "");
    assert.deepEqual(condition(), {
      type: "CloudInitDone",
      status: "False",
      reason: "Running",
      message: 'stage "init-local" started: running init-local',
      observedGeneration: 3,
      lastTransitionTime: "2026-04-27T10:00:00Z",
    });
  });

  it("finish SUCCESS of an earlier stage → Running, keeping lastTransitionTime", async () => {
    await post(event("start", "init-local"));
    now = new Date(T0.getTime() + 60_000);
    await post(event("finish", "init-network/config-ssh", { result: "SUCCESS" }));
    const c = condition()!;
    assert.equal(c.status, "False");
    assert.equal(c.reason, "Running");
    assert.equal(c.message, 'stage "init-network/config-ssh" finished successfully, waiting for remaining stages');
    assert.equal(c.lastTransitionTime, "2026-04-27T10:00:00Z");
  });

  it("finish with another result → Failed, result quoted, case-insensitive SUCCESS", async () => {
    await post(event("finish", "modules-config", { result: "FAIL" }));
    assert.equal(condition()?.reason, "Failed");
    assert.equal(condition()?.message, 'stage "modules-config" failed with result "FAIL": running modules-config');
    await post(event("finish", "modules-config", { result: "success" }));
    assert.equal(condition()?.reason, "Running");
  });

  it("modules-final SUCCESS → True/Succeeded with a new transition time", async () => {
    await post(event("start", "modules-final"));
    now = new Date(T0.getTime() + 90_000);
    await post(event("finish", "modules-final", { result: "SUCCESS" }));
    assert.deepEqual(condition(), {
      type: "CloudInitDone",
      status: "True",
      reason: "Succeeded",
      message: "cloud-init completed successfully",
      observedGeneration: 3,
      lastTransitionTime: "2026-04-27T10:01:30Z",
    });
  });

  it("cuts a long failure message to 1024 bytes ending in ...", async () => {
    await post(event("finish", "modules-final", { result: "WARN", description: "x".repeat(3000) }));
    const message = condition()!.message;
    assert.equal(message.length, 1024);
    assert.ok(message.startsWith('stage "modules-final" failed with result "WARN": xxx'));
    assert.ok(message.endsWith("x..."));
  });

  it("escapes names the way Go's %q does", async () => {
    await post(event("start", 'we"ird\n\u0001'));
    assert.equal(condition()?.message, 'stage "we\\"ird\\n\\x01" started: running we"ird\n\u0001');
  });

  it("ignores other event types, unparsable JSON, wrong types and oversize bodies (always 200)", async () => {
    const bodies: Array<[unknown, Record<string, string>?]> = [
      [event("progress", "init-local")],
      ["{not json"],
      [{ name: 5, event_type: "start" }],
      ["[1,2]"],
      [""],
      [
        Buffer.concat([
          Buffer.from(JSON.stringify(event("start", "x")).slice(0, -1)),
          Buffer.alloc(1024 * 1024 + 10, 0x20),
          Buffer.from("}"),
        ]),
      ],
      ["garbage", {}],
    ];
    for (const [body, headers] of bodies) {
      const res = await post(body, headers);
      assert.equal(res.statusCode, 200);
    }
    assert.equal(h.backend.updateCalls, 0);
    assert.equal(condition(), undefined);
    const metrics = await h.registry.metrics();
    assert.match(metrics, /metalman_http_malformed_total\{route="\/cloudinit\/log",reason="unparsable"\} 6/);
  });

  it("accepts any content type or none, and Go-style case-insensitive keys", async () => {
    const res = await post(JSON.stringify({ Name: "init", EVENT_TYPE: "start", Description: "d" }), {
      "content-type": "text/plain",
    });
    assert.equal(res.statusCode, 200);
    assert.equal(condition()?.message, 'stage "init" started: d');
    await post(JSON.stringify(event("finish", "modules-final", { result: "SUCCESS" })), {});
    assert.equal(condition()?.status, "True");
  });

  it("answers 200 to strangers and writes nothing", async () => {
    const res = await h.app.inject({
      method: "POST",
      url: "/cloudinit/log",
      remoteAddress: "10.9.9.9",
      payload: event("start", "init"),
    });
    assert.equal(res.statusCode, 200);
    assert.equal(h.backend.updateCalls, 0);
    assert.equal(h.events.recent().at(-1)?.reason, "unknown-client");
  });

  it("retries conflicts and still answers 200 when the write fails", async () => {
    h.backend.concurrentWrites = 2;
    await post(event("start", "init"));
    assert.equal(condition()?.reason, "Running");
    assert.equal(h.backend.updateCalls, 3);
    h.backend.updateError = new Error("boom");
    const res = await post(event("finish", "modules-final", { result: "SUCCESS" }));
    assert.equal(res.statusCode, 200);
    assert.equal(h.events.recent().at(-1)?.result, "error");
  });
});
