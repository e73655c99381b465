import { parseIpv4, readIpv4 } from "../util/ipv4.js";

/**
 * DHCPv4 option table (RFC 2132 and the later RFCs named per entry) and typed readers and
 * writers for option values. Options travel as raw bytes in a `DhcpOptions` map: a value is
 * only interpreted by the code that needs it, so unknown options survive untouched.
 */

/** Option code → raw value, in wire order (long options already concatenated, RFC 3396). */
export type DhcpOptions = Map<number, Buffer>;

export const OptionCode = {
  Pad: 0,
  SubnetMask: 1,
  TimeOffset: 2,
  Router: 3,
  TimeServer: 4,
  DnsServer: 6,
  LogServer: 7,
  HostName: 12,
  BootFileSize: 13,
  DomainName: 15,
  RootPath: 17,
  InterfaceMtu: 26,
  BroadcastAddress: 28,
  StaticRoute: 33,
  NtpServer: 42,
  VendorSpecific: 43,
  RequestedIp: 50,
  LeaseTime: 51,
  Overload: 52,
  MessageType: 53,
  ServerId: 54,
  ParameterRequestList: 55,
  Message: 56,
  MaxMessageSize: 57,
  RenewalTime: 58,
  RebindingTime: 59,
  VendorClass: 60,
  ClientId: 61,
  TftpServerName: 66,
  BootFileName: 67,
  UserClass: 77,
  ClientFqdn: 81,
  RelayAgentInfo: 82,
  ClientSystemArch: 93,
  ClientNdi: 94,
  ClientMachineId: 97,
  DomainSearch: 119,
  ClasslessStaticRoute: 121,
  VendorIdentifyingClass: 124,
  VendorIdentifyingInfo: 125,
  End: 255,
} as const;

export const MessageType = {
  Discover: 1,
  Offer: 2,
  Request: 3,
  Decline: 4,
  Ack: 5,
  Nak: 6,
  Release: 7,
  Inform: 8,
} as const;

export type MessageTypeName = "discover" | "offer" | "request" | "decline" | "ack" | "nak" | "release" | "inform";

const MESSAGE_TYPE_NAMES: readonly (MessageTypeName | undefined)[] = [
  undefined,
  "discover",
  "offer",
  "request",
  "decline",
  "ack",
  "nak",
  "release",
  "inform",
];

export function messageTypeName(type: number | undefined): MessageTypeName | undefined {
  return type === undefined ? undefined : MESSAGE_TYPE_NAMES[type];
}

/** How an option's bytes are interpreted. */
export type OptionKind =
  | "ip"
  | "ips"
  | "ip-pairs"
  | "u8"
  | "u16"
  | "u32"
  | "i32"
  | "flag"
  | "string"
  | "bytes"
  | "message-type"
  | "overload"
  | "param-list"
  | "client-id"
  | "client-arch"
  | "client-ndi"
  | "user-class"
  | "relay-agent"
  | "uuid";

export interface OptionDef {
  code: number;
  name: string;
  kind: OptionKind;
}

const TABLE: readonly OptionDef[] = [
  { code: 1, name: "subnet-mask", kind: "ip" },
  { code: 2, name: "time-offset", kind: "i32" },
  { code: 3, name: "router", kind: "ips" },
  { code: 4, name: "time-server", kind: "ips" },
  { code: 5, name: "name-server", kind: "ips" },
  { code: 6, name: "dns-server", kind: "ips" },
  { code: 7, name: "log-server", kind: "ips" },
  { code: 12, name: "host-name", kind: "string" },
  { code: 13, name: "boot-file-size", kind: "u16" },
  { code: 15, name: "domain-name", kind: "string" },
  { code: 17, name: "root-path", kind: "string" },
  { code: 23, name: "default-ip-ttl", kind: "u8" },
  { code: 26, name: "interface-mtu", kind: "u16" },
  { code: 28, name: "broadcast-address", kind: "ip" },
  { code: 33, name: "static-route", kind: "ip-pairs" },
  { code: 42, name: "ntp-server", kind: "ips" },
  { code: 43, name: "vendor-specific", kind: "bytes" },
  { code: 44, name: "netbios-name-server", kind: "ips" },
  { code: 50, name: "requested-ip", kind: "ip" },
  { code: 51, name: "lease-time", kind: "u32" },
  { code: 52, name: "overload", kind: "overload" },
  { code: 53, name: "message-type", kind: "message-type" },
  { code: 54, name: "server-id", kind: "ip" },
  { code: 55, name: "parameter-request-list", kind: "param-list" },
  { code: 56, name: "message", kind: "string" },
  { code: 57, name: "max-message-size", kind: "u16" },
  { code: 58, name: "renewal-time", kind: "u32" },
  { code: 59, name: "rebinding-time", kind: "u32" },
  { code: 60, name: "vendor-class", kind: "string" },
  { code: 61, name: "client-id", kind: "client-id" },
  { code: 66, name: "tftp-server-name", kind: "string" },
  { code: 67, name: "bootfile-name", kind: "string" },
  { code: 77, name: "user-class", kind: "user-class" },
  { code: 80, name: "rapid-commit", kind: "flag" },
  { code: 81, name: "client-fqdn", kind: "bytes" },
  { code: 82, name: "relay-agent-info", kind: "relay-agent" },
  { code: 93, name: "client-arch", kind: "client-arch" },
  { code: 94, name: "client-ndi", kind: "client-ndi" },
  { code: 97, name: "client-machine-id", kind: "uuid" },
  { code: 116, name: "auto-configure", kind: "u8" },
  { code: 118, name: "subnet-selection", kind: "ip" },
  { code: 119, name: "domain-search", kind: "bytes" },
  { code: 121, name: "classless-static-route", kind: "bytes" },
  { code: 124, name: "vendor-identifying-class", kind: "bytes" },
  { code: 125, name: "vendor-identifying-info", kind: "bytes" },
  { code: 150, name: "tftp-server-address", kind: "ips" },
  { code: 175, name: "ipxe-encapsulated", kind: "bytes" },
];

export const DHCP_OPTIONS: ReadonlyMap<number, OptionDef> = new Map(TABLE.map((def) => [def.code, def]));

export function optionName(code: number): string {
  return DHCP_OPTIONS.get(code)?.name ?? `option-${code}`;
}

// ---------------------------------------------------------------- readers (never throw)

export function readU8(data: Buffer | undefined): number | undefined {
  return data && data.length === 1 ? data[0] : undefined;
}

export function readU16(data: Buffer | undefined): number | undefined {
  return data && data.length === 2 ? data.readUInt16BE(0) : undefined;
}

export function readU32(data: Buffer | undefined): number | undefined {
  return data && data.length === 4 ? data.readUInt32BE(0) : undefined;
}

export function readIp(data: Buffer | undefined): string | undefined {
  return data && data.length === 4 ? readIpv4(data, 0) : undefined;
}

export function readIps(data: Buffer | undefined): string[] | undefined {
  if (!data || data.length === 0 || data.length % 4 !== 0) return undefined;
  const out: string[] = [];
  for (let i = 0; i < data.length; i += 4) out.push(readIpv4(data, i));
  return out;
}

/** Text options: bytes as latin1 (lossless), trailing NULs dropped (some clients count them). */
export function readString(data: Buffer | undefined): string | undefined {
  if (!data) return undefined;
  let end = data.length;
  while (end > 0 && data[end - 1] === 0) end--;
  return data.toString("latin1", 0, end);
}

export function readParameterRequestList(data: Buffer | undefined): number[] | undefined {
  return data ? Array.from(data) : undefined;
}

/** Option 93 (RFC 4578): a list of 16-bit architecture types. */
export function readClientArchList(data: Buffer | undefined): number[] | undefined {
  if (!data || data.length === 0 || data.length % 2 !== 0) return undefined;
  const out: number[] = [];
  for (let i = 0; i < data.length; i += 2) out.push(data.readUInt16BE(i));
  return out;
}

/**
 * Option 77. RFC 3004 says: a list of length-prefixed class names. iPXE (and dhclient's
 * `send user-class "iPXE"`) send the bare text instead; when the bytes do not parse as an
 * exact RFC 3004 list, the whole value is one class name.
 */
export function readUserClasses(data: Buffer | undefined): string[] | undefined {
  if (!data || data.length === 0) return undefined;
  const out: string[] = [];
  let i = 0;
  while (i < data.length) {
    const len = data[i];
    if (len === 0 || i + 1 + len > data.length) return [readString(data) ?? ""];
    out.push(data.toString("latin1", i + 1, i + 1 + len));
    i += 1 + len;
  }
  return out;
}

/** Option 61: type byte (1 = ethernet, 255 = RFC 4361 IAID+DUID, 0 = opaque) and the identifier. */
export function readClientId(data: Buffer | undefined): { type: number; id: Buffer } | undefined {
  if (!data || data.length < 2) return undefined;
  return { type: data[0], id: data.subarray(1) };
}

/** Option 82 (RFC 3046) sub-options, kept raw: the server only ever echoes them. */
export function readRelayAgentInfo(data: Buffer | undefined): { code: number; data: Buffer }[] | undefined {
  if (!data) return undefined;
  const out: { code: number; data: Buffer }[] = [];
  let i = 0;
  while (i < data.length) {
    if (i + 2 > data.length || i + 2 + data[i + 1] > data.length) return undefined;
    out.push({ code: data[i], data: data.subarray(i + 2, i + 2 + data[i + 1]) });
    i += 2 + data[i + 1];
  }
  return out;
}

/** Option 82 sub-option codes the server reads (RFC 3046 §2.0, RFC 3527, RFC 5107). */
export const RelayAgentSub = {
  CircuitId: 1,
  RemoteId: 2,
  LinkSelection: 5,
  ServerIdOverride: 11,
} as const;

/**
 * RFC 5107 server-id-override: the address the relay wants clients to use as server id, so
 * that their RENEWING unicasts reach the relay (which adds option 82 again). Undefined when
 * absent, malformed or not a unicast address.
 */
export function readServerIdOverride(relayInfo: Buffer | undefined): string | undefined {
  const subs = readRelayAgentInfo(relayInfo);
  const sub = subs?.find((s) => s.code === RelayAgentSub.ServerIdOverride);
  const ip = readIp(sub?.data);
  return ip === undefined || ip === "0.0.0.0" || ip === "255.255.255.255" ? undefined : ip;
}

/**
 * Option 97 (RFC 4578): type 0 followed by a 16-byte UUID, formatted 8-4-4-4-12 in wire byte
 * order (firmware copies the SMBIOS bytes as they are; no endianness guessing here).
 */
export function readClientMachineId(data: Buffer | undefined): string | undefined {
  if (data?.length !== 17 || data[0] !== 0) return undefined;
  const hex = data.toString("hex", 1);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A decoded value for logs and debugging (not used on the hot path). */
export function describeOption(code: number, data: Buffer): { code: number; name: string; value: unknown } {
  const def = DHCP_OPTIONS.get(code);
  const raw = data.toString("hex");
  let value: unknown;
  switch (def?.kind) {
    case "ip":
      value = readIp(data);
      break;
    case "ips":
      value = readIps(data);
      break;
    case "ip-pairs":
      value = data.length % 8 === 0 ? readIps(data) : undefined;
      break;
    case "u8":
    case "message-type":
    case "overload":
      value = readU8(data);
      break;
    case "u16":
      value = readU16(data);
      break;
    case "u32":
      value = readU32(data);
      break;
    case "i32":
      value = data.length === 4 ? data.readInt32BE(0) : undefined;
      break;
    case "flag":
      value = data.length === 0 ? true : undefined;
      break;
    case "string":
      value = readString(data);
      break;
    case "param-list":
      value = readParameterRequestList(data);
      break;
    case "client-arch":
      value = readClientArchList(data);
      break;
    case "user-class":
      value = readUserClasses(data);
      break;
    case "client-id": {
      const id = readClientId(data);
      value = id ? { type: id.type, id: id.id.toString("hex") } : undefined;
      break;
    }
    case "relay-agent":
      value = readRelayAgentInfo(data)?.map((s) => ({ code: s.code, data: s.data.toString("hex") }));
      break;
    case "uuid":
      value = readClientMachineId(data);
      break;
    case "client-ndi":
      value = data.length === 3 ? { type: data[0], major: data[1], minor: data[2] } : undefined;
      break;
    default:
      value = undefined;
  }
  return { code, name: optionName(code), value: value ?? raw };
}

// ---------------------------------------------------------------- writers (throw TypeError on bad input)

export function ipOption(ip: string): Buffer {
  const n = parseIpv4(ip);
  if (n === undefined) throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(n, 0);
  return out;
}

export function ipsOption(ips: readonly string[]): Buffer {
  const out = Buffer.allocUnsafe(ips.length * 4);
  ips.forEach((ip, i) => {
    const n = parseIpv4(ip);
    if (n === undefined) throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
    out.writeUInt32BE(n, i * 4);
  });
  return out;
}

export function u8Option(value: number): Buffer {
  return Buffer.from([value & 255]);
}

export function u32Option(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(value, 0);
  return out;
}

export function stringOption(value: string): Buffer {
  return Buffer.from(value, "latin1");
}

/** RFC 3004 encoding of option 77. */
export function userClassOption(classes: readonly string[]): Buffer {
  return Buffer.concat(
    classes.map((c) => {
      const body = Buffer.from(c, "latin1");
      if (body.length === 0 || body.length > 255) throw new TypeError("user class must be 1..255 bytes");
      return Buffer.concat([Buffer.from([body.length]), body]);
    }),
  );
}
