/**
 * Where the appliance's WireGuard public key is published so that gateways add it as a peer
 * (spec §2.8: gateways read the `net.unbounded-cloud.io/wg-pubkey` annotation of member Nodes).
 */
export interface OverlayKeyPublisher {
  publish(member: OverlayMember): Promise<void>;
}

export interface OverlayMember {
  /** The Node object that represents the appliance (docs/overlay.md). */
  nodeName: string;
  site: string;
  publicKey: string;
  /** The appliance's address as the gateways route it (the Node's InternalIP). */
  internalIP: string;
}

export const WG_PUBKEY_ANNOTATION = "net.unbounded-cloud.io/wg-pubkey";
export const SITE_LABEL = "net.unbounded-cloud.io/site";
export const APPLIANCE_LABEL = "unbounded-cloud.io/metalman-appliance";
/** Keeps workloads off the appliance's Node: there is no kubelet behind it. */
export const NO_SCHEDULE_TAINT = {
  key: "unbounded-cloud.io/metalman-appliance",
  value: "true",
  effect: "NoSchedule",
} as const;
