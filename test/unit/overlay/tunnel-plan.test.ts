/**
 * The overlay's tunnel plan (spec §2.8, "How a non-gateway site node reaches a gateway"): one
 * `wg<port>` interface per gateway of each pool assigned to our site, endpoint by pool type and
 * site peering, AllowedIPs = routed CIDRs + the gateway's pod CIDRs, and every skip explained.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { GatewayPool, OverlayResources } from "../../../server/overlay/resources.js";
import { planTunnels } from "../../../server/overlay/tunnel-plan.js";

const KEY_A = "QbgUSyYobRwzItqmHAviOMnvBEb7ORLZgpzOmp5fCAI=";
const KEY_B = "8EKtS0Wz5mB5IZ9fbf3jvMUFDSo+Jf01CNPjeZUBpmE=";

function pool(
  name: string,
  type: GatewayPool["spec"]["type"],
  nodes: NonNullable<GatewayPool["status"]>["nodes"],
  extra: Partial<GatewayPool["spec"]> = {},
): GatewayPool {
  return { metadata: { name }, spec: { type, routedCidrs: ["10.96.0.0/12"], ...extra }, status: { nodes } };
}

function resources(over: Partial<OverlayResources> = {}): OverlayResources {
  return {
    sites: [{ metadata: { name: "rack-a" }, spec: { nodeCidrs: ["10.0.0.0/24"] } }],
    gatewayPools: [
      pool("main-gw", "External", [
        {
          name: "gw-2",
          siteName: "central",
          internalIPs: ["10.10.0.2"],
          externalIPs: ["192.0.2.2"],
          wireGuardPublicKey: KEY_B,
          gatewayWireguardPort: 51822,
          podCIDRs: ["10.244.2.0/24"],
        },
        {
          name: "gw-1",
          siteName: "central",
          internalIPs: ["10.10.0.1"],
          externalIPs: ["192.0.2.1"],
          wireGuardPublicKey: KEY_A,
          gatewayWireguardPort: 51821,
          podCIDRs: ["10.244.1.0/24", "fd00:1::/64"],
        },
      ]),
    ],
    assignments: [{ metadata: { name: "rack-a-main" }, spec: { sites: ["rack-a"], gatewayPools: ["main-gw"] } }],
    peerings: [],
    ...over,
  };
}

describe("overlay tunnel plan", () => {
  it("gives one wg<port> tunnel per gateway of an External pool, endpoint = external IP on the mesh port", () => {
    const plan = planTunnels(resources(), { site: "rack-a" });
    assert.deepEqual(plan.skipped, []);
    assert.deepEqual(
      plan.tunnels.map((t) => [t.interfaceName, t.listenPort, t.peer.endpoint, t.peer.publicKey]),
      [
        ["wg51821", 51821, "192.0.2.1:51820", KEY_A],
        ["wg51822", 51822, "192.0.2.2:51820", KEY_B],
      ],
    );
    assert.deepEqual(plan.tunnels[0]?.peer.allowedIPs, ["10.96.0.0/12", "10.244.1.0/24", "fd00:1::/64"]);
    assert.equal(plan.tunnels[0]?.mtu, 1420);
    assert.deepEqual(plan.tunnels[0]?.gateway, {
      pool: "main-gw",
      node: "gw-1",
      site: "central",
      assignment: "rack-a-main",
    });
  });

  it("uses the internal IP for a gateway in our site or a peered site, none for an Internal pool elsewhere", () => {
    const peered = planTunnels(
      resources({ peerings: [{ metadata: { name: "p" }, spec: { sites: ["rack-a", "central"] } }] }),
      { site: "rack-a", meshPort: 51900 },
    );
    assert.equal(peered.tunnels[0]?.peer.endpoint, "10.10.0.1:51900");

    const internal = resources();
    internal.gatewayPools[0]!.spec.type = "Internal";
    const plan = planTunnels(internal, { site: "rack-a" });
    assert.equal(plan.tunnels[0]?.peer.endpoint, undefined);
    assert.match(plan.warnings.join("\n"), /no endpoint/);

    const disabledPeering = planTunnels(
      resources({ peerings: [{ metadata: { name: "p" }, spec: { enabled: false, sites: ["rack-a", "central"] } }] }),
      { site: "rack-a" },
    );
    assert.equal(disabledPeering.tunnels[0]?.peer.endpoint, "192.0.2.1:51820");
  });

  it("serves only pools assigned to our site by an enabled assignment", () => {
    assert.deepEqual(planTunnels(resources(), { site: "rack-b" }).tunnels, []);
    assert.deepEqual(planTunnels(resources(), { site: "" }).tunnels, []);
    const disabled = resources({
      assignments: [
        { metadata: { name: "x" }, spec: { enabled: false, sites: ["rack-a"], gatewayPools: ["main-gw"] } },
      ],
    });
    assert.deepEqual(planTunnels(disabled, { site: "rack-a" }).tunnels, []);
    const missing = resources({
      assignments: [{ metadata: { name: "x" }, spec: { sites: ["rack-a"], gatewayPools: ["nope"] } }],
    });
    assert.deepEqual(planTunnels(missing, { site: "rack-a" }).skipped, [
      { pool: "nope", reason: "pool-not-found", detail: "named by x" },
    ]);
  });

  it("takes the MTU from the assignment, else the pool, else the site", () => {
    const r = resources();
    r.sites[0]!.spec.tunnelMTU = 1380;
    assert.equal(planTunnels(r, { site: "rack-a" }).tunnels[0]?.mtu, 1380);
    r.gatewayPools[0]!.spec.tunnelMTU = 1360;
    assert.equal(planTunnels(r, { site: "rack-a" }).tunnels[0]?.mtu, 1360);
    r.assignments[0]!.spec.tunnelMTU = 1300;
    assert.equal(planTunnels(r, { site: "rack-a" }).tunnels[0]?.mtu, 1300);
  });

  it("skips, with the reason, gateways it cannot build a tunnel for", () => {
    const r = resources();
    r.gatewayPools[0]!.status!.nodes = [
      { name: "no-key", gatewayWireguardPort: 51830, podCIDRs: ["10.1.0.0/24"] },
      { name: "bad-key", wireGuardPublicKey: "not-a-key", gatewayWireguardPort: 51831, podCIDRs: ["10.1.0.0/24"] },
      { name: "no-port", wireGuardPublicKey: KEY_A, podCIDRs: ["10.1.0.0/24"] },
      { name: "p1", wireGuardPublicKey: KEY_A, gatewayWireguardPort: 51840, externalIPs: ["192.0.2.9"] },
      { name: "p2", wireGuardPublicKey: KEY_B, gatewayWireguardPort: 51840, externalIPs: ["192.0.2.8"] },
    ];
    r.gatewayPools[0]!.spec.routedCidrs = ["10.96.0.0/12", "garbage", "10.96.0.0/12"];
    const plan = planTunnels(r, { site: "rack-a" });
    assert.deepEqual(
      plan.skipped.map((s) => [s.node, s.reason]),
      [
        ["bad-key", "no-public-key"],
        ["no-key", "no-public-key"],
        ["no-port", "no-port"],
        ["p2", "port-taken"],
      ],
    );
    assert.deepEqual(
      plan.tunnels.map((t) => [t.gateway.node, t.peer.allowedIPs]),
      [["p1", ["10.96.0.0/12"]]],
    );
    assert.match(plan.warnings.join("\n"), /ignored invalid CIDR "garbage"/);
  });

  it("refuses a pool whose tunnel protocol is not WireGuard", () => {
    const r = resources();
    r.gatewayPools[0]!.spec.tunnelProtocol = "VXLAN";
    const plan = planTunnels(r, { site: "rack-a" });
    assert.deepEqual(plan.tunnels, []);
    assert.deepEqual(plan.skipped, [{ pool: "main-gw", reason: "tunnel-protocol-not-wireguard", detail: "VXLAN" }]);
    r.assignments[0]!.spec.tunnelProtocol = "WireGuard";
    assert.equal(planTunnels(r, { site: "rack-a" }).tunnels.length, 2);
  });

  it("brackets IPv6 endpoints", () => {
    const r = resources();
    r.gatewayPools[0]!.status!.nodes = [
      { name: "v6", wireGuardPublicKey: KEY_A, gatewayWireguardPort: 51821, externalIPs: ["2001:db8::1"] },
    ];
    assert.equal(planTunnels(r, { site: "rack-a" }).tunnels[0]?.peer.endpoint, "[2001:db8::1]:51820");
  });
});
