import assert from "node:assert/strict";
import { test } from "node:test";
import { KubeMachineBackend } from "../../server/cluster/kube-backend.js";
import { UNCHANGED } from "../../server/inventory/backend.js";
import { setCondition } from "../../server/inventory/conditions.js";
import { clusterLab, machineYaml, silent, within } from "./cluster-harness.js";

const condition = (type: string, reason: string) => ({
  type,
  status: "True" as const,
  reason,
  message: reason,
  lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
});

test("kubectl apply / patch / delete of Machines reaches the backend's MAC and IP indexes fast, for this site only", async (t) => {
  const lab = await clusterLab(t);
  if (!lab.kubectl) return t.skip("kubectl not installed");
  const backend = lab.own(
    new KubeMachineBackend({ api: lab.clientFor(), site: "rack-a", stateDir: lab.stateDir, log: silent }),
  );
  await backend.start();
  assert.equal(backend.upstream().connection, "connected");

  await lab.kubectl.run(["apply", "--validate=false", "-f", "-"], {
    input: [
      machineYaml("node-01", { mac: "AA:BB:CC:DD:EE:01", ip: "10.0.0.11", site: "rack-a" }),
      machineYaml("node-b", { mac: "aa:bb:cc:dd:ee:02", ip: "10.0.0.12", site: "rack-b" }),
      machineYaml("node-nolabel", { mac: "aa:bb:cc:dd:ee:03", ip: "10.0.0.13" }),
    ].join("---\n"),
  });
  const added = await within(2000, `node-01 by MAC ${JSON.stringify(backend.problems())}`, () =>
    backend.byMac("aa:bb:cc:dd:ee:01"),
  );
  assert.equal(backend.byIp("10.0.0.11")?.metadata.name, "node-01");
  assert.equal(backend.byMac("aa:bb:cc:dd:ee:02"), undefined, "another site's Machine is not served");
  assert.equal(backend.byMac("aa:bb:cc:dd:ee:03"), undefined, "an unlabelled Machine is not served with --site");

  // Latency from the API write to the index, measured without kubectl's start-up time.
  const t0 = performance.now();
  lab.api.put("machines", {
    apiVersion: "unbounded-cloud.io/v1alpha3",
    kind: "Machine",
    metadata: { name: "node-01", labels: { "unbounded-cloud.io/site": "rack-a" } },
    spec: {
      pxe: {
        image: "dir:/x",
        dhcpLeases: [{ mac: "aa:bb:cc:dd:ee:01", ipv4: "10.0.0.21", subnetMask: "255.255.255.0", gateway: "10.0.0.1" }],
      },
    },
  });
  await within(100, "changed lease visible", () => backend.byIp("10.0.0.21"));
  const changeMs = performance.now() - t0;
  assert.equal(backend.byIp("10.0.0.11"), undefined);

  await lab.kubectl.run([
    "patch",
    "machine",
    "node-01",
    "--type=merge",
    "-p",
    '{"spec":{"pxe":{"dhcpLeases":[{"mac":"aa:bb:cc:dd:ee:01","ipv4":"10.0.0.31","subnetMask":"255.255.255.0","gateway":"10.0.0.1"}]}}}',
  ]);
  await within(2000, "patched lease", () => backend.byIp("10.0.0.31"));

  // Relabelling a Machine out of the site removes it; deleting removes it.
  const events: string[] = [];
  backend.watch((e) => events.push(`${e.type} ${e.machine.metadata.name}`));
  await lab.kubectl.run(["delete", "machine", "node-01"]);
  await within(2000, "node-01 deleted", () => !backend.get("node-01"));
  assert.deepEqual(events, ["DELETED node-01"]);
  t.diagnostic(`API-to-index: first add (kubectl) ${added.toFixed(0)} ms, change ${changeMs.toFixed(1)} ms`);
});

test("status goes through the status subresource with conflict retry, and kubectl sees it", async (t) => {
  const lab = await clusterLab(t);
  if (!lab.kubectl) return t.skip("kubectl not installed");
  const backend = lab.own(
    new KubeMachineBackend({ api: lab.clientFor(), site: "", stateDir: lab.stateDir, log: silent }),
  );
  await backend.start();
  await lab.kubectl.run(["apply", "--validate=false", "-f", "-"], {
    input: machineYaml("node-01", { mac: "aa:bb:cc:dd:ee:01", ip: "10.0.0.11" }),
  });
  await within(2000, "node-01", () => backend.get("node-01"));

  lab.api.injectStatusConflicts("machines", "node-01", 2);
  const seen: number[] = [];
  const result = await backend.updateStatus("node-01", (m) => {
    seen.push(Number(m.metadata.resourceVersion));
    return { ...m.status, conditions: setCondition(m.status?.conditions, condition("CloudInitDone", "Succeeded")) };
  });
  assert.equal(result.outcome, "updated");
  assert.equal(result.attempts, 3, "two 409s, then the write lands");
  assert.ok(seen[1]! > seen[0]! && seen[2]! > seen[1]!, "every retry decided on a fresh GET");
  // Read-your-writes: the backend serves the write at once.
  assert.equal(backend.get("node-01")?.status?.conditions?.[0]?.reason, "Succeeded");
  const fromKubectl = await lab.kubectl.run([
    "get",
    "machine",
    "node-01",
    "-o",
    "jsonpath={.status.conditions[0].type}={.status.conditions[0].reason}",
  ]);
  assert.equal(fromKubectl, "CloudInitDone=Succeeded");
  const puts = lab.api.requests.filter((r) => r.method === "PUT");
  assert.ok(
    puts.every((r) => r.path.endsWith("/node-01/status")),
    "only the status subresource is written",
  );
  assert.equal((await backend.updateStatus("node-01", () => UNCHANGED)).outcome, "unchanged");
});

test("a dropped watch resumes from its version; a compacted one (410 Gone) lists again and misses nothing", async (t) => {
  const lab = await clusterLab(t);
  if (!lab.kubectl) return t.skip("kubectl not installed");
  const backend = lab.own(
    new KubeMachineBackend({ api: lab.clientFor(), site: "", stateDir: lab.stateDir, log: silent, backoffMs: 20 }),
  );
  await backend.start();
  const m = (name: string, ip: string) => ({
    apiVersion: "unbounded-cloud.io/v1alpha3",
    kind: "Machine",
    metadata: { name },
    spec: {
      pxe: {
        image: "dir:/x",
        dhcpLeases: [
          {
            mac: `aa:bb:cc:dd:ee:${ip.split(".")[3]!.padStart(2, "0")}`,
            ipv4: ip,
            subnetMask: "255.255.255.0",
            gateway: "10.0.0.1",
          },
        ],
      },
    },
  });
  lab.api.put("machines", m("a", "10.0.0.1"));
  await within(2000, "a", () => backend.get("a"));
  await new Promise((r) => setTimeout(r, 300)); // a bookmark moves the version on
  const listsBefore = lab.api.requests.filter(
    (r) =>
      r.method === "GET" &&
      !r.path.includes("watch") &&
      r.path.startsWith("/apis/unbounded-cloud.io/v1alpha3/machines"),
  ).length;

  lab.api.dropWatches();
  lab.api.put("machines", m("b", "10.0.0.2"));
  await within(3000, "b after a plain drop", () => backend.get("b"));
  const resumed = lab.api.requests
    .filter((r) => r.path.includes("/machines?") && r.path.includes("watch=true"))
    .at(-1)!;
  assert.match(resumed.path, /resourceVersion=[1-9]/, "the watch resumed from a version");
  assert.ok(resumed.path.includes("allowWatchBookmarks=true"));

  // Compaction while disconnected: the resume is answered 410; a fresh list brings c and drops a.
  lab.api.dropWatches();
  lab.api.remove("machines", "a");
  lab.api.put("machines", m("c", "10.0.0.3"));
  lab.api.compact();
  await within(3000, "c and not a after 410", () => backend.get("c") && !backend.get("a"));
  const listsAfter = lab.api.requests.filter(
    (r) =>
      r.method === "GET" &&
      !r.path.includes("watch") &&
      r.path.startsWith("/apis/unbounded-cloud.io/v1alpha3/machines"),
  ).length;
  assert.ok(listsAfter > listsBefore, "410 Gone led to a new list");
  assert.deepEqual(
    backend.list().map((x) => x.metadata.name),
    ["b", "c"],
  );
});
