import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { KubeMachineBackend } from "../../server/cluster/kube-backend.js";
import { setCondition } from "../../server/inventory/conditions.js";
import { clusterLab, silent, within } from "./cluster-harness.js";

const machine = (name: string, ip: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: "unbounded-cloud.io/v1alpha3",
  kind: "Machine",
  metadata: { name },
  spec: {
    pxe: {
      image: "dir:/x",
      dhcpLeases: [{ mac: "aa:bb:cc:dd:ee:01", ipv4: ip, subnetMask: "255.255.255.0", gateway: "10.0.0.1" }],
    },
    operations: { repaveCounter: 1 },
    ...extra,
  },
});
const cond = (type: string, reason: string) => ({
  type,
  status: "True" as const,
  reason,
  message: reason,
  lastTransitionTime: "2026-01-01T00:00:00Z",
});

test("API down: the backend serves the last-known Machines (also after a restart), queues status, and replays it on reconnect without clobbering upstream changes", async (t) => {
  const lab = await clusterLab(t);
  if (!lab.kubectl) return t.skip("kubectl not installed");
  lab.api.put("machines", machine("node-01", "10.0.0.11"));
  const first = lab.own(
    new KubeMachineBackend({
      api: lab.clientFor(),
      site: "",
      stateDir: lab.stateDir,
      log: silent,
      backoffMs: 20,
      maxBackoffMs: 200,
    }),
  );
  await first.start();
  assert.ok(first.byIp("10.0.0.11"));
  await first.flush();
  await first.close();

  // Restart with the API server down: served from <stateDir>/cluster/last-known.json.
  await lab.api.stop();
  const backend = lab.own(
    new KubeMachineBackend({
      api: lab.clientFor(),
      site: "",
      stateDir: lab.stateDir,
      log: silent,
      backoffMs: 20,
      maxBackoffMs: 200,
    }),
  );
  await backend.start(3000);
  assert.equal(backend.byIp("10.0.0.11")?.metadata.name, "node-01", "served from the last-known state");
  await within(3000, "offline", () => backend.upstream().connection === "offline");
  assert.equal(backend.upstream().servingFrom, "last-known");

  // Two writers while offline: both land in the queue and are served at once.
  const a = await backend.updateStatus("node-01", (m) => ({
    ...m.status,
    operations: { ...m.status?.operations, repaveCounter: 1 },
  }));
  assert.equal(a.outcome, "updated");
  await backend.updateStatus("node-01", (m) => ({
    ...m.status,
    conditions: setCondition(m.status?.conditions, cond("CloudInitDone", "Succeeded")),
  }));
  assert.equal(backend.upstream().queuedUpdates, 2);
  assert.equal(backend.get("node-01")?.status?.operations?.repaveCounter, 1, "the queued write is served");

  // Meanwhile upstream: an operator changes the spec and another controller writes its own condition.
  const now = lab.api.get("machines", "node-01")!;
  lab.api.put("machines", {
    ...now,
    spec: { ...now.spec, pxe: { ...now.spec.pxe, image: "dir:/newer" } },
    status: { conditions: [cond("Provisioned", "Other")] },
  });

  await lab.api.start();
  await within(
    5000,
    "queue replayed",
    () => backend.upstream().queuedUpdates === 0 && backend.upstream().connection === "connected",
  );
  const stored = lab.api.get("machines", "node-01")!;
  assert.equal(stored.spec.pxe.image, "dir:/newer", "the newer spec is kept");
  assert.equal(stored.status.operations.repaveCounter, 1, "queued field replayed");
  assert.deepEqual(
    stored.status.conditions.map((c: { type: string }) => c.type).sort(),
    ["CloudInitDone", "Provisioned"],
    "both writers' conditions are there",
  );
  await within(2000, "served view caught up", () => backend.get("node-01")?.spec.pxe?.image === "dir:/newer");
  assert.equal(backend.upstream().replayedUpdates, 2);
});

test("kill -9 during an outage loses no queued status update; a corrupt last-known file is kept aside, not replaced silently", async (t) => {
  const lab = await clusterLab(t);
  if (!lab.kubectl) return t.skip("kubectl not installed");
  lab.api.put("machines", machine("node-01", "10.0.0.11"));
  const seed = lab.own(new KubeMachineBackend({ api: lab.clientFor(), site: "", stateDir: lab.stateDir, log: silent }));
  await seed.start();
  await seed.flush();
  await seed.close();
  await lab.api.stop();

  const child = spawn(
    process.execPath,
    [
      path.join(path.dirname(fileURLToPath(import.meta.url)), "offline-child.js"),
      lab.kubectl.kubeconfig,
      lab.stateDir,
      "FromKilledProcess",
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  t.after(() => child.kill("SIGKILL"));
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("child did not queue within 15 s")), 15_000);
    child.stdout.on("data", (d: Buffer) => {
      if (d.toString().includes("queued")) {
        clearTimeout(timer);
        resolve(d.toString());
      }
    });
  });
  assert.match(line, /queued updated 1/);
  child.kill("SIGKILL");
  await new Promise((r) => child.once("exit", r));

  await lab.api.start();
  const backend = lab.own(
    new KubeMachineBackend({ api: lab.clientFor(), site: "", stateDir: lab.stateDir, log: silent, backoffMs: 20 }),
  );
  await backend.start();
  await within(
    5000,
    "replayed after kill -9",
    () => lab.api.get("machines", "node-01")?.status?.conditions?.[0]?.reason === "FromKilledProcess",
  );
  await within(5000, "queue emptied after the replay", () => backend.upstream().queuedUpdates === 0);
  await backend.close();

  // A damaged last-known file: moved to .corrupt, reported, never overwritten in place.
  const file = path.join(lab.stateDir, "cluster", "last-known.json");
  await writeFile(file, "{ torn");
  await lab.api.stop();
  const after = lab.own(
    new KubeMachineBackend({ api: lab.clientFor(), site: "", stateDir: lab.stateDir, log: silent }),
  );
  await after.start(500);
  const problem = after.problems().find((p) => p.kind === "state");
  assert.match(problem?.message ?? "", /unreadable.*kept as .*last-known\.json\.corrupt/);
  const { readFile } = await import("node:fs/promises");
  assert.equal(await readFile(`${file}.corrupt`, "utf8"), "{ torn");
});
