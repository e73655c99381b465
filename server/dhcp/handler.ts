import type { BootEvent } from "../events/boot-events.js";
import type { ImageStore } from "../images/image-store.js";
import type { DiscoveryStore, MachineBackend } from "../inventory/backend.js";
import type { DhcpLease, Machine } from "../inventory/types.js";
import { BROADCAST_IPV4, isIpv4, isSubnetMask, parseIpv4, ZERO_IPV4 } from "../util/ipv4.js";
import { type BootChoice, chooseBootFile, clientArchOf } from "./boot-file.js";
import { clientArchName } from "./client-arch.js";
import { BROADCAST_FLAG, type DhcpPacket, hardwareAddress, messageType } from "./codec.js";
import {
  type DhcpOptions,
  ipOption,
  MessageType,
  type MessageTypeName,
  messageTypeName,
  OptionCode,
  optionName,
  readIp,
  readServerIdOverride,
  stringOption,
  u8Option,
  u32Option,
} from "./options.js";
import { leaseOptionValues, type ReplyOptionCache } from "./reply-options.js";
import { replyTo } from "./reply-packet.js";
import { inLeaseSubnet, isLeaseHolderUnicast, replyDestination } from "./reply-route.js";
import { fitReply, replySizeLimit } from "./reply-size.js";
import {
  clientDetail,
  clientFacts,
  clientSourceIp,
  ignoredPacket,
  ignoredRequest,
  nonZero,
  recordDiscovery,
} from "./request-facts.js";

/**
 * DHCP policy: one decoded request in, at most one reply out (spec §3 with the fixes of §12
 * items 10, 24 and 26 and issue 5 §1.1, §1.5, §1.6). No I/O besides the injected stores; the
 * caller sends the reply and publishes the events.
 *
 * Where replies go (never anywhere a packet merely claims): a relayed request is answered
 * only when its giaddr lies in the lease's subnet (Kea selects subnets the same way), so a
 * spoofed giaddr cannot aim a reply at an arbitrary host; a reply to ciaddr only when ciaddr
 * is the client's own lease address. In relay mode the only direct packets served are the
 * unicasts of clients that already hold their lease: RENEWING REQUEST, INFORM and RELEASE
 * (RFC 2131 §4.3.2, §4.3.5, §4.4.5).
 */

export type DhcpMode = "relay" | "interface";

export interface DhcpReceiveContext {
  mode: DhcpMode;
  /** Source of the datagram. */
  address: string;
  port: number;
  interfaceName?: string;
}

export interface DhcpHandlerDeps {
  backend: MachineBackend;
  images: ImageStore;
  discovery: DiscoveryStore;
  /** Our address: option 54, siaddr, option 66. */
  serverIp: string;
  /** Base URL for HTTP boot files (iPXE script, UEFI HTTP boot). */
  serveUrl: string;
  /** Option 51; default 86400. */
  leaseSeconds?: number;
  /** Where relay agents listen (RFC 2131: 67). Tests use an unprivileged port. */
  relayPort?: number;
  /** Where clients listen (RFC 2131: 68). */
  clientPort?: number;
  /** Encoded option values reused across replies (the server keeps one); without it each reply builds its own. */
  replyOptions?: ReplyOptionCache;
}

export type DhcpIgnoreReason =
  | "not-bootrequest"
  | "not-ethernet"
  | "not-relayed"
  | "no-message-type"
  | "unexpected-message-type"
  | "unknown-mac"
  | "no-pxe-spec"
  | "no-lease"
  | "bad-lease"
  | "other-server"
  | "release"
  | "decline"
  /** Relayed, but giaddr is not inside the lease's subnet (or the lease has no valid mask). */
  | "giaddr-outside-lease-subnet"
  /** Direct packet whose ciaddr is not the client's lease address (we never unicast elsewhere). */
  | "ciaddr-not-lease"
  /** Even without the optional options the reply exceeds what the client accepts. */
  | "reply-too-big";

export type DhcpEventInput = Omit<BootEvent, "time">;

export interface DhcpReply {
  packet: DhcpPacket;
  type: MessageTypeName;
  address: string;
  port: number;
}

export interface DhcpOutcome {
  /** Message type of the request, when it had a valid one. */
  requestType?: MessageTypeName;
  reply?: DhcpReply;
  ignoredReason?: DhcpIgnoreReason;
  /** Boot events for this packet, in order (request step, then reply step). */
  events: DhcpEventInput[];
  /** Something an operator should see; `key` lets the caller rate-limit it. */
  warning?: { key: string; message: string; fields?: Record<string, unknown> };
}

const DEFAULT_LEASE_SECONDS = 86400;

export function handleDhcpRequest(request: DhcpPacket, ctx: DhcpReceiveContext, deps: DhcpHandlerDeps): DhcpOutcome {
  if (request.op !== 1) return ignoredPacket("not-bootrequest", ctx.address);
  if (request.htype !== 1 || request.hlen !== 6) return ignoredPacket("not-ethernet", ctx.address);
  const relayed = request.giaddr !== ZERO_IPV4;
  const type = messageType(request);
  if (ctx.mode === "relay" && !relayed && !isLeaseHolderUnicast(request, type)) {
    return ignoredPacket("not-relayed", ctx.address, hardwareAddress(request));
  }
  const typeName = messageTypeName(type);
  if (typeName === undefined) return ignoredPacket("no-message-type", ctx.address, hardwareAddress(request));

  const facts = clientFacts(request);
  const base = { mac: facts.mac, ip: clientSourceIp(request, ctx.address) };
  switch (type) {
    case MessageType.Discover:
    case MessageType.Request:
    case MessageType.Inform:
      break;
    case MessageType.Release:
      return {
        requestType: typeName,
        ignoredReason: "release",
        events: [
          { ...base, step: "dhcp.release", result: "ok", machine: deps.backend.byMac(facts.mac)?.metadata.name },
        ],
      };
    case MessageType.Decline: {
      const declined = readIp(request.options.get(OptionCode.RequestedIp));
      const machine = deps.backend.byMac(facts.mac)?.metadata.name;
      return {
        requestType: typeName,
        ignoredReason: "decline",
        events: [
          {
            ...base,
            step: "dhcp.decline",
            result: "error",
            machine,
            reason: "address-in-use",
            detail: { declined },
          },
        ],
        warning: {
          key: `decline:${facts.mac}`,
          message: "client declined its address: another host answers ARP for it",
          fields: { mac: facts.mac, machine, address: declined },
        },
      };
    }
    default:
      return ignoredPacket("unexpected-message-type", ctx.address, facts.mac, typeName);
  }

  const step = `dhcp.${typeName}` as "dhcp.discover" | "dhcp.request" | "dhcp.inform";
  // RFC 5107: the relay stands in for us as server id; clients then name the relay in 54.
  const override = relayed ? readServerIdOverride(request.options.get(OptionCode.RelayAgentInfo)) : undefined;
  const ourId = override ?? deps.serverIp;
  const serverId = readIp(request.options.get(OptionCode.ServerId));
  if (type === MessageType.Request && serverId !== undefined && serverId !== deps.serverIp && serverId !== override) {
    // RFC 2131 §4.3.2: the client chose another server's offer; our offer is simply withdrawn.
    return ignoredRequest(typeName, step, base, "other-server", { serverId });
  }

  const machine = deps.backend.byMac(facts.mac);
  if (!machine) {
    recordDiscovery(deps.discovery, facts, ctx.interfaceName);
    return {
      requestType: typeName,
      ignoredReason: "unknown-mac",
      events: [{ ...base, step, result: "not-found", reason: "unknown-mac", detail: clientDetail(facts) }],
    };
  }
  const name = machine.metadata.name;
  if (!machine.spec.pxe) return ignoredRequest(typeName, step, { ...base, machine: name }, "no-pxe-spec");
  const lease = findLease(machine, facts.mac);
  if (!lease) return ignoredRequest(typeName, step, { ...base, machine: name }, "no-lease");
  if (!isIpv4(lease.ipv4) || lease.ipv4 === ZERO_IPV4) {
    const out = ignoredRequest(typeName, step, { ...base, machine: name }, "bad-lease", { ipv4: lease.ipv4 });
    out.warning = {
      key: `bad-lease:${name}`,
      message: "lease IPv4 is not a valid address; not answering",
      fields: { machine: name, mac: facts.mac, ipv4: lease.ipv4 },
    };
    return out;
  }

  if (relayed && !inLeaseSubnet(request.giaddr, lease)) {
    const out = ignoredRequest(typeName, step, { ...base, machine: name }, "giaddr-outside-lease-subnet", {
      giaddr: request.giaddr,
      lease: lease.ipv4,
    });
    out.warning = {
      key: `giaddr:${name}`,
      message: "relayed request whose giaddr is outside the lease's subnet; not answering",
      fields: { machine: name, mac: facts.mac, giaddr: request.giaddr, ipv4: lease.ipv4, subnetMask: lease.subnetMask },
    };
    return out;
  }
  const ciaddrIsLease = request.ciaddr === ZERO_IPV4 || parseIpv4(request.ciaddr) === parseIpv4(lease.ipv4);
  // Direct INFORM: the ACK would go to ciaddr, which must be the client's own lease address.
  if (type === MessageType.Inform && !relayed && (request.ciaddr === ZERO_IPV4 || !ciaddrIsLease)) {
    return ignoredRequest(typeName, step, { ...base, machine: name }, "ciaddr-not-lease", {
      ciaddr: request.ciaddr,
      lease: lease.ipv4,
    });
  }

  // Events of the answered path are built field by field: an object spread plus extra keys
  // is a slow generic copy in V8, and this runs for every DISCOVER and REQUEST.
  const requestEvent: DhcpEventInput = {
    mac: base.mac,
    ip: base.ip,
    step,
    result: "ok",
    machine: name,
    detail: clientDetail(facts),
  };

  if (type === MessageType.Request) {
    const wanted = readIp(request.options.get(OptionCode.RequestedIp)) ?? nonZero(request.ciaddr);
    if (!ciaddrIsLease || (wanted !== undefined && parseIpv4(wanted) !== parseIpv4(lease.ipv4))) {
      // A direct unicast in relay mode came through routers: a broadcast NAK cannot reach the
      // client and ciaddr is not its lease. Silence makes it fall back to REBINDING (relayed).
      if (!relayed && ctx.mode === "relay") {
        return ignoredRequest(typeName, step, { ...base, machine: name }, "ciaddr-not-lease", {
          ciaddr: request.ciaddr,
          lease: lease.ipv4,
        });
      }
      const nak = buildNak(request, deps, ourId);
      if (!nak) return ignoredRequest(typeName, step, { ...base, machine: name }, "reply-too-big");
      return {
        requestType: typeName,
        reply: nak,
        events: [
          requestEvent,
          {
            ...base,
            step: "dhcp.nak",
            result: "error",
            machine: name,
            reason: "wrong-address",
            detail: { requested: wanted, lease: lease.ipv4 },
          },
        ],
      };
    }
  }

  const choice = chooseBootFile(deps.images.lookupForMachine(machine), facts, deps.serveUrl);
  const built = buildReply(request, deps, type, machine, lease, choice, ourId);
  const fitted = fitReply(built.packet, replySizeLimit(request));
  if (!fitted) {
    const out = ignoredRequest(typeName, step, { ...base, machine: name }, "reply-too-big");
    out.warning = {
      key: `reply-too-big:${name}`,
      message: "DHCP reply does not fit the client's maximum message size even without optional options",
      fields: { machine: name, mac: facts.mac, limit: replySizeLimit(request) },
    };
    return out;
  }
  const reply: DhcpReply = { packet: fitted.packet, type: built.type, address: built.address, port: built.port };
  const replyStep = reply.type === "offer" ? "dhcp.offer" : "dhcp.ack";
  const arch = clientArchName(clientArchOf(facts));
  const detail: NonNullable<DhcpEventInput["detail"]> =
    choice.kind === "file"
      ? { bootFile: choice.file, bootRule: choice.rule, arch }
      : { bootFile: undefined, bootSkipped: choice.reason, arch };
  if (fitted.overload !== 0 || fitted.dropped.length > 0) {
    detail.overload = fitted.overload;
    detail.droppedOptions = fitted.dropped.map(optionName).join(",") || undefined;
  }
  const outcome: DhcpOutcome = {
    requestType: typeName,
    reply,
    events: [
      requestEvent,
      {
        mac: base.mac,
        ip: type === MessageType.Inform ? base.ip : lease.ipv4,
        step: replyStep,
        result: "ok",
        machine: name,
        // The lease went out; `reason` says why it carries no boot options.
        reason: choice.kind === "none" ? choice.code : undefined,
        detail,
      },
    ],
  };
  if (!isSubnetMask(lease.subnetMask)) {
    outcome.warning = {
      key: `bad-mask:${name}`,
      message: "lease subnetMask is not a valid mask; option 1 omitted",
      fields: { machine: name, subnetMask: lease.subnetMask },
    };
  } else if (choice.kind === "none") {
    outcome.warning = {
      key: `no-boot-file:${name}`,
      message: "no boot file in DHCP reply (client still gets its address)",
      fields: { machine: name, mac: facts.mac, reason: choice.reason },
    };
  }
  return outcome;
}

// ------------------------------------------------------------------------------ replies

function buildReply(
  request: DhcpPacket,
  deps: DhcpHandlerDeps,
  type: number,
  machine: Machine,
  lease: DhcpLease,
  boot: BootChoice,
  serverId: string,
): DhcpReply {
  const inform = type === MessageType.Inform;
  const replyType = type === MessageType.Discover ? MessageType.Offer : MessageType.Ack;
  // Repeating values come encoded from the server's cache (reply-options.ts), when it has one.
  const cache = deps.replyOptions;
  const options: DhcpOptions = new Map();
  options.set(OptionCode.MessageType, cache ? cache.u8(replyType) : u8Option(replyType));
  options.set(OptionCode.ServerId, cache ? cache.ip(serverId) : ipOption(serverId));
  // RFC 2131 §4.3.5: an ACK to INFORM carries no lease time and no address.
  if (!inform) {
    const seconds = deps.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
    options.set(OptionCode.LeaseTime, cache ? cache.u32(seconds) : u32Option(seconds));
  }
  const hostName = machine.metadata.name;
  const leaseValues = cache ? cache.lease(lease, hostName) : leaseOptionValues(lease, hostName);
  if (leaseValues.subnetMask) options.set(OptionCode.SubnetMask, leaseValues.subnetMask);
  if (leaseValues.router) options.set(OptionCode.Router, leaseValues.router);
  if (leaseValues.dns) options.set(OptionCode.DnsServer, leaseValues.dns);
  if (leaseValues.hostName) options.set(OptionCode.HostName, leaseValues.hostName);

  let file = "";
  let sname = "";
  if (boot.kind === "file") {
    const string = cache ? (value: string) => cache.string(value) : stringOption;
    if (boot.vendorClassEcho) options.set(OptionCode.VendorClass, string(boot.vendorClassEcho));
    // With option 60 "PXEClient" but no option 43, UEFI PXE (EDK2/OVMF, checked in the VM lab)
    // takes the offer for a BINL one, expects a boot server on :4011 and fails with PXE-E16.
    // Discovery control "boot file given, do not discover" makes it download option 67 directly.
    if (boot.vendorClassEcho === "PXEClient") options.set(OptionCode.VendorSpecific, pxeDiscoveryControlOption());
    options.set(OptionCode.TftpServerName, string(deps.serverIp));
    options.set(OptionCode.BootFileName, string(boot.file));
    // Some firmware reads only the BOOTP fields; a name that does not fit stays in option 67 only.
    if (Buffer.byteLength(boot.file, "latin1") < 128) file = boot.file;
    sname = deps.serverIp;
  }
  echoOptions(request, options);

  const packet = replyTo(request, {
    ciaddr: replyType === MessageType.Ack ? request.ciaddr : ZERO_IPV4,
    yiaddr: inform ? ZERO_IPV4 : lease.ipv4,
    siaddr: deps.serverIp,
    sname,
    file,
    options: orderByRequestList(options, request),
  });
  const destination = replyDestination(request, deps, lease);
  return {
    packet,
    type: replyType === MessageType.Offer ? "offer" : "ack",
    address: destination.address,
    port: destination.port,
  };
}

function buildNak(request: DhcpPacket, deps: DhcpHandlerDeps, serverId: string): DhcpReply | undefined {
  const options: DhcpOptions = new Map();
  options.set(OptionCode.MessageType, u8Option(MessageType.Nak));
  options.set(OptionCode.ServerId, ipOption(serverId));
  options.set(OptionCode.Message, stringOption("requested address is not this client's lease"));
  echoOptions(request, options);
  const relayed = request.giaddr !== ZERO_IPV4;
  const fitted = fitReply(
    replyTo(request, {
      // RFC 2131 §4.3.2: a NAK through a relay asks it to broadcast to the client.
      flags: relayed ? request.flags | BROADCAST_FLAG : request.flags,
      options,
    }),
    replySizeLimit(request),
  );
  if (!fitted) return undefined;
  const packet = fitted.packet;
  return relayed
    ? { packet, type: "nak", address: request.giaddr, port: deps.relayPort ?? 67 }
    : { packet, type: "nak", address: BROADCAST_IPV4, port: deps.clientPort ?? 68 };
}

/** PXE 2.1 vendor option 43: sub-option 6 (PXE_DISCOVERY_CONTROL) = 8, then End. */
function pxeDiscoveryControlOption(): Buffer {
  return Buffer.from([6, 1, 8, 255]);
}

/** Relay agent info (RFC 3046) and client identifier (RFC 6842) go back unchanged. */
function echoOptions(request: DhcpPacket, options: DhcpOptions): void {
  const clientId = request.options.get(OptionCode.ClientId);
  if (clientId) options.set(OptionCode.ClientId, clientId);
  const relayInfo = request.options.get(OptionCode.RelayAgentInfo);
  if (relayInfo) options.set(OptionCode.RelayAgentInfo, relayInfo);
}

/**
 * Options the client listed in option 55 come first, in its order (old PXE ROMs stop reading
 * early); the rest follow. Option 82 stays last (RFC 3046 §2.1), 53 is put first by the encoder.
 */
function orderByRequestList(options: DhcpOptions, request: DhcpPacket): DhcpOptions {
  const prl = request.options.get(OptionCode.ParameterRequestList);
  if (!prl || prl.length === 0) return moveRelayInfoLast(options);
  const ordered: DhcpOptions = new Map();
  const first = options.get(OptionCode.MessageType);
  if (first) ordered.set(OptionCode.MessageType, first);
  for (const code of prl) {
    const value = options.get(code);
    if (value && code !== OptionCode.RelayAgentInfo) ordered.set(code, value);
  }
  for (const [code, value] of options) if (!ordered.has(code)) ordered.set(code, value);
  return moveRelayInfoLast(ordered);
}

function moveRelayInfoLast(options: DhcpOptions): DhcpOptions {
  const relayInfo = options.get(OptionCode.RelayAgentInfo);
  if (relayInfo) {
    options.delete(OptionCode.RelayAgentInfo);
    options.set(OptionCode.RelayAgentInfo, relayInfo);
  }
  return options;
}

// ------------------------------------------------------------------------------ helpers

function findLease(machine: Machine, mac: string): DhcpLease | undefined {
  const leases = machine.spec.pxe?.dhcpLeases;
  if (!leases) return undefined;
  for (const lease of leases) if (typeof lease.mac === "string" && lease.mac.toLowerCase() === mac) return lease;
  return undefined;
}
