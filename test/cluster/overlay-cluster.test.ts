/**
 * The overlay's cluster side against the fake API server, driven by the real kubectl: the four
 * net.unbounded-cloud.io kinds are list+watched into one snapshot (only once all four have
 * listed), a GatewayPool status written through its status subresource (as unbounded-net's
 * controller does) reaches the plan, a key rotation is seen, and the appliance's public key is
 * published on the Node that stands for it (label, taint, annotation, InternalIP), which kubectl
 * reads back.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { KubeKeyPublisher } from "../../server/overlay/kube-key-publisher.js";
import { KubeOverlaySource } from "../../server/overlay/kube-overlay-source.js";
import { generateOverlayKey } from "../../server/overlay/overlay-key.js";
import { planTunnels } from "../../server/overlay/tunnel-plan.js";
import { clusterLab, silent, within } from "./cluster-harness.js";

const SPEC_OBJECTS = `
apiVersion: net.unbounded-cloud.io/v1alpha1
kind: Site
metadata: {name: rack-a}
spec:
  nodeCidrs: ["10.0.0.0/24"]
---
apiVersion: net.unbounded-cloud.io/v1alpha1
kind: GatewayPool
metadata: {name: main-gw}
spec: {type: External, nodeSelector: {unbounded-cloud.io/unbounded-net-gateway: "true"}, routedCidrs: ["10.96.0.0/12"]}
---
apiVersion: net.unbounded-cloud.io/v1alpha1
kind: SiteGatewayPoolAssignment
metadata: {name: rack-a-main}
spec: {sites: [rack-a], gatewayPools: [main-gw]}
`;

function poolStatus(key: string) {
  return {
    status: {
      nodes: [
        {
          name: "gw-1",
          siteName: "central",
          internalIPs: ["10.240.0.1"],
          externalIPs: ["192.0.2.1"],
          wireGuardPublicKey: key,
          gatewayWireguardPort: 51821,
          podCIDRs: ["10.244.1.0/24"],
        },
      ],
    },
  };
}

it("overlay resources come from the cluster and the key is published on the appliance's Node", async (t) => {
  const lab = await clusterLab(t);
  const kubectl = lab.kubectl;
  if (kubectl === undefined) return t.skip("kubectl not installed");
  const api = lab.clientFor();
  const source = new KubeOverlaySource({ api, log: silent });
  lab.own({ close: () => source.stop() });
  let changes = 0;
  source.onChange(() => changes++);
  await source.start();
  await within(5_000, "first list of all four kinds", () => source.snapshot() !== undefined);
  assert.deepEqual(planTunnels(source.snapshot()!, { site: "rack-a" }).tunnels, []);

  await kubectl.run(["apply", "--validate=false", "-f", "-"], { input: SPEC_OBJECTS });
  const gatewayKey = generateOverlayKey().publicKey;
  await api.request(
    "PATCH",
    "/apis/net.unbounded-cloud.io/v1alpha1/gatewaypools/main-gw/status",
    poolStatus(gatewayKey),
    "application/merge-patch+json",
  );
  await within(5_000, "the pool status reaches the plan", () => {
    const plan = planTunnels(source.snapshot()!, { site: "rack-a" });
    return plan.tunnels[0]?.peer.publicKey === gatewayKey;
  });
  const plan = planTunnels(source.snapshot()!, { site: "rack-a" });
  assert.deepEqual(
    plan.tunnels.map((x) => [x.interfaceName, x.peer.endpoint, x.peer.allowedIPs]),
    [["wg51821", "192.0.2.1:51820", ["10.96.0.0/12", "10.244.1.0/24"]]],
  );
  assert.ok(changes > 0);

  // The gateway's key rotates: the watch brings the new one.
  const rotated = generateOverlayKey().publicKey;
  await api.request(
    "PATCH",
    "/apis/net.unbounded-cloud.io/v1alpha1/gatewaypools/main-gw/status",
    poolStatus(rotated),
    "application/merge-patch+json",
  );
  await within(
    5_000,
    "the rotated key",
    () => planTunnels(source.snapshot()!, { site: "rack-a" }).tunnels[0]?.peer.publicKey === rotated,
  );

  // Unassigning the pool (kubectl delete) empties the plan.
  await kubectl.run(["delete", "sitegatewaypoolassignment", "rack-a-main"]);
  await within(5_000, "unassigned", () => planTunnels(source.snapshot()!, { site: "rack-a" }).tunnels.length === 0);

  // The appliance's key, on its Node: created once, then patched.
  const mine = generateOverlayKey();
  const publisher = new KubeKeyPublisher(api);
  await publisher.publish({
    nodeName: "metalman-rack-a",
    site: "rack-a",
    publicKey: mine.publicKey,
    internalIP: "10.0.0.5",
  });
  const next = generateOverlayKey();
  await publisher.publish({
    nodeName: "metalman-rack-a",
    site: "rack-a",
    publicKey: next.publicKey,
    internalIP: "10.0.0.5",
  });
  const node = JSON.parse(await kubectl.run(["get", "node", "metalman-rack-a", "-o", "json"]));
  assert.equal(node.metadata.annotations["net.unbounded-cloud.io/wg-pubkey"], next.publicKey);
  assert.equal(node.metadata.labels["net.unbounded-cloud.io/site"], "rack-a");
  assert.deepEqual(node.spec.taints, [
    { key: "unbounded-cloud.io/metalman-appliance", value: "true", effect: "NoSchedule" },
  ]);
  assert.deepEqual(node.status.addresses, [{ type: "InternalIP", address: "10.0.0.5" }]);
  assert.equal(JSON.stringify(node).includes(mine.privateKey), false);
  assert.equal(JSON.stringify(node).includes(next.privateKey), false);
});
