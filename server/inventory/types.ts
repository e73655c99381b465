/**
 * Machine resource of `unbounded-cloud.io/v1alpha3`, with the CRD's JSON field names
 * (spec/metalman.md §2). Optional objects stay `undefined` when absent: the Go-template
 * data builder turns them into nil pointers, so `{{ if .Machine.Spec.Operations }}` works.
 */
export const API_VERSION = "unbounded-cloud.io/v1alpha3";
export const SITE_LABEL = "unbounded-cloud.io/site";

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
}

export interface SecretKeySelector {
  name: string;
  namespace: string;
  key?: string;
}

export interface DhcpLease {
  mac: string;
  ipv4: string;
  subnetMask: string;
  gateway: string;
  dns?: string[];
}

export interface RedfishSpec {
  url: string;
  username: string;
  deviceID?: string;
  passwordRef: SecretKeySelector;
}

/**
 * `spec.pxe.ipmi` (ours, beyond upstream): a BMC reached over IPMI 2.0 RMCP+ (`ipmitool -I
 * lanplus`) for servers without Redfish. docs/bmc-ipmi.md.
 */
export interface IpmiSpec {
  /** IPv4, IPv6 or a DNS name of the BMC. */
  host: string;
  /** UDP port (default 623). */
  port: number;
  username: string;
  /** The password Secret; key default `password`. */
  passwordRef: SecretKeySelector;
  /** RMCP+ cipher suite ID (ipmitool -C); absent: ipmitool negotiates. */
  cipherSuite?: number;
  /** Session privilege level (default ADMINISTRATOR; power control needs OPERATOR at least). */
  privilege: "CALLBACK" | "USER" | "OPERATOR" | "ADMINISTRATOR";
  /** Firmware boot mode to request with a boot override (UEFI: `options=efiboot`). */
  bootMode?: "UEFI" | "Legacy";
}

export interface PxeSpec {
  /** OCI reference, or `dir:PATH` for a local image folder holding `disk/`. */
  image: string;
  dhcpLeases?: DhcpLease[];
  redfish?: RedfishSpec;
  ipmi?: IpmiSpec;
  cloudInit?: { userDataConfigMapRef?: SecretKeySelector };
  /** Later-upstream fields (§2.7), accepted and carried. */
  architecture?: "amd64" | "arm64";
  bootProtocol?: "PXE" | "HTTP";
  netbootImage?: string;
  targetDisk?: string;
  pullSecretRef?: { name: string; namespace: string };
}

export interface DownloadSpec {
  baseURL?: string;
  url?: string;
  version?: string;
}

export interface MachineSpec {
  ssh?: {
    host: string;
    username?: string;
    privateKeyRef: SecretKeySelector;
    bastion?: { host: string; username?: string; privateKeyRef?: SecretKeySelector };
  };
  pxe?: PxeSpec;
  kubernetes?: {
    version?: string;
    nodeRef?: { name: string };
    nodeLabels?: Record<string, string>;
    registerWithTaints?: string[];
    bootstrapTokenRef: { name: string };
  };
  agent?: {
    image?: string;
    version?: string;
    baseURL?: string;
    url?: string;
    downloads?: {
      kubernetes?: DownloadSpec;
      containerd?: DownloadSpec;
      runc?: DownloadSpec;
      cni?: DownloadSpec;
      crictl?: DownloadSpec;
    };
  };
  operations?: { rebootCounter?: number; repaveCounter?: number };
  provider?: string;
  providerID?: string;
}

export type ConditionStatus = "True" | "False" | "Unknown";

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export interface MachineStatus {
  phase?: string;
  message?: string;
  redfish?: { certFingerprint?: string };
  tpm?: { ekPublicKey?: string };
  operations?: { rebootCounter?: number; repaveCounter?: number };
  ssh?: { fingerprint?: string };
  agent?: { image?: string };
  conditions?: Condition[];
}

export interface Machine {
  apiVersion: typeof API_VERSION;
  kind: "Machine";
  metadata: ObjectMeta;
  spec: MachineSpec;
  status?: MachineStatus;
}
