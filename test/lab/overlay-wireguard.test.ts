/**
 * The overlay against a real WireGuard peer (issue 12 proof): a "gateway" namespace runs
 * wireguard-go with the key and port a GatewayPool status announces (served by the fake API
 * server, the objects applied with the real kubectl, the status written through the status
 * subresource as unbounded-net's controller does) and a pod address behind it;
 * the appliance's reconciler (real `wg`/`ip`/wireguard-go in its own namespace) configures itself
 * from the resources and pings a pod address through the tunnel; the gateway's key rotates and
 * the appliance follows; the gateway leaves and the tunnel and routes are withdrawn.
 *
 * Topology (all inside namespaces this test creates):
 *   [ovl-app] ovl-a 10.231.0.2/24, node IP 10.233.0.5 on lo  <=>  [ovl-gw] ovl-g 10.231.0.1/24, ovlgw0, pod 10.232.1.1 on lo
 */
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { after, before, it } from "node:test";
import { pino } from "pino";
import { Registry } from "prom-client";
import { HttpKubeApi, loadKubeConfig } from "../../server/cluster/kube-api.js";
import { KubeOverlaySource } from "../../server/overlay/kube-overlay-source.js";
import { generateOverlayKey, type OverlayKey } from "../../server/overlay/overlay-key.js";
import { OverlayReconciler } from "../../server/overlay/overlay-reconciler.js";
import { WgCommandDriver } from "../../server/overlay/wg-command-driver.js";
import { FakeKubeApi } from "../support/fake-kube-api.js";
import { Kubectl } from "../support/kubectl.js";
import { addNamespace, destroyNamespaces, labSuite, run, runInNs, runOk } from "./harness.js";

const APP = "ovl-app";
const GW = "ovl-gw";
const GW_IF = "ovlgw0";
const PORT = 51871;
const TUNNEL = `wg${PORT}`;
const NODE_IP = "10.233.0.5";
const POD_IP = "10.232.1.1";
const POD_CIDR = "10.232.1.0/24";

const SPEC_OBJECTS = `
apiVersion: net.unbounded-cloud.io/v1alpha1
kind: Site
metadata: {name: rack-a}
spec: {nodeCidrs: ["10.231.0.0/24"]}
---
apiVersion: net.unbounded-cloud.io/v1alpha1
kind: GatewayPool
metadata: {name: main-gw}
spec: {type: External, nodeSelector: {unbounded-cloud.io/unbounded-net-gateway: "true"}}
---
apiVersion: net.unbounded-cloud.io/v1alpha1
kind: SiteGatewayPoolAssignment
metadata: {name: rack-a-main}
spec: {sites: [rack-a], gatewayPools: [main-gw]}
`;

/** The pool's status as unbounded-net's controller writes it: one gateway, or none. */
function poolStatus(gatewayKey: string | undefined) {
  return {
    status: {
      nodes:
        gatewayKey === undefined
          ? []
          : [
              {
                name: "gw-1",
                siteName: "central",
                internalIPs: ["10.240.0.1"],
                externalIPs: ["10.231.0.1"],
                wireGuardPublicKey: gatewayKey,
                gatewayWireguardPort: PORT,
                podCIDRs: [POD_CIDR],
              },
            ],
    },
  };
}

async function cleanup(): Promise<void> {
  await destroyNamespaces([APP, GW]);
  for (const name of [TUNNEL, GW_IF]) await rm(`/var/run/wireguard/${name}.sock`, { force: true });
}

/** The gateway side, set up by hand as an unbounded-net gateway would be. */
async function gatewayUp(applianceKey: string): Promise<OverlayKey> {
  const key = generateOverlayKey();
  await runOk([
    "ip",
    "netns",
    "exec",
    GW,
    "env",
    "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1",
    "wireguard-go",
    GW_IF,
  ]);
  await setGatewayKey(key);
  await runOk([
    "ip",
    "netns",
    "exec",
    GW,
    "wg",
    "set",
    GW_IF,
    "listen-port",
    "51820",
    "peer",
    applianceKey,
    "allowed-ips",
    `${NODE_IP}/32`,
  ]);
  return key;
}

async function setGatewayKey(key: OverlayKey): Promise<void> {
  const r = await run([
    "ip",
    "netns",
    "exec",
    GW,
    "sh",
    "-c",
    `umask 077; printf '%s' '${key.privateKey}' > /tmp/ovl-gw.key; wg set ${GW_IF} private-key /tmp/ovl-gw.key; rm -f /tmp/ovl-gw.key`,
  ]);
  assert.equal(r.code, 0, r.stderr);
}

async function pingPod(attempts: number): Promise<boolean> {
  for (let i = 0; i < attempts; i++) {
    const r = await runInNs(APP, ["ping", "-c", "1", "-W", "1", POD_IP], { timeoutMs: 5_000 });
    if (r.code === 0) return true;
  }
  return false;
}

async function appPeers(): Promise<string[]> {
  const r = await runInNs(APP, ["wg", "show", TUNNEL, "peers"]);
  return r.code === 0 ? r.stdout.split("\n").filter(Boolean) : [];
}

labSuite(
  "overlay: WireGuard tunnels to a gateway from GatewayPool status",
  ["wg", "wireguard-go", "ping", "kubectl"],
  () => {
    const appKey = generateOverlayKey();
    const fakeApi = new FakeKubeApi({ bookmarkMs: 200 });
    let kubectl: Kubectl;
    let api: HttpKubeApi;
    let source: KubeOverlaySource;
    let reconciler: OverlayReconciler;
    const setPoolStatus = async (gatewayKey: string | undefined): Promise<void> => {
      await api.request(
        "PATCH",
        "/apis/net.unbounded-cloud.io/v1alpha1/gatewaypools/main-gw/status",
        poolStatus(gatewayKey),
        "application/merge-patch+json",
      );
    };
    /** Waits (bounded) until the watch has brought the pool's gateway key (or its absence) into the snapshot. */
    const seen = async (gatewayKey: string | undefined): Promise<void> => {
      for (let i = 0; i < 200; i++) {
        const nodes = source.snapshot()?.gatewayPools.find((p) => p.metadata.name === "main-gw")?.status?.nodes ?? [];
        if (gatewayKey === undefined ? nodes.length === 0 : nodes[0]?.wireGuardPublicKey === gatewayKey) return;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error("the fake API's watch did not bring the pool status");
    };
    let gatewayKey: OverlayKey;

    before(async () => {
      await cleanup();
      await fakeApi.start();
      kubectl = new Kubectl("kubectl", fakeApi.url);
      api = new HttpKubeApi(await loadKubeConfig({ kubeconfig: kubectl.kubeconfig }), { timeoutMs: 5_000 });
      source = new KubeOverlaySource({ api, log: pino({ level: "silent" }) });
      reconciler = new OverlayReconciler({
        source,
        driver: new WgCommandDriver({ netns: APP }),
        key: appKey,
        site: "rack-a",
        log: pino({ level: "silent" }),
        metrics: new Registry(),
        routeSource: NODE_IP,
        checkIntervalMs: 60_000,
      });
      await addNamespace(APP);
      await addNamespace(GW);
      await runOk(["ip", "link", "add", "ovl-a", "netns", APP, "type", "veth", "peer", "ovl-g", "netns", GW]);
      await runOk(["ip", "-n", APP, "addr", "add", "10.231.0.2/24", "dev", "ovl-a"]);
      await runOk(["ip", "-n", APP, "link", "set", "ovl-a", "up"]);
      // This kernel has no dummy links: the node and pod addresses live on lo.
      await runOk(["ip", "-n", APP, "addr", "add", `${NODE_IP}/32`, "dev", "lo"]);
      await runOk(["ip", "-n", GW, "addr", "add", "10.231.0.1/24", "dev", "ovl-g"]);
      await runOk(["ip", "-n", GW, "link", "set", "ovl-g", "up"]);
      await runOk(["ip", "-n", GW, "addr", "add", `${POD_IP}/32`, "dev", "lo"]);
      gatewayKey = await gatewayUp(appKey.publicKey);
      await runOk(["ip", "-n", GW, "link", "set", GW_IF, "up"]);
      // Replies to the appliance's node IP go back through the tunnel, not the underlay.
      await runOk(["ip", "-n", GW, "route", "add", `${NODE_IP}/32`, "dev", GW_IF]);
    });

    after(async () => {
      await reconciler?.stop();
      await source?.stop();
      api?.close();
      await fakeApi.stop();
      kubectl?.cleanup();
      await cleanup();
    });

    it("before any resources: no tunnel, the pod network is unreachable", async () => {
      await reconciler.trigger();
      assert.equal(reconciler.status().state, "waiting-for-resources");
      assert.equal(await pingPod(1), false);
    });

    it("configures itself from the GatewayPool status and pings a pod address through the tunnel", async () => {
      await source.start();
      reconciler.start();
      await kubectl.run(["apply", "--validate=false", "-f", "-"], { input: SPEC_OBJECTS });
      await setPoolStatus(gatewayKey.publicKey);
      await seen(gatewayKey.publicKey);
      await reconciler.trigger();
      assert.equal(reconciler.status().lastError, undefined);
      assert.deepEqual(await appPeers(), [gatewayKey.publicKey]);
      const route = await runInNs(APP, ["ip", "route", "show", POD_CIDR]);
      assert.match(route.stdout, new RegExp(`${POD_CIDR.replace(/[./]/g, "\\$&")} dev ${TUNNEL} .*src ${NODE_IP}`));
      assert.equal(await pingPod(10), true, "ping through the tunnel");
      // The gateway really received it over WireGuard from our key.
      const gwSide = await runInNs(GW, ["wg", "show", GW_IF, "transfer"]);
      assert.match(gwSide.stdout, new RegExp(`${appKey.publicKey.replace(/[+/=]/g, "\\$&")}\\t[1-9]\\d*\\t[1-9]\\d*`));
      await reconciler.trigger();
      const status = reconciler.status();
      assert.equal(status.state, "ok");
      assert.equal(status.tunnels[0]?.healthy, true);
      assert.equal(status.tunnels[0]?.endpoint, "10.231.0.1:51820");
      assert.equal(JSON.stringify(status).includes(appKey.privateKey), false);
    });

    it("follows the gateway's key rotation", async () => {
      const rotated = generateOverlayKey();
      await setGatewayKey(rotated);
      await setPoolStatus(rotated.publicKey);
      await seen(rotated.publicKey);
      await reconciler.trigger();
      assert.deepEqual(await appPeers(), [rotated.publicKey], "old peer replaced, not kept beside");
      assert.equal(await pingPod(10), true, "ping after rotation");
      gatewayKey = rotated;
    });

    it("withdraws the tunnel and its routes when the gateway disappears", async () => {
      await setPoolStatus(undefined);
      await seen(undefined);
      await reconciler.trigger();
      const link = await runInNs(APP, ["ip", "link", "show", TUNNEL]);
      assert.notEqual(link.code, 0, "interface removed");
      const route = await runInNs(APP, ["ip", "route", "show", POD_CIDR]);
      assert.equal(route.stdout.trim(), "");
      assert.equal(await pingPod(1), false);
      assert.deepEqual(reconciler.status().tunnels, []);
    });
  },
);
