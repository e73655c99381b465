/**
 * The overlay against a real WireGuard peer (issue 12 proof): a "gateway" namespace runs
 * wireguard-go with the key and port a GatewayPool status announces and a pod CIDR behind it;
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
import { generateOverlayKey, type OverlayKey } from "../../server/overlay/overlay-key.js";
import { OverlayReconciler } from "../../server/overlay/overlay-reconciler.js";
import { StaticOverlaySource } from "../../server/overlay/overlay-source.js";
import type { OverlayResources } from "../../server/overlay/resources.js";
import { WgCommandDriver } from "../../server/overlay/wg-command-driver.js";
import { addNamespace, destroyNamespaces, labSuite, run, runInNs, runOk } from "./harness.js";

const APP = "ovl-app";
const GW = "ovl-gw";
const GW_IF = "ovlgw0";
const PORT = 51871;
const TUNNEL = `wg${PORT}`;
const NODE_IP = "10.233.0.5";
const POD_IP = "10.232.1.1";
const POD_CIDR = "10.232.1.0/24";

function resources(gatewayKey: string | undefined): OverlayResources {
  return {
    sites: [{ metadata: { name: "rack-a" }, spec: {} }],
    gatewayPools: [
      {
        metadata: { name: "main-gw" },
        spec: { type: "External" },
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
      },
    ],
    assignments: [{ metadata: { name: "rack-a-main" }, spec: { sites: ["rack-a"], gatewayPools: ["main-gw"] } }],
    peerings: [],
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

labSuite("overlay: WireGuard tunnels to a gateway from GatewayPool status", ["wg", "wireguard-go", "ping"], () => {
  const appKey = generateOverlayKey();
  const source = new StaticOverlaySource();
  const reconciler = new OverlayReconciler({
    source,
    driver: new WgCommandDriver({ netns: APP }),
    key: appKey,
    site: "rack-a",
    log: pino({ level: "silent" }),
    metrics: new Registry(),
    routeSource: NODE_IP,
    checkIntervalMs: 60_000,
  });
  let gatewayKey: OverlayKey;

  before(async () => {
    await cleanup();
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
    await reconciler.stop();
    await cleanup();
  });

  it("before any resources: no tunnel, the pod network is unreachable", async () => {
    await reconciler.trigger();
    assert.equal(reconciler.status().state, "waiting-for-resources");
    assert.equal(await pingPod(1), false);
  });

  it("configures itself from the GatewayPool status and pings a pod address through the tunnel", async () => {
    reconciler.start();
    source.set(resources(gatewayKey.publicKey));
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
    source.set(resources(rotated.publicKey));
    await reconciler.trigger();
    assert.deepEqual(await appPeers(), [rotated.publicKey], "old peer replaced, not kept beside");
    assert.equal(await pingPod(10), true, "ping after rotation");
    gatewayKey = rotated;
  });

  it("withdraws the tunnel and its routes when the gateway disappears", async () => {
    source.set(resources(undefined));
    await reconciler.trigger();
    const link = await runInNs(APP, ["ip", "link", "show", TUNNEL]);
    assert.notEqual(link.code, 0, "interface removed");
    const route = await runInNs(APP, ["ip", "route", "show", POD_CIDR]);
    assert.equal(route.stdout.trim(), "");
    assert.equal(await pingPod(1), false);
    assert.deepEqual(reconciler.status().tunnels, []);
  });
});
