/**
 * Standalone -> cluster: `metalman inventory export` turns the inventory folder into manifests that
 * the real kubectl applies to the (fake) API server: spec, name and labels kept, the site label set,
 * status, the appliance's state and the reboot/repave counters (an empty status in the cluster would
 * make them pending) left behind, an invalid file skipped and named, the BMC Secrets
 * listed (never exported).
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parseAllDocuments } from "yaml";
import { runInventoryCli } from "../../server/app/inventory-cli.js";
import { clusterLab } from "./cluster-harness.js";

const machine = (name: string, mac: string, ip: string, bmc = false) =>
  [
    "apiVersion: unbounded-cloud.io/v1alpha3",
    "kind: Machine",
    `metadata: {name: ${name}, labels: {rack: a}}`,
    "spec:",
    "  pxe:",
    "    image: registry.example/netboot/debian-12:v1",
    `    dhcpLeases: [{mac: "${mac}", ipv4: ${ip}, subnetMask: 255.255.255.0, gateway: 10.0.0.1}]`,
    ...(bmc
      ? [
          "    redfish: {url: https://10.0.1.5, username: admin, passwordRef: {name: bmc-a, namespace: default, key: password}}",
        ]
      : []),
    "  operations: {repaveCounter: 2}",
    "",
  ].join("\n");

test("inventory export | kubectl apply: the folder's Machines land in the cluster, labelled for the site", async (t) => {
  const lab = await clusterLab(t);
  if (!lab.kubectl) return t.skip("kubectl not installed");
  const dir = path.join(lab.tmp, "inventory");
  mkdirSync(dir);
  writeFileSync(path.join(dir, "node-01.yaml"), machine("node-01", "aa:bb:cc:dd:ee:01", "10.0.0.11", true));
  writeFileSync(path.join(dir, "node-02.yaml"), machine("node-02", "aa:bb:cc:dd:ee:02", "10.0.0.12"));
  writeFileSync(
    path.join(dir, "broken.yaml"),
    "apiVersion: unbounded-cloud.io/v1alpha3\nkind: Machine\nmetadata: {}\n",
  );
  let stdout = "";
  let stderr = "";
  const code = await runInventoryCli(
    ["export", "--inventory", dir, "--site", "rack-a"],
    {},
    {
      stdout: (s) => {
        stdout += s;
      },
      stderr: (s) => {
        stderr += s;
      },
    },
  );
  assert.equal(code, 0, stderr);
  assert.match(stderr, /skipped: .*broken\.yaml/);
  assert.match(stderr, /exported 2 Machine\(s\); create these Secrets in the cluster too: default\/bmc-a/);
  const docs = parseAllDocuments(stdout).map((d) => d.toJS());
  assert.deepEqual(
    docs.map((d) => [d.metadata.name, d.metadata.labels]),
    [
      ["node-01", { rack: "a", "unbounded-cloud.io/site": "rack-a" }],
      ["node-02", { rack: "a", "unbounded-cloud.io/site": "rack-a" }],
    ],
  );
  assert.ok(
    docs.every((d) => d.status === undefined && d.metadata.uid === undefined),
    "no status, no server fields",
  );
  assert.ok(!stdout.includes("password:"), "no secret value");

  await lab.kubectl.run([
    "apply",
    "--validate=false",
    "-f",
    path.join(process.cwd(), "deploy", "01-crd-machines.yaml"),
  ]);
  const applied = await lab.kubectl.run(["apply", "--validate=false", "-f", "-"], { input: stdout });
  assert.match(applied, /machine\.unbounded-cloud\.io\/node-01 created/);
  assert.match(applied, /machine\.unbounded-cloud\.io\/node-02 created/);
  const stored = lab.api.get("machines", "node-01")!;
  assert.equal(stored.spec.pxe.dhcpLeases[0].ipv4, "10.0.0.11");
  assert.equal(stored.spec.operations, undefined, "no counters: with an empty status they would repave at once");
  assert.equal(stored.metadata.labels["unbounded-cloud.io/site"], "rack-a");
});
