import { endpointOf, isCidr, isWireGuardKey } from "./cidr.js";
import type { GatewayNodeStatus, GatewayPool, OverlayResources, SiteGatewayPoolAssignment } from "./resources.js";

/**
 * What the appliance's WireGuard side should look like, computed the way an unbounded-net site
 * node does it (spec §2.8, "How a non-gateway site node reaches a gateway"): one interface
 * `wg<gatewayWireguardPort>` per gateway node of every pool assigned to our site, listening on that
 * port, with exactly one peer (the gateway), endpoint on the gateway's mesh port, AllowedIPs =
 * the pool's routed CIDRs plus the gateway's pod CIDRs, and a route for each of them.
 *
 * Pure: the same resources give the same plan, so the reconciler can diff it against what the
 * kernel (or wireguard-go) has, and tests can check every rule without a tunnel.
 */

export interface PlannedPeer {
  publicKey: string;
  /** `ip:port`; undefined for an Internal pool's gateway outside our network (learned from its traffic). */
  endpoint?: string;
  allowedIPs: string[];
}

export interface PlannedTunnel {
  interfaceName: string;
  listenPort: number;
  mtu: number;
  peer: PlannedPeer;
  /** Where it comes from, for logs, status and the console. */
  gateway: { pool: string; node: string; site?: string; assignment: string };
}

/** A gateway (or pool) that gets no tunnel, and why: shown in status so an operator can act. */
export interface SkippedGateway {
  pool: string;
  node?: string;
  reason:
    | "pool-not-found"
    | "tunnel-protocol-not-wireguard"
    | "no-public-key"
    | "no-port"
    | "port-taken"
    | "no-allowed-ips";
  detail?: string;
}

export interface TunnelPlan {
  tunnels: PlannedTunnel[];
  skipped: SkippedGateway[];
  /** Things that work but an operator should know (dropped CIDRs, no endpoint). */
  warnings: string[];
}

export interface PlanOptions {
  /** The appliance's site (`--site`). Empty: no site, no assignment can name us, no tunnel. */
  site: string;
  /** The gateways' mesh port (unbounded-net's `--wireguard-port`, default 51820). */
  meshPort?: number;
  /** MTU when no Site, pool or assignment sets `tunnelMTU` (WireGuard's usual 1420). */
  defaultMtu?: number;
}

const DEFAULT_MESH_PORT = 51820;
const DEFAULT_MTU = 1420;
/** Ports a site node's gateway interfaces use (allocated from 51821); also keeps `wg<port>` within IFNAMSIZ. */
const MIN_GATEWAY_PORT = 1024;
const MAX_GATEWAY_PORT = 65535;

export function planTunnels(resources: OverlayResources, options: PlanOptions): TunnelPlan {
  const plan: TunnelPlan = { tunnels: [], skipped: [], warnings: [] };
  if (options.site === "") return plan;
  const meshPort = options.meshPort ?? DEFAULT_MESH_PORT;
  const site = resources.sites.find((s) => s.metadata.name === options.site);
  const peered = peeredSites(resources, options.site);
  const poolsByName = new Map(resources.gatewayPools.map((p) => [p.metadata.name, p]));
  const portsTaken = new Set<number>();

  for (const { poolName, assignment } of assignedPools(resources.assignments, options.site)) {
    const pool = poolsByName.get(poolName);
    if (pool === undefined) {
      plan.skipped.push({ pool: poolName, reason: "pool-not-found", detail: `named by ${assignment.metadata.name}` });
      continue;
    }
    // The most specific setting wins: the site↔pool assignment, then the pool, then the site.
    const protocol = assignment.spec.tunnelProtocol ?? pool.spec.tunnelProtocol ?? site?.spec.tunnelProtocol ?? "Auto";
    if (protocol !== "WireGuard" && protocol !== "Auto") {
      plan.skipped.push({ pool: poolName, reason: "tunnel-protocol-not-wireguard", detail: protocol });
      continue;
    }
    const mtu =
      assignment.spec.tunnelMTU ?? pool.spec.tunnelMTU ?? site?.spec.tunnelMTU ?? options.defaultMtu ?? DEFAULT_MTU;
    const nodes = [...(pool.status?.nodes ?? [])].sort((a, b) => a.name.localeCompare(b.name));
    for (const node of nodes) {
      const tunnel = tunnelFor(node, pool, { mtu, meshPort, site: options.site, peered, plan, portsTaken });
      if (tunnel === undefined) continue;
      tunnel.gateway.assignment = assignment.metadata.name;
      plan.tunnels.push(tunnel);
    }
  }
  return plan;
}

interface NodeContext {
  mtu: number;
  meshPort: number;
  site: string;
  peered: ReadonlySet<string>;
  plan: TunnelPlan;
  portsTaken: Set<number>;
}

function tunnelFor(node: GatewayNodeStatus, pool: GatewayPool, ctx: NodeContext): PlannedTunnel | undefined {
  const poolName = pool.metadata.name;
  const skip = (reason: SkippedGateway["reason"], detail?: string): undefined => {
    ctx.plan.skipped.push({ pool: poolName, node: node.name, reason, ...(detail === undefined ? {} : { detail }) });
    return undefined;
  };
  if (!isWireGuardKey(node.wireGuardPublicKey)) return skip("no-public-key");
  const port = node.gatewayWireguardPort;
  if (port === undefined || !Number.isInteger(port) || port < MIN_GATEWAY_PORT || port > MAX_GATEWAY_PORT) {
    return skip("no-port", port === undefined ? undefined : String(port));
  }
  if (ctx.portsTaken.has(port)) return skip("port-taken", String(port));

  const allowedIPs: string[] = [];
  for (const cidr of [...(pool.spec.routedCidrs ?? []), ...(node.podCIDRs ?? [])]) {
    if (!isCidr(cidr)) {
      ctx.plan.warnings.push(`gateway ${node.name} (pool ${poolName}): ignored invalid CIDR ${JSON.stringify(cidr)}`);
    } else if (!allowedIPs.includes(cidr)) {
      allowedIPs.push(cidr);
    }
  }
  if (allowedIPs.length === 0) return skip("no-allowed-ips");

  const ip = endpointIp(node, pool, ctx);
  if (ip === undefined) {
    ctx.plan.warnings.push(
      `gateway ${node.name} (pool ${poolName}): no endpoint (Internal pool, other site): the tunnel waits for the gateway's traffic`,
    );
  }
  ctx.portsTaken.add(port);
  return {
    interfaceName: `wg${port}`,
    listenPort: port,
    mtu: ctx.mtu,
    peer: {
      publicKey: node.wireGuardPublicKey,
      ...(ip === undefined ? {} : { endpoint: endpointOf(ip, ctx.meshPort) }),
      allowedIPs,
    },
    gateway: { pool: poolName, node: node.name, ...(node.siteName ? { site: node.siteName } : {}), assignment: "" },
  };
}

/**
 * The gateway's internal IP when it is in our site or a network-peered one, its external IP when
 * the pool is External, none otherwise (an Internal pool's gateway elsewhere is learned from traffic).
 */
function endpointIp(node: GatewayNodeStatus, pool: GatewayPool, ctx: NodeContext): string | undefined {
  const sameNetwork = node.siteName !== undefined && (node.siteName === ctx.site || ctx.peered.has(node.siteName));
  if (sameNetwork) return node.internalIPs?.[0];
  if (pool.spec.type === "External") return node.externalIPs?.[0];
  return undefined;
}

/** Pools assigned to the site, once each, in name order, with the (first, by name) assignment naming them. */
function assignedPools(
  assignments: readonly SiteGatewayPoolAssignment[],
  site: string,
): { poolName: string; assignment: SiteGatewayPoolAssignment }[] {
  const found = new Map<string, SiteGatewayPoolAssignment>();
  const sorted = [...assignments].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  for (const assignment of sorted) {
    if (assignment.spec.enabled === false || !assignment.spec.sites.includes(site)) continue;
    for (const poolName of assignment.spec.gatewayPools) {
      if (!found.has(poolName)) found.set(poolName, assignment);
    }
  }
  return [...found.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([poolName, assignment]) => ({ poolName, assignment }));
}

/** Sites network-peered with ours by an enabled SitePeering. */
function peeredSites(resources: OverlayResources, site: string): Set<string> {
  const peered = new Set<string>();
  for (const peering of resources.peerings) {
    if (peering.spec.enabled === false || !peering.spec.sites.includes(site)) continue;
    for (const other of peering.spec.sites) if (other !== site) peered.add(other);
  }
  return peered;
}
