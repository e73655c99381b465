// biome-ignore-all lint/suspicious/noExplicitAny: the tests read JSON answers loosely; the assertions check their shape
/**
 * Every management API route through Fastify inject(), over a real FileInventory (node-01 with a
 * Redfish BMC whose URL carries credentials, node-02 without a BMC, node-03 quarantined by a
 * corrupt state file) and a real event bus: answers, validation errors, not found, quarantine,
 * the actor recorded, and no secret in any answer.
 */
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import Fastify from "fastify";
import { PIN_MISMATCH_CONDITION } from "../../../server/api/actions.js";
import { ApiError } from "../../../server/api/errors.js";
import { API_PREFIX, managementApiPlugin } from "../../../server/api/plugin.js";
import { UNCHANGED } from "../../../server/inventory/backend.js";
import { setCondition } from "../../../server/inventory/conditions.js";
import { type ApiFixture, apiFixture, REDFISH_MACHINE } from "./helpers.js";

const SECRETS = ["hunter2-url-secret", "sas-token-secret"];
const USER = { "x-metalman-user": "alice" };

function assertNoSecret(body: string): void {
  for (const secret of SECRETS) assert.ok(!body.includes(secret), `answer leaks ${secret}: ${body}`);
}

function errorOf(res: {
  json(): unknown;
}): { code: string; message: string; detail?: string } & Record<string, unknown> {
  const body = res.json() as { error: { code: string; message: string; detail?: string } };
  assert.equal(typeof body.error?.code, "string", JSON.stringify(body));
  assert.equal(typeof body.error.message, "string");
  return body.error;
}

describe("management API routes (inject)", () => {
  let f: ApiFixture;
  before(async () => {
    f = await apiFixture();
  });
  after(async () => {
    await f.close();
  });

  const get = (url: string, headers: Record<string, string> = {}) =>
    f.app.inject({ method: "GET", url: `${API_PREFIX}${url}`, headers });
  const post = (url: string, payload?: unknown, headers: Record<string, string> = USER) =>
    f.app.inject({ method: "POST", url: `${API_PREFIX}${url}`, payload: payload as object, headers });

  describe("machines", () => {
    it("lists every Machine with its summary, quarantine included", async () => {
      const res = await get("/machines");
      assert.equal(res.statusCode, 200);
      const body = res.json() as { items: Array<Record<string, unknown>>; resourceVersion: string };
      assert.deepEqual(
        body.items.map((m) => [m.name, m.bmc, m.quarantined, m.repavePending]),
        [
          ["node-01", "redfish", false, true],
          ["node-02", "none", false, false],
          ["node-03", "redfish", true, false],
        ],
      );
      assert.match(body.resourceVersion, /^\d+$/);
      assertNoSecret(res.body);
    });

    it("shows one Machine with status and quarantine, never a password or token", async () => {
      const res = await get("/machines/node-01");
      assert.equal(res.statusCode, 200);
      assertNoSecret(res.body);
      const body = res.json() as Record<string, any>;
      assert.equal(body.metadata.name, "node-01");
      assert.equal(body.bmcDetail.address, "https://10.0.0.5/");
      assert.equal(body.spec.pxe.redfish.url, "https://10.0.0.5/");
      // A reference names where the secret is; it is not the secret.
      assert.deepEqual(body.spec.pxe.redfish.passwordRef, {
        name: "bmc-node-01",
        namespace: "default",
        key: "password",
      });
      assert.equal(body.spec.agent.url, "https://blob.example/agent.tar.gz?REDACTED");
      assert.ok("status" in body);

      const quarantined = (await get("/machines/node-03")).json() as Record<string, any>;
      assert.equal(quarantined.quarantined, true);
      assert.equal(quarantined.quarantine.reason, "CorruptStateFile");
      assert.ok(quarantined.status.conditions.some((c: { type: string }) => c.type === "StateQuarantined"));
    });

    it("drops secret-named fields that a room writes into status", async () => {
      await f.inventory.updateStatus("node-01", (m) => ({
        ...m.status,
        // What a careless room might store: the API must not show it.
        ...({ bmcSession: { token: "session-token-secret", password: "status-password-secret" } } as object),
      }));
      const res = await get("/machines/node-01");
      assert.ok(!res.body.includes("session-token-secret") && !res.body.includes("status-password-secret"), res.body);
    });

    it("answers 404 MACHINE_NOT_FOUND for an unknown Machine, 400 for a malformed name or query", async () => {
      const missing = await get("/machines/nope");
      assert.equal(missing.statusCode, 404);
      assert.equal(errorOf(missing).code, "MACHINE_NOT_FOUND");
      const bad = await get("/machines/Bad_Name");
      assert.equal(bad.statusCode, 400);
      assert.equal(errorOf(bad).code, "VALIDATION_FAILED");
      const query = await get("/machines?colour=red"); // sort= became a list option (console, issue 8)
      assert.equal(query.statusCode, 400);
      assert.match(errorOf(query).detail ?? "", /additional properties/);
    });

    it("answers 405 with Allow for a known path and 404 for an unknown one", async () => {
      const res = await f.app.inject({ method: "DELETE", url: `${API_PREFIX}/machines` });
      assert.equal(res.statusCode, 405);
      assert.equal(res.headers.allow, "GET");
      assert.equal(errorOf(res).code, "METHOD_NOT_ALLOWED");
      const unknown = await get("/nope");
      assert.equal(unknown.statusCode, 404);
      assert.equal(errorOf(unknown).code, "NOT_FOUND");
      const outside = await f.app.inject({ method: "GET", url: "/machines" });
      assert.equal(outside.statusCode, 404);
      assert.equal(errorOf(outside).code, "NOT_FOUND");
    });

    it("refuses a malformed user header", async () => {
      const res = await get("/machines", { "x-metalman-user": "alice\u0007bob" });
      assert.equal(res.statusCode, 400);
      assert.equal(errorOf(res).code, "BAD_REQUEST");
    });
  });

  describe("machine actions", () => {
    it("power on becomes a HostPowerOn operation recording who asked, and an event", async () => {
      const seqBefore = f.events.lastSeq;
      const res = await post("/machines/node-01/power", { action: "on" });
      assert.equal(res.statusCode, 202, res.body);
      const body = res.json() as { operation: any; eventsSince: number };
      assert.equal(body.operation.spec.operationKind, "HostPowerOn");
      assert.equal(body.operation.spec.machineRef, "node-01");
      assert.equal(body.operation.spec.ttlSecondsAfterFinished, 86400);
      assert.equal(body.operation.metadata.annotations["metalman.io/requested-by"], "alice");
      assert.equal(body.operation.metadata.annotations["metalman.io/requested-via"], "unix-socket");
      assert.equal(body.eventsSince, seqBefore);
      const stored = f.inventory.operations.get(body.operation.metadata.name);
      assert.equal(stored?.spec.operationKind, "HostPowerOn");
      const event = f.events.history("node-01").at(-1);
      assert.equal(event?.step, "operation.requested");
      assert.equal(event?.detail?.user, "alice");
      assert.equal(event?.detail?.transport, "unix-socket");
      assert.equal(event?.detail?.operation, body.operation.metadata.name);
    });

    it("maps power off, cycle, reboot and repave onto spec §2.7 kinds", async () => {
      const kinds: Array<[string, unknown, string, Record<string, string> | undefined]> = [
        ["/machines/node-01/power", { action: "off" }, "HostPowerOff", undefined],
        ["/machines/node-01/power", { action: "cycle" }, "HostReboot", { resetType: "PowerCycle" }],
        ["/machines/node-01/repave", undefined, "HostReplace", undefined],
      ];
      for (const [url, payload, kind, parameters] of kinds) {
        const res = await post(url, payload);
        assert.equal(res.statusCode, 202, `${url}: ${res.body}`);
        const op = (res.json() as { operation: any }).operation;
        assert.equal(op.spec.operationKind, kind);
        assert.deepEqual(op.spec.parameters, parameters);
      }
    });

    it("refuses a second pending operation of the same kind with OPERATION_PENDING", async () => {
      const res = await post("/machines/node-01/repave", {});
      assert.equal(res.statusCode, 409);
      const error = errorOf(res);
      assert.equal(error.code, "OPERATION_PENDING");
      assert.match(String(error.operation), /^node-01-repave-/);
      // Once that operation finished, a new one is accepted.
      await f.inventory.operations.updateStatus(String(error.operation), () => ({
        phase: "Complete",
        completedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      }));
      const again = await post("/machines/node-01/repave", { ttlSecondsAfterFinished: 60 });
      assert.equal(again.statusCode, 202, again.body);
      assert.equal((again.json() as any).operation.spec.ttlSecondsAfterFinished, 60);
    });

    it("reboot without a body is accepted (HostReboot, no parameters)", async () => {
      // The power cycle above is a HostReboot too: finish it first.
      for (const op of f.inventory.operations.list()) {
        if (op.spec.operationKind === "HostReboot" && op.spec.machineRef === "node-01") {
          await f.inventory.operations.updateStatus(op.metadata.name, () => ({ phase: "Failed" }));
        }
      }
      const res = await f.app.inject({ method: "POST", url: `${API_PREFIX}/machines/node-01/reboot` });
      assert.equal(res.statusCode, 202, res.body);
      const op = (res.json() as any).operation;
      assert.equal(op.spec.operationKind, "HostReboot");
      assert.equal(op.spec.parameters, undefined);
      assert.equal(op.metadata.annotations["metalman.io/requested-by"], "unknown");
    });

    it("validates every body: required, enum, unknown fields, types, JSON, content type", async () => {
      const cases: Array<[string, unknown, string]> = [
        ["/machines/node-01/power", {}, "must have required property 'action'"],
        ["/machines/node-01/power", { action: "sideways" }, "must be equal to one of the allowed values"],
        ["/machines/node-01/power", { action: "on", force: true }, "must NOT have additional properties"],
        ["/machines/node-01/reboot", { ttlSecondsAfterFinished: "soon" }, "must be integer"],
        ["/machines/node-01/repave", { wait: true }, "must NOT have additional properties"],
        ["/machines/node-01/repin-bmc", { fingerprint: 7 }, "must be string"],
      ];
      for (const [url, payload, message] of cases) {
        const res = await post(url, payload);
        assert.equal(res.statusCode, 400, `${url} ${JSON.stringify(payload)}: ${res.body}`);
        const error = errorOf(res);
        assert.equal(error.code, "VALIDATION_FAILED");
        assert.ok(error.detail?.includes(message), `${error.detail} should say ${message}`);
      }
      const notJson = await f.app.inject({
        method: "POST",
        url: `${API_PREFIX}/machines/node-01/reboot`,
        headers: { "content-type": "application/json" },
        payload: "{nope",
      });
      assert.equal(notJson.statusCode, 400);
      assert.equal(errorOf(notJson).code, "BAD_REQUEST");
      const text = await f.app.inject({
        method: "POST",
        url: `${API_PREFIX}/machines/node-01/reboot`,
        headers: { "content-type": "text/plain" },
        payload: "reboot please",
      });
      assert.equal(text.statusCode, 415);
      assert.equal(errorOf(text).code, "UNSUPPORTED_MEDIA_TYPE");
      const big = await post("/machines/node-01/reboot", { pad: "x".repeat(70_000) });
      assert.equal(big.statusCode, 413);
      assert.equal(errorOf(big).code, "PAYLOAD_TOO_LARGE");
    });

    it("refuses actions on a quarantined Machine with MACHINE_QUARANTINED, and creates nothing", async () => {
      const before = f.inventory.operations.list().length;
      for (const [url, payload] of [
        ["/machines/node-03/power", { action: "cycle" }],
        ["/machines/node-03/reboot", {}],
        ["/machines/node-03/repave", {}],
        ["/machines/node-03/repin-bmc", {}],
        ["/operations", { spec: { machineRef: "node-03", operationKind: "HostReboot" } }],
      ] as const) {
        const res = await post(url, payload);
        assert.equal(res.statusCode, 409, `${url}: ${res.body}`);
        const error = errorOf(res);
        assert.equal(error.code, "MACHINE_QUARANTINED");
        assert.match(error.detail ?? "", /state file/);
      }
      assert.equal(f.inventory.operations.list().length, before);
    });

    it("refuses actions on a provider Machine (not bare metal) with NO_BMC", async () => {
      const file = path.join(f.scratch.inventoryDir, "vm-01.yaml");
      await writeFile(
        file,
        REDFISH_MACHINE.replace("name: node-01", "name: vm-01")
          .replace("aa:bb:cc:dd:ee:01", "aa:bb:cc:dd:ee:09")
          .replace("10.0.0.11", "10.0.0.19")
          .replace("  operations:", "  provider: AzureVM\n  operations:"),
      );
      await f.inventory.reload();
      try {
        assert.ok(f.inventory.get("vm-01"), JSON.stringify(f.inventory.problems()));
        const res = await post("/machines/vm-01/reboot", {});
        assert.equal(res.statusCode, 409, res.body);
        assert.match(errorOf(res).detail ?? "", /AzureVM Machine \(spec.provider\): not bare metal/);
      } finally {
        await rm(file);
        await f.inventory.reload();
      }
    });

    it("refuses actions on a Machine without a BMC (NO_BMC) and on an unknown one (404)", async () => {
      const none = await post("/machines/node-02/power", { action: "on" });
      assert.equal(none.statusCode, 409);
      assert.equal(errorOf(none).code, "NO_BMC");
      const missing = await post("/machines/ghost/repave", {});
      assert.equal(missing.statusCode, 404);
      assert.equal(errorOf(missing).code, "MACHINE_NOT_FOUND");
    });

    it("re-pin clears the pin and the mismatch condition (a status write), or pins a given fingerprint", async () => {
      const old = Array.from({ length: 32 }, () => "ab").join(":");
      await f.inventory.updateStatus("node-01", (m) => ({
        ...m.status,
        redfish: { certFingerprint: old },
        conditions: setCondition(m.status?.conditions, {
          type: PIN_MISMATCH_CONDITION,
          status: "True",
          reason: "Mismatch",
          message: "got cd:..., want ab:...",
        }),
      }));
      const cleared = await post("/machines/node-01/repin-bmc", {});
      assert.equal(cleared.statusCode, 200, cleared.body);
      assert.deepEqual(
        { ...(cleared.json() as object), eventsSince: 0 },
        { machine: "node-01", previous: old, eventsSince: 0 },
      );
      const machine = f.inventory.get("node-01")!;
      assert.equal(machine.status?.redfish?.certFingerprint, undefined);
      assert.ok(!machine.status?.conditions?.some((c) => c.type === PIN_MISMATCH_CONDITION));
      const event = f.events.history("node-01").at(-1);
      assert.equal(event?.step, "bmc.repin");
      assert.equal(event?.reason, "cleared");
      assert.equal(event?.detail?.user, "alice");

      const given = Array.from({ length: 32 }, () => "0F").join(":");
      const pinned = await post("/machines/node-01/repin-bmc", { fingerprint: given });
      assert.equal(pinned.statusCode, 200, pinned.body);
      assert.equal(f.inventory.get("node-01")?.status?.redfish?.certFingerprint, given.toLowerCase());

      const bad = await post("/machines/node-01/repin-bmc", { fingerprint: "sha256:nope" });
      assert.equal(bad.statusCode, 400);
      assert.equal(errorOf(bad).code, "VALIDATION_FAILED");
      const noRedfish = await post("/machines/node-02/repin-bmc", {});
      assert.equal(errorOf(noRedfish).code, "NO_BMC");
      // The status write is pure: nothing else of the status changed.
      await f.inventory.updateStatus("node-01", () => UNCHANGED);
    });
  });

  describe("operations", () => {
    it("creates an operation (201), generating the name, recording the actor over any forged one", async () => {
      const res = await post("/operations", {
        apiVersion: "unbounded-cloud.io/v1alpha3",
        kind: "MachineOperation",
        metadata: { annotations: { "metalman.io/requested-by": "mallory", note: "rack move" } },
        spec: { machineRef: "node-01", operationKind: "HostPowerOff", ttlSecondsAfterFinished: 300 },
      });
      assert.equal(res.statusCode, 201, res.body);
      const op = (res.json() as any).operation;
      assert.match(op.metadata.name, /^node-01-hostpoweroff-/);
      assert.equal(op.metadata.annotations["metalman.io/requested-by"], "alice");
      assert.equal(op.metadata.annotations.note, "rack move");
      assert.ok(op.metadata.uid);
    });

    it("creates a named selector operation", async () => {
      const res = await post("/operations", {
        metadata: { name: "rack-a-reboot" },
        spec: {
          machineSelector: { matchLabels: { rack: "a" } },
          operationKind: "HostReboot",
        },
      });
      assert.equal(res.statusCode, 201, res.body);
      const again = await post("/operations", {
        metadata: { name: "rack-a-reboot" },
        spec: { machineRef: "node-01", operationKind: "HostReboot" },
      });
      assert.equal(again.statusCode, 409);
      assert.equal(errorOf(again).code, "OPERATION_EXISTS");
    });

    it("validates: schema errors are 400, store rules (one of ref/selector) 422, unknown Machine 404", async () => {
      const schema: unknown[] = [
        { spec: { machineRef: "node-01", operationKind: "HostExplode" } },
        { spec: { machineRef: "node-01", operationKind: "HostReboot", dryRun: true } },
        { metadata: { name: "UPPER" }, spec: { machineRef: "node-01", operationKind: "HostReboot" } },
        { spec: { machineRef: "node-01", operationKind: "HostReboot" }, status: { phase: "Complete" } },
        { spec: { machineRef: "node-01", operationKind: "HostReboot", ttlSecondsAfterFinished: -1 } },
        {},
      ];
      for (const payload of schema) {
        const res = await post("/operations", payload);
        assert.equal(res.statusCode, 400, `${JSON.stringify(payload)}: ${res.body}`);
        assert.equal(errorOf(res).code, "VALIDATION_FAILED");
      }
      const both = await post("/operations", {
        spec: { machineRef: "node-01", machineSelector: { matchLabels: { a: "b" } }, operationKind: "HostReboot" },
      });
      assert.equal(both.statusCode, 422, both.body);
      assert.equal(errorOf(both).code, "INVALID_OPERATION");
      assert.match(errorOf(both).detail ?? "", /exactly one of machineRef and machineSelector/);
      const missing = await post("/operations", { spec: { machineRef: "ghost", operationKind: "HostReboot" } });
      assert.equal(missing.statusCode, 404);
      assert.equal(errorOf(missing).code, "MACHINE_NOT_FOUND");
    });

    it("lists (optionally for one Machine) and gets operations; unknown is 404", async () => {
      const all = (await get("/operations")).json() as { items: any[]; resourceVersion: string };
      assert.ok(all.items.length >= 5);
      assert.match(all.resourceVersion, /^\d+$/);
      const mine = (await get("/operations?machine=node-01")).json() as { items: any[] };
      assert.ok(mine.items.every((op) => op.spec.machineRef === "node-01"));
      assert.ok(mine.items.length < all.items.length);
      const one = await get(`/operations/${mine.items[0].metadata.name}`);
      assert.equal(one.statusCode, 200);
      assert.equal((one.json() as any).metadata.name, mine.items[0].metadata.name);
      const missing = await get("/operations/ghost-op");
      assert.equal(missing.statusCode, 404);
      assert.equal(errorOf(missing).code, "OPERATION_NOT_FOUND");
      const badQuery = await get("/operations?machine=NOPE!");
      assert.equal(badQuery.statusCode, 400);
    });

    it("shows operations on the Machine", async () => {
      const body = (await get("/machines/node-01")).json() as any;
      assert.ok(body.operations.length >= 4);
      assert.ok(body.operations.every((op: any) => typeof op.kind === "string" && typeof op.phase === "string"));
    });
  });

  describe("machine events", () => {
    it("returns the history, resumes after a seq, and answers 410 EVENTS_GONE when it cannot", async () => {
      const first = f.events.emit({ step: "dhcp.discover", result: "ok", machine: "node-02" });
      const second = f.events.emit({ step: "dhcp.ack", result: "ok", machine: "node-02" });
      f.events.emit({ step: "dhcp.ack", result: "ok", machine: "node-01" });
      const history = (await get("/machines/node-02/events")).json() as any;
      assert.deepEqual(
        history.events.map((e: any) => e.seq),
        [first.seq, second.seq],
      );
      assert.equal(history.lastSeq, f.events.lastSeq);
      const after = (await get(`/machines/node-02/events?since=${first.seq}`)).json() as any;
      assert.deepEqual(
        after.events.map((e: any) => e.step),
        ["dhcp.ack"],
      );
      const limited = (await get("/machines/node-02/events?limit=1")).json() as any;
      assert.equal(limited.events.length, 1);
      const ahead = await get(`/machines/node-02/events?since=${f.events.lastSeq + 5}`);
      assert.equal(ahead.statusCode, 410);
      const error = errorOf(ahead);
      assert.equal(error.code, "EVENTS_GONE");
      assert.equal(error.lastSeq, f.events.lastSeq);
      const earlierRun = await get("/machines/node-02/events?since=5");
      assert.equal(earlierRun.statusCode, 410);
      const bad = await get("/machines/node-02/events?since=abc");
      assert.equal(bad.statusCode, 400);
      const missing = await get("/machines/ghost/events");
      assert.equal(missing.statusCode, 404);
      const goneFollow = await get(`/machines/node-02/events?follow=1&since=${f.events.lastSeq + 5}`);
      assert.equal(goneFollow.statusCode, 410);
    });
  });
});

describe("management API plugin on another Fastify instance (the console's listener later)", () => {
  let f: ApiFixture;
  before(async () => {
    f = await apiFixture();
  });
  after(async () => {
    await f.close();
  });

  it("serves the same routes with that instance's identify, leaving its other routes alone", async () => {
    const other = Fastify();
    other.get("/hello", async () => ({ hello: "world" }));
    other.register(managementApiPlugin, {
      prefix: "/console/api/v1",
      backend: f.inventory,
      events: f.events,
      identify: (request) => {
        if (request.headers.authorization === "Bearer expired") {
          throw Object.assign(new Error("token expired"), { statusCode: 401 });
        }
        if (request.headers.authorization !== "Bearer ok")
          throw new ApiError("UNAUTHENTICATED", "bearer token required");
        return { user: "carol", transport: "https" };
      },
    });
    await other.ready();
    try {
      assert.equal((await other.inject({ url: "/hello" })).json().hello, "world");
      const list = await other.inject({ url: "/console/api/v1/machines", headers: { authorization: "Bearer ok" } });
      assert.equal(list.statusCode, 200);
      const refused = await other.inject({ url: "/console/api/v1/machines/node-01" });
      assert.equal(refused.statusCode, 401);
      assert.equal((refused.json() as any).error.code, "UNAUTHENTICATED");
      assert.ok(!refused.body.includes("node-01"));
      // Not even whether a Machine exists: authentication runs before routing's 404.
      const unknown = await other.inject({ url: "/console/api/v1/machines/ghost" });
      assert.equal(unknown.statusCode, 401);
      const expired = await other.inject({
        url: "/console/api/v1/machines",
        headers: { authorization: "Bearer expired" },
      });
      assert.equal(expired.statusCode, 401);
      assert.equal((expired.json() as any).error.code, "UNAUTHENTICATED");
      const res = await other.inject({
        method: "POST",
        url: "/console/api/v1/machines/node-01/reboot",
        headers: { authorization: "Bearer ok" },
      });
      assert.equal(res.statusCode, 202, res.body);
      const op = (res.json() as any).operation;
      assert.equal(op.metadata.annotations["metalman.io/requested-via"], "https");
      assert.equal(op.metadata.annotations["metalman.io/requested-by"], "carol");
      // The instance's own not-found handler is untouched outside the prefix.
      const outside = await other.inject({ url: "/nope" });
      assert.equal(outside.statusCode, 404);
      assert.equal((outside.json() as any).error, "Not Found");
    } finally {
      await other.close();
    }
  });
});
