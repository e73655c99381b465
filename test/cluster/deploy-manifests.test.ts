import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { clusterLab } from "./cluster-harness.js";

const deploy = path.join(process.cwd(), "deploy");

test("deploy/ passes kubectl apply --dry-run=client, and the CRDs install with upstream's names", async (t) => {
  const lab = await clusterLab(t);
  if (!lab.kubectl) return t.skip("kubectl not installed");
  const dry = await lab.kubectl.run(["apply", "--dry-run=client", "--validate=false", "-f", deploy]);
  for (const object of [
    "namespace/unbounded-kube",
    "customresourcedefinition.apiextensions.k8s.io/machines.unbounded-cloud.io",
    "customresourcedefinition.apiextensions.k8s.io/machineoperations.unbounded-cloud.io",
    "serviceaccount/metalman-controller",
    "serviceaccount/metalman-bootstrap",
    "clusterrole.rbac.authorization.k8s.io/metalman-controller",
    "role.rbac.authorization.k8s.io/metalman-cluster-info",
    "rolebinding.rbac.authorization.k8s.io/metalman-events",
    "deployment.apps/metalman-controller-site",
  ]) {
    assert.match(dry, new RegExp(`${object.replace(/[./]/g, "\\$&")} created \\(dry run\\)`), object);
  }
  assert.equal(lab.api.list("customresourcedefinitions").length, 0, "a dry run stores nothing");

  await lab.kubectl.run([
    "apply",
    "--validate=false",
    "-f",
    path.join(deploy, "01-crd-machines.yaml"),
    "-f",
    path.join(deploy, "02-crd-machineoperations.yaml"),
  ]);
  const crd = lab.api.get("customresourcedefinitions", "machines.unbounded-cloud.io")!;
  assert.equal(crd.spec.scope, "Cluster");
  assert.deepEqual(crd.spec.names.shortNames, ["mach"]);
  assert.deepEqual(crd.spec.versions[0].subresources, { status: {} });
  const mop = await lab.kubectl.run([
    "get",
    "crd",
    "machineoperations.unbounded-cloud.io",
    "-o",
    "jsonpath={.spec.names.shortNames[0]} {.spec.versions[0].name}",
  ]);
  assert.equal(mop, "mop v1alpha3");
});

test("kubectl get -w and edit against the fake: a watch sees a change; an edited Machine is stored", async (t) => {
  const lab = await clusterLab(t);
  if (!lab.kubectl) return t.skip("kubectl not installed");
  const machine = (ip: string) => ({
    apiVersion: "unbounded-cloud.io/v1alpha3",
    kind: "Machine",
    metadata: { name: "node-01" },
    spec: {
      pxe: {
        image: "dir:/x",
        dhcpLeases: [{ mac: "aa:bb:cc:dd:ee:01", ipv4: ip, subnetMask: "255.255.255.0", gateway: "10.0.0.1" }],
      },
    },
  });
  lab.api.put("machines", machine("10.0.0.11"));
  // get -w prints the current state, then each change; --request-timeout bounds it.
  const watching = lab.kubectl
    .run(["get", "machines", "-w", "-o", 'jsonpath={.spec.pxe.dhcpLeases[0].ipv4}{"\\n"}', "--request-timeout=3s"])
    .catch((e: Error) => e.message);
  await new Promise((r) => setTimeout(r, 1500));
  lab.api.put("machines", machine("10.0.0.12"));
  const out = await watching;
  assert.match(out, /10\.0\.0\.11[\s\S]*10\.0\.0\.12/);

  // kubectl edit with a scripted editor (sed on the temp file kubectl hands it).
  await lab.kubectl.run(["edit", "--validate=false", "machine", "node-01"], {
    env: { EDITOR: "sed -i s/10.0.0.12/10.0.0.13/" },
  });
  assert.equal(lab.api.get("machines", "node-01")!.spec.pxe.dhcpLeases[0].ipv4, "10.0.0.13");
});
