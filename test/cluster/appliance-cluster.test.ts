import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { startAppliance } from "../../server/app/serve-pxe.js";
import { loopbackConfig, loopbackProbes } from "../unit/app/loopback-appliance.js";
import { clusterLab, silent, within } from "./cluster-harness.js";
import { accessOf, allows, grantsOf } from "./rbac-audit.js";

const RBAC = path.join(process.cwd(), "deploy", "03-rbac.yaml");
/** Granted, but driven by paths this test does not exercise (each named). */
const GRANTED_NOT_EXERCISED = new Set([
  "create unbounded-cloud.io/machineoperations", // the console creates operations
  "get unbounded-cloud.io/machineoperations", // the BMC flows' status writes (fresh GET)
  "update unbounded-cloud.io/machineoperations/status", // the BMC flows' target progress
  "get /secrets", // BMC passwords and pull secrets
]);

const userData = "#cloud-config\nhostname: from-the-cluster\n";

test("serve-pxe --kubeconfig: two appliances share the Lease (one leader, handover on stop), Events and status reach kubectl, TokenRequest feeds /attest's token source, offline boots from the last-known state and replays", async (t) => {
  const lab = await clusterLab(t);
  if (!lab.kubectl) return t.skip("kubectl not installed");
  const kc = lab.kubectl;
  const { api } = lab;
  api.put("namespaces", { metadata: { name: "unbounded-kube" } });
  api.put("serviceaccounts", { metadata: { name: "metalman-bootstrap", namespace: "unbounded-kube" } });
  api.put("services", { metadata: { name: "kube-dns", namespace: "kube-system" }, spec: { clusterIP: "10.96.0.10" } });
  api.put("configmaps", {
    metadata: { name: "cluster-info", namespace: "kube-public" },
    data: {
      kubeconfig:
        "apiVersion: v1\nclusters:\n- cluster:\n    server: https://api.example:6443\n    certificate-authority-data: Q0E=\n  name: ''\n",
    },
  });
  api.put("configmaps", { metadata: { name: "ud-01", namespace: "unbounded-kube" }, data: { "user-data": userData } });
  await kc.run(["apply", "--validate=false", "-f", "-"], {
    input: [
      "apiVersion: unbounded-cloud.io/v1alpha3",
      "kind: Machine",
      "metadata: {name: node-01, labels: {unbounded-cloud.io/site: lab}}",
      "spec:",
      "  pxe:",
      '    image: "dir:/nonexistent"',
      '    dhcpLeases: [{mac: "aa:bb:cc:dd:ee:01", ipv4: "127.0.0.1", subnetMask: "255.0.0.0", gateway: "127.0.0.254"}]',
      "    cloudInit: {userDataConfigMapRef: {name: ud-01, namespace: unbounded-kube}}",
      "",
    ].join("\n"),
  });

  const start = async (name: string) => {
    const dir = path.join(lab.tmp, name);
    mkdirSync(path.join(dir, "inventory"), { recursive: true });
    const config = await loopbackConfig({
      inventory: path.join(dir, "inventory"),
      stateDir: path.join(dir, "state"),
      cacheDir: path.join(dir, "cache"),
      extraArgs: [
        `--kubeconfig=${kc.kubeconfig}`,
        "--site=lab",
        // The overlay has its own proofs (test/lab/overlay-wireguard, test/cluster/overlay-cluster)
        // and its own RBAC (deploy/05-rbac-overlay.yaml); this test audits deploy/03-rbac.yaml.
        "--overlay=off",
        "--leader-elect-lease-duration=2s",
        "--leader-elect-renew-deadline=1500ms",
        "--leader-elect-retry-period=300ms",
      ],
    });
    const appliance = await startAppliance(config, {
      log: process.env.DEBUG_CLUSTER
        ? (await import("pino")).default({ level: "debug" }).child({ replica: name })
        : silent,
      probes: loopbackProbes,
      bmcDrivers: () => undefined,
    });
    return { appliance, config };
  };
  const a = await start("a");
  t.after(() => a.appliance.close({ graceMs: 0 }));
  const b = await start("b");
  t.after(() => b.appliance.close({ graceMs: 0 }));

  // Exactly one leader, and kubectl sees it as the Lease holder.
  await within(
    5000,
    "a leader",
    () => a.appliance.upstream!().leader.isLeader || b.appliance.upstream!().leader.isLeader,
  );
  const [leader, follower] = a.appliance.upstream!().leader.isLeader ? [a, b] : [b, a];
  assert.equal(follower.appliance.upstream!().leader.isLeader, false);
  const holder = await kc.run([
    "get",
    "lease",
    "metalman-lab",
    "-n",
    "unbounded-kube",
    "-o",
    "jsonpath={.spec.holderIdentity}",
  ]);
  assert.equal(holder, leader.appliance.upstream!().leader.identity);

  // Cluster facts reach the templates' context (cluster-info, kube-dns, /version).
  assert.deepEqual(
    { ...leader.appliance.cluster!.backend.facts },
    { apiserverUrl: "https://api.example:6443", caCertBase64: "Q0E=", clusterDNS: "10.96.0.10", version: "v1.30.2" },
  );

  // The Machine's user-data ConfigMap is served over loopback (the Machine's lease IP is 127.0.0.1).
  const url = `http://127.0.0.1:${follower.config.httpPort}/cloud-init/user-data`;
  const served = await fetch(url);
  assert.equal(served.status, 200);
  assert.equal(await served.text(), userData);

  // Status written by a replica lands through the status subresource; kubectl reads it.
  const log = await fetch(`http://127.0.0.1:${follower.config.httpPort}/cloudinit/log`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      event_type: "finish",
      name: "modules-final",
      result: "SUCCESS",
      description: "d",
      origin: "cloudinit",
    }),
  });
  assert.equal(log.status, 200);
  await within(
    3000,
    "CloudInitDone via kubectl",
    async () =>
      (await kc.run([
        "get",
        "machine",
        "node-01",
        "-o",
        "jsonpath={.status.conditions[?(@.type=='CloudInitDone')].status}",
      ])) === "True",
  );

  // BMC actions and attestation results become aggregated Kubernetes Events (one Event, count 3).
  for (let i = 0; i < 3; i++) leader.appliance.events.emit({ step: "bmc.power-on", result: "ok", machine: "node-01" });
  await leader.appliance.cluster!.flushEvents();
  const events = JSON.parse(await kc.run(["get", "events", "-n", "default", "-o", "json"])).items as Array<{
    reason: string;
    count: number;
    involvedObject: { name: string };
  }>;
  const power = events.filter((e) => e.reason === "BmcPowerOn");
  assert.equal(power.length, 1);
  assert.equal(power[0]!.count, 3);
  assert.equal(power[0]!.involvedObject.name, "node-01");
  // More of the same: the one Event's count grows (a patch), no second Event.
  leader.appliance.events.emit({ step: "bmc.power-on", result: "ok", machine: "node-01" });
  await leader.appliance.cluster!.flushEvents();
  const again = JSON.parse(await kc.run(["get", "events", "-n", "default", "-o", "json"])).items.filter(
    (e: { reason: string }) => e.reason === "BmcPowerOn",
  );
  assert.deepEqual(
    again.map((e: { count: number }) => e.count),
    [4],
  );

  // TokenRequest for unbounded-kube/metalman-bootstrap is the /attest token source in cluster mode.
  const issued = await leader.appliance.cluster!.tokens.issue(leader.appliance.inventory.get("node-01")!);
  assert.equal(issued.token, api.tokens.at(-1)!.token);
  assert.equal(api.tokens.at(-1)!.serviceAccount, "metalman-bootstrap");

  // A MachineOperation that finished with ttlSecondsAfterFinished 0 is deleted by the leader.
  api.put("machineoperations", {
    apiVersion: "unbounded-cloud.io/v1alpha3",
    kind: "MachineOperation",
    metadata: { name: "reboot-01" },
    spec: { machineRef: "node-01", operationKind: "HostReboot", ttlSecondsAfterFinished: 0 },
    status: { phase: "Complete", startedAt: "2026-01-01T00:00:00Z", completedAt: "2026-01-01T00:01:00Z" },
  });
  await within(5000, "TTL cleanup", () => !api.get("machineoperations", "reboot-01"));

  // Offline: the API goes away; the follower keeps serving from its last-known state and queues status.
  await follower.appliance.cluster!.backend.flush();
  await api.stop();
  const offline = await fetch(url);
  assert.equal(offline.status, 200, "user-data served from the last-known ConfigMap");
  assert.equal(await offline.text(), userData);
  const queued = await fetch(`http://127.0.0.1:${follower.config.httpPort}/cloudinit/log`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ event_type: "start", name: "init-local", description: "d", origin: "cloudinit" }),
  });
  assert.equal(queued.status, 200);
  await within(3000, "queued", () => follower.appliance.upstream!().queuedUpdates === 1);
  const ready = await (await fetch(`http://127.0.0.1:${follower.config.healthPort}/readyz?verbose`)).text();
  assert.match(ready, /offline since/);

  const servedStatus = JSON.stringify(follower.appliance.inventory.get("node-01")!.status);
  await api.start();
  await within(
    Number(process.env.WAIT ?? 10_000),
    "queue replayed",
    () => follower.appliance.upstream!().queuedUpdates === 0,
  );
  assert.equal(
    JSON.stringify(api.get("machines", "node-01")!.status),
    servedStatus,
    "the offline write reached the API server",
  );
  assert.equal(follower.appliance.upstream!().queuedUpdates, 0);

  // Handover: the leader stops and releases the Lease; the other replica takes it.
  await leader.appliance.close({ graceMs: 0 });
  await within(5000, "handover", () => follower.appliance.upstream!().leader.isLeader);
  const holder2 = await kc.run([
    "get",
    "lease",
    "metalman-lab",
    "-n",
    "unbounded-kube",
    "-o",
    "jsonpath={.spec.holderIdentity}",
  ]);
  assert.equal(holder2, follower.appliance.upstream!().leader.identity);

  // RBAC: every request the appliances made is granted by deploy/03-rbac.yaml, and every verb
  // granted there is used (here, or by a path named in GRANTED_NOT_EXERCISED).
  const grants = grantsOf(RBAC);
  const used = new Set<string>();
  for (const request of api.requests) {
    if (request.userAgent?.startsWith("kubectl")) continue;
    const access = accessOf(request);
    if (!access) continue;
    assert.ok(
      grants.some((g) => allows(g, access)),
      `not granted by deploy/03-rbac.yaml: ${JSON.stringify(access)} (${request.method} ${request.path})`,
    );
    used.add(`${access.verb} ${access.group}/${access.resource}`);
  }
  for (const { rule } of grants) {
    for (const group of rule.apiGroups) {
      for (const resource of rule.resources) {
        for (const verb of rule.verbs) {
          const key = `${verb} ${group}/${resource}`;
          assert.ok(used.has(key) || GRANTED_NOT_EXERCISED.has(key), `granted but never used: ${key}`);
        }
      }
    }
  }
});
