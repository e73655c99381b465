/** Small in-memory stand-ins and packet builders shared by the DHCP tests (no tests here). */
import fs from "node:fs";
import path from "node:path";
import type { DhcpPacket } from "../../../server/dhcp/codec.js";
import type { DhcpHandlerDeps } from "../../../server/dhcp/handler.js";
import { type DhcpOptions, ipOption, u8Option } from "../../../server/dhcp/options.js";
import type { ImageLookup, ImageMetadata, ImageStore } from "../../../server/images/image-store.js";
import type {
  DiscoveredClient,
  DiscoveryStore,
  MachineBackend,
  MachineList,
  StatusUpdate,
} from "../../../server/inventory/backend.js";
import type { DhcpLease, Machine } from "../../../server/inventory/types.js";
import { repoRoot } from "../../support/paths.js";
import { unusedOperations } from "../http/fake-backend.js";

export const SERVER_IP = "10.77.0.1";
export const SERVE_URL = "http://10.77.0.1:8880";

export function machine(name: string, leases: DhcpLease[], image = "dir:/images/host"): Machine {
  return {
    apiVersion: "unbounded-cloud.io/v1alpha3",
    kind: "Machine",
    metadata: { name },
    spec: { pxe: { image, dhcpLeases: leases } },
  };
}

export function lease(mac: string, ipv4: string, extra: Partial<DhcpLease> = {}): DhcpLease {
  return { mac, ipv4, subnetMask: "255.255.255.0", gateway: "10.77.0.254", dns: ["10.77.0.53", "1.1.1.1"], ...extra };
}

export class FakeBackend implements MachineBackend {
  readonly machines: Machine[];
  constructor(machines: Machine[]) {
    this.machines = machines;
  }
  get(name: string) {
    return this.machines.find((m) => m.metadata.name === name);
  }
  list(): MachineList {
    return Object.assign([...this.machines], { resourceVersion: "1" });
  }
  byMac(mac: string) {
    const wanted = mac.toLowerCase();
    return this.machines.find((m) => m.spec.pxe?.dhcpLeases?.some((l) => l.mac.toLowerCase() === wanted));
  }
  byIp(ip: string) {
    return this.machines.find((m) => m.spec.pxe?.dhcpLeases?.some((l) => l.ipv4 === ip));
  }
  watch() {
    return () => {};
  }
  updateStatus(): Promise<StatusUpdate> {
    return Promise.reject(new Error("not used"));
  }
  problems() {
    return [];
  }
  quarantine() {
    return undefined;
  }
  readonly operations = unusedOperations;
}

export class FakeImages implements ImageStore {
  lookup: ImageLookup;
  constructor(metadata?: ImageMetadata) {
    this.lookup = metadata
      ? { state: "ready", ref: "dir:/images/host", diskDir: "/images/host/disk", metadata }
      : { state: "not-ready", ref: "dir:/images/host", reason: "not pulled yet", retryAfterSeconds: 5 };
  }
  lookupForMachine(): ImageLookup {
    return this.lookup;
  }
}

export class FakeDiscovery implements DiscoveryStore {
  readonly records: Omit<DiscoveredClient, "firstSeen" | "lastSeen" | "count">[] = [];
  keep = true;
  count = 0;
  record(client: Omit<DiscoveredClient, "firstSeen" | "lastSeen" | "count">): void {
    this.count++;
    if (this.keep) this.records.push(client);
  }
  list(): DiscoveredClient[] {
    return [];
  }
}

export const FULL_IMAGE: ImageMetadata = {
  dhcpBootImageName: "shimx64.efi",
  biosBootImageName: "undionly.kpxe",
  ipxeScriptName: "boot.ipxe",
};

export function deps(over: Partial<DhcpHandlerDeps> = {}): DhcpHandlerDeps & {
  discovery: FakeDiscovery;
  images: FakeImages;
} {
  return {
    backend: new FakeBackend([machine("node-1", [lease("02:50:58:00:00:03", "10.77.0.21")])]),
    images: new FakeImages(),
    discovery: new FakeDiscovery(),
    serverIp: SERVER_IP,
    serveUrl: SERVE_URL,
    ...over,
  } as DhcpHandlerDeps & { discovery: FakeDiscovery; images: FakeImages };
}

export function macBytes(mac: string): Buffer {
  const out = Buffer.alloc(16);
  Buffer.from(mac.replace(/:/g, ""), "hex").copy(out);
  return out;
}

export interface RequestSpec {
  mac?: string;
  type?: number;
  xid?: number;
  flags?: number;
  ciaddr?: string;
  giaddr?: string;
  op?: number;
  hlen?: number;
  /** Extra options (53 is added from `type`). */
  options?: [number, Buffer][];
}

export function request(spec: RequestSpec = {}): DhcpPacket {
  const options: DhcpOptions = new Map();
  if (spec.type !== 0) options.set(53, u8Option(spec.type ?? 1));
  for (const [code, value] of spec.options ?? []) options.set(code, value);
  return {
    op: spec.op ?? 1,
    htype: 1,
    hlen: spec.hlen ?? 6,
    hops: 0,
    xid: spec.xid ?? 0x12345678,
    secs: 0,
    flags: spec.flags ?? 0,
    ciaddr: spec.ciaddr ?? "0.0.0.0",
    yiaddr: "0.0.0.0",
    siaddr: "0.0.0.0",
    giaddr: spec.giaddr ?? "0.0.0.0",
    chaddr: macBytes(spec.mac ?? "02:50:58:00:00:03"),
    sname: "",
    file: "",
    options,
  };
}

export const opt = {
  serverId: (ip: string): [number, Buffer] => [54, ipOption(ip)],
  requestedIp: (ip: string): [number, Buffer] => [50, ipOption(ip)],
  vendorClass: (text: string): [number, Buffer] => [60, Buffer.from(text, "latin1")],
  arch: (arch: number): [number, Buffer] => [93, Buffer.from([arch >> 8, arch & 255])],
  userClassRaw: (text: string): [number, Buffer] => [77, Buffer.from(text, "latin1")],
};

/** Hex fixtures from test/fixtures/dhcp/captures.hex. */
export function readCaptures(): Map<string, Buffer> {
  const file = path.join(repoRoot(), "test", "fixtures", "dhcp", "captures.hex");
  const out = new Map<string, Buffer>();
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    const [label, hex] = line.trim().split(/\s+/);
    if (label && hex) out.set(label, Buffer.from(hex, "hex"));
  }
  return out;
}
