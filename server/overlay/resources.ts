/**
 * The typed subset of unbounded-net's `net.unbounded-cloud.io/v1alpha1` resources (all
 * cluster-scoped, spec §2.8) that the appliance needs to reach its site's gateways. Fields the
 * overlay does not read are kept on the objects as they came, never required.
 */

export const NET_API_GROUP = "net.unbounded-cloud.io";
export const NET_API_VERSION = "v1alpha1";

/** `Site`, `GatewayPool`, `SiteGatewayPoolAssignment`, `SitePeering`: the tunnel settings they may carry. */
export type TunnelProtocol = "WireGuard" | "IPIP" | "GENEVE" | "VXLAN" | "None" | "Auto";

interface NamedObject {
  metadata: { name: string; resourceVersion?: string };
}

export interface Site extends NamedObject {
  spec: {
    nodeCidrs?: string[];
    tunnelProtocol?: TunnelProtocol;
    tunnelMTU?: number;
  };
}

export interface GatewayNodeStatus {
  name: string;
  siteName?: string;
  internalIPs?: string[];
  externalIPs?: string[];
  wireGuardPublicKey?: string;
  /** The port a site node's interface for this gateway listens on (`wg<port>`), allocated from 51821. */
  gatewayWireguardPort?: number;
  podCIDRs?: string[];
}

export type GatewayPoolType = "External" | "Internal" | "";

export interface GatewayPool extends NamedObject {
  spec: {
    type?: GatewayPoolType;
    routedCidrs?: string[];
    tunnelProtocol?: TunnelProtocol;
    tunnelMTU?: number;
  };
  status?: { nodes?: GatewayNodeStatus[] };
}

export interface SiteGatewayPoolAssignment extends NamedObject {
  spec: {
    enabled?: boolean;
    sites: string[];
    gatewayPools: string[];
    tunnelProtocol?: TunnelProtocol;
    tunnelMTU?: number;
  };
}

export interface SitePeering extends NamedObject {
  spec: {
    enabled?: boolean;
    sites: string[];
  };
}

/** Everything the overlay reads, as one consistent snapshot. */
export interface OverlayResources {
  sites: readonly Site[];
  gatewayPools: readonly GatewayPool[];
  assignments: readonly SiteGatewayPoolAssignment[];
  peerings: readonly SitePeering[];
}

export const EMPTY_RESOURCES: OverlayResources = { sites: [], gatewayPools: [], assignments: [], peerings: [] };
