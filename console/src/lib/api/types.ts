/**
 * The console API as the browser sees it (/work/wt/console-contract.md, docs/management-api.md).
 * Shapes only: the server is the authority, these types say what the views may rely on.
 */
export type Role = "viewer" | "operator" | "admin";

export interface SessionUser {
  name: string;
  role: Role;
}

export interface Session {
  user: SessionUser;
  csrfToken: string;
}

export interface ApiErrorBody {
  error: { code: string; message: string; detail?: string; [context: string]: unknown };
}

export interface ConditionSummary {
  type: string;
  status: string;
  reason?: string;
}

export interface OperationSummary {
  name: string;
  kind: string;
  phase: string;
  stage?: string;
  message?: string;
  createdAt?: string;
  requestedBy?: string;
}

export interface LastEvent {
  seq: number;
  time: string;
  step: string;
  result: string;
  reason?: string;
}

export interface MachineSummary {
  name: string;
  phase: string;
  image?: string;
  bmc: "redfish" | "ipmi" | "none";
  power: string;
  repavePending: boolean;
  quarantined: boolean;
  activeOperation?: OperationSummary;
  conditions: ConditionSummary[];
  site?: string;
  ip?: string;
  mac?: string;
  lastEvent?: LastEvent;
  failed?: boolean;
  failureReason?: string;
}

export interface MachineList {
  resourceVersion?: string;
  items: MachineSummary[];
  continue?: string;
  total?: number;
}

export interface BmcDetail {
  kind: string;
  address?: string;
  certFingerprint?: string;
}

export interface FullCondition extends ConditionSummary {
  message?: string;
  lastTransitionTime?: string;
}

export interface MachineDetail extends MachineSummary {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> } & Record<
    string,
    unknown
  >;
  spec: Record<string, unknown>;
  status: Record<string, unknown>;
  bmcDetail: BmcDetail;
  quarantine?: { reason?: string; file?: string; movedTo?: string; message?: string; since?: string };
  operations: OperationSummary[];
}

export type Scalar = string | number | boolean | undefined;

/** One event of the machine event bus (server/events/boot-events.ts). */
export interface BootEvent {
  seq: number;
  time: string;
  step: string;
  result: string;
  mac?: string;
  machine?: string;
  ip?: string;
  reason?: string;
  detail?: Record<string, Scalar>;
}

export interface MachineEvents {
  machine: string;
  lastSeq: number;
  events: BootEvent[];
}

export interface ActionAccepted {
  operation: { metadata: { name: string } } & Record<string, unknown>;
  eventsSince: number;
}

export interface Discovered {
  mac: string;
  uuid?: string;
  relayAddress?: string;
  interface?: string;
  firstSeen: string;
  lastSeen: string;
  count: number;
  arch?: string;
  vendorClass?: string;
  userClass?: string;
  lastIp?: string;
}

export interface ImageEntry {
  ref: string;
  state: "ready" | "pulling" | "failed" | "not-ready";
  digest?: string;
  bytes?: number;
  totalBytes?: number;
  reason?: string;
  machines: string[];
}

export interface ServiceState {
  name: string;
  state: string;
  detail?: string;
}

export interface ApplianceInterface {
  name: string;
  addresses: string[];
  mac?: string;
}

export interface Appliance {
  version: string;
  mode: "standalone" | "cluster";
  services: ServiceState[];
  interfaces: ApplianceInterface[];
  dhcp?: { mode?: string; serverIp?: string; serveUrl?: string };
  upstream?: Record<string, unknown>;
  console?: { fingerprint?: string; url?: string };
  overlay?: string;
  /** The appliance image: appliance.yaml as its first boot read it. */
  config?: {
    file: string;
    errors: string[];
    notices: string[];
    site?: string;
    imageVersion?: string;
    slot?: string;
    unreadable?: string;
  };
}

/** The appliance image's upgrade (GET/POST /appliance/upgrade). */
export interface UpgradeStatus {
  state: "idle" | "uploading" | "pending" | "installing" | "rebooting" | "done" | "failed";
  version?: string;
  sha256?: string;
  bytes?: number;
  requestedBy?: string;
  at?: string;
  message?: string;
}

export interface EnrollRequest {
  name: string;
  ipv4: string;
  subnetMask: string;
  gateway: string;
  image?: string;
  dns?: string[];
  labels?: Record<string, string>;
}

export interface AuditEntry {
  seq: number;
  time: string;
  user: string;
  role?: string;
  from?: string;
  action: string;
  target?: string;
  result: string;
  status?: number;
  detail?: unknown;
}

export interface Operation {
  metadata: { name: string; creationTimestamp?: string; annotations?: Record<string, string> };
  spec: { operationKind: string; machineRef?: string; machineSelector?: unknown; parameters?: Record<string, unknown> };
  status?: {
    phase?: string;
    message?: string;
    targets?: Array<{ machineRef: string; phase?: string; stage?: string; message?: string }>;
  };
}

export interface MachineFilter {
  phase?: string;
  power?: string;
  failed?: boolean;
  repavePending?: boolean;
  site?: string;
  q?: string;
}

export type PowerAction = "on" | "off" | "cycle";
