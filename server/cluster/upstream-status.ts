/**
 * The appliance's view of its upstream cluster, for `/readyz` details, the console's Appliance
 * page and the banner. Other rooms read this interface only (docs/cluster.md "Upstream status").
 */
export interface UpstreamStatus {
  /** `standalone`: Machines from the inventory folder; `cluster`: from the API server. */
  mode: "standalone" | "cluster";
  /** API server URL (cluster mode). */
  server?: string;
  site: string;
  /** `connecting` until the first answer; `offline` while the API server is unreachable. */
  connection: "connecting" | "connected" | "offline";
  /** ISO time the API server stopped answering (while offline). */
  offlineSince?: string;
  /** ISO time of the last list or watch event (or of the last-known state when serving from it). */
  lastSyncAt?: string;
  /** Last transport error, without secrets (a message only). */
  lastError?: string;
  /** Where the served Machines come from right now. */
  servingFrom: "api" | "last-known" | "none";
  /** Status updates made offline, waiting to be replayed; and how many were replayed since start. */
  queuedUpdates: number;
  replayedUpdates: number;
  machines: number;
  resourceVersion: string;
  leader: LeaderStatus;
}

export interface LeaderStatus {
  /** Lease `unbounded-kube/metalman[-<site>]`. */
  lease: string;
  /** This replica's identity (hostname_uuid, as client-go). */
  identity: string;
  isLeader: boolean;
  /** The holder the Lease names (may be another replica), when known. */
  holder?: string;
  /** ISO time this replica last became leader / last renewed. */
  since?: string;
  renewedAt?: string;
}

/**
 * Who may do leader-only work (docs/cluster.md "Leader duties"). Standalone is always the leader.
 * The image cache helper reads it too: every replica warms its own cache (the fix of spec §12
 * item 14), and only the leader prunes shared things and reports pull failures as Events.
 */
export interface LeadershipSignal {
  isLeader(): boolean;
  /** Called with the new role on every change; returns the unsubscribe function. */
  onChange(listener: (isLeader: boolean) => void): () => void;
}

export const ALWAYS_LEADER: LeadershipSignal = {
  isLeader: () => true,
  onChange: () => () => undefined,
};
