import type { BootEvent } from "../events/boot-events.js";
import type { ImageStore } from "../images/image-store.js";
import type { DiscoveryStore, MachineBackend } from "../inventory/backend.js";
import type { Machine } from "../inventory/types.js";
import { BROADCAST_IPV4, isIpv4, parseIpv4, ZERO_IPV4 } from "../util/ipv4.js";
import { type BootChoice, chooseBootFile } from "./boot-file.js";
import { clientArchName } from "./client-arch.js";
import { type DhcpPacket, hardwareAddress, messageType } from "./codec.js";
import {
  type DhcpOptions,
  ipOption,
  MessageType,
  type MessageTypeName,
  messageTypeName,
  OptionCode,
  readIp,
  stringOption,
  u8Option,
} from "./options.js";
import { replyTo } from "./reply-packet.js";
import {
  type ClientFacts,
  clientDetail,
  clientFacts,
  clientSourceIp,
  ignoredPacket,
  ignoredRequest,
  nonZero,
  recordDiscovery,
} from "./request-facts.js";

/**
 * proxyDHCP policy (PXE 2.1 §2.2.3, RFC 4578): the site's DHCP server hands out addresses; we
 * only add boot information for PXE clients (option 60 PXEClient / HTTPClient) of known
 * Machines. A proxy reply carries no address (yiaddr 0), no lease time and no address options
 * (mask, router, DNS, host name): only server id, vendor class, boot server and boot file, and
 * the client's option 97 echoed.
 *
 * - On :67 a DISCOVER gets a proxy OFFER. It deliberately carries NO option 43: EDK2
 *   (PxeBcDhcp4.c) classifies a PXEClient proxy offer with discovery options as "ProxyPxe10"
 *   and only caches it when one is cached already, i.e. never; without option 43 it is a
 *   "ProxyBinl" offer, which EDK2 keeps and follows up with a REQUEST to us on :4011. iPXE and
 *   PXE 2.1 ROMs do the same 4011 REQUEST for a proxy offer without boot servers.
 * - On :4011 (the PXE boot server port) a REQUEST or INFORM gets an ACK with the boot file,
 *   unicast back to where it came from. EDK2 insists the ACK names a boot file.
 * - A REQUEST on :67 names the site server (option 54) and is not ours; one naming us (old
 *   ROMs) gets an ACK.
 * Pure: no I/O besides the injected stores.
 */

export interface ProxyReceiveContext {
  address: string;
  port: number;
  interfaceName?: string;
  /** `dhcp`: the :67 socket (broadcasts); `boot-server`: the :4011 socket (unicast). */
  via: "dhcp" | "boot-server";
}

export interface ProxyHandlerDeps {
  backend: MachineBackend;
  images: ImageStore;
  discovery: DiscoveryStore;
  /** Our address: option 54, siaddr, option 66. */
  serverIp: string;
  serveUrl: string;
  /** Where relay agents listen (67). */
  relayPort?: number;
  /** Where clients listen (68). */
  clientPort?: number;
}

export type ProxyIgnoreReason =
  | "not-bootrequest"
  | "not-ethernet"
  | "no-message-type"
  | "unexpected-message-type"
  | "not-pxe-client"
  | "unknown-mac"
  | "no-pxe-spec"
  | "no-boot-file"
  | "other-server";

export type ProxyEventInput = Omit<BootEvent, "time">;

export interface ProxyReply {
  packet: DhcpPacket;
  type: MessageTypeName;
  address: string;
  port: number;
}

export interface ProxyOutcome {
  requestType?: MessageTypeName;
  reply?: ProxyReply;
  ignoredReason?: ProxyIgnoreReason;
  events: ProxyEventInput[];
  warning?: { key: string; message: string; fields?: Record<string, unknown> };
}

export function handleProxyRequest(
  request: DhcpPacket,
  ctx: ProxyReceiveContext,
  deps: ProxyHandlerDeps,
): ProxyOutcome {
  if (request.op !== 1) return ignoredPacket("not-bootrequest", ctx.address);
  if (request.htype !== 1 || request.hlen !== 6) return ignoredPacket("not-ethernet", ctx.address);
  const type = messageType(request);
  const typeName = messageTypeName(type);
  if (typeName === undefined) return ignoredPacket("no-message-type", ctx.address, hardwareAddress(request));

  const facts = clientFacts(request);
  const onBootPort = ctx.via === "boot-server";
  const expected =
    (type === MessageType.Discover && !onBootPort) ||
    type === MessageType.Request ||
    (type === MessageType.Inform && onBootPort);
  if (!expected) return ignoredPacket("unexpected-message-type", ctx.address, facts.mac, typeName);
  const base = { mac: facts.mac, ip: clientSourceIp(request, ctx.address) };
  const step = `dhcp.${typeName}` as "dhcp.discover" | "dhcp.request" | "dhcp.inform";

  const pxe = facts.vendorClass?.startsWith("PXEClient") || facts.vendorClass?.startsWith("HTTPClient");
  if (!pxe) return ignoredRequest(typeName, step, base, "not-pxe-client");

  const machine = deps.backend.byMac(facts.mac);
  if (!machine) {
    if (type === MessageType.Discover || onBootPort) {
      recordDiscovery(deps.discovery, facts, ctx.interfaceName);
    }
    return {
      requestType: typeName,
      ignoredReason: "unknown-mac",
      events: [{ ...base, step, result: "not-found", reason: "unknown-mac", detail: detailOf(facts, ctx) }],
    };
  }
  const name = machine.metadata.name;
  if (!machine.spec.pxe) return ignoredRequest(typeName, step, { ...base, machine: name }, "no-pxe-spec");

  if (type === MessageType.Request && !onBootPort) {
    const serverId = readIp(request.options.get(OptionCode.ServerId));
    if (serverId !== deps.serverIp) {
      // The client's REQUEST to the site server: not ours, but it tells us which address the
      // site gives. TFTP and HTTP identify a Machine by its lease address, so say when they differ.
      const out = ignoredRequest(typeName, step, { ...base, machine: name }, "other-server", { serverId });
      const wanted = readIp(request.options.get(OptionCode.RequestedIp)) ?? nonZero(request.ciaddr);
      const mismatch = wanted !== undefined && !leaseHasAddress(machine, facts.mac, wanted);
      if (mismatch) out.warning = addressMismatch(name, facts.mac, wanted);
      return out;
    }
  }

  const choice = chooseBootFile(deps.images.lookupForMachine(machine), facts, deps.serveUrl);
  if (choice.kind === "none") {
    const out = ignoredRequest(typeName, step, { ...base, machine: name }, "no-boot-file", {
      bootSkipped: choice.reason,
      arch: clientArchName(facts.arch),
    });
    out.warning = {
      key: `proxy-no-boot-file:${name}`,
      message: "proxyDHCP: no boot file for this client, not answering (the site server still gives it an address)",
      fields: { machine: name, mac: facts.mac, reason: choice.reason },
    };
    return out;
  }

  const reply = buildProxyReply(request, ctx, deps, type === MessageType.Discover, choice);
  const outcome: ProxyOutcome = {
    requestType: typeName,
    reply,
    events: [
      { ...base, step, result: "ok", machine: name, detail: detailOf(facts, ctx) },
      {
        ...base,
        step: reply.type === "offer" ? "dhcp.offer" : "dhcp.ack",
        result: "ok",
        machine: name,
        detail: {
          proxy: true,
          via: ctx.via,
          bootFile: choice.file,
          bootRule: choice.rule,
          arch: clientArchName(facts.arch),
        },
      },
    ],
  };
  const address = onBootPort ? base.ip : undefined;
  if (address !== undefined && !leaseHasAddress(machine, facts.mac, address)) {
    outcome.warning = addressMismatch(name, facts.mac, address);
  }
  return outcome;
}

function buildProxyReply(
  request: DhcpPacket,
  ctx: ProxyReceiveContext,
  deps: ProxyHandlerDeps,
  offer: boolean,
  boot: Extract<BootChoice, { kind: "file" }>,
): ProxyReply {
  const options: DhcpOptions = new Map();
  options.set(OptionCode.MessageType, u8Option(offer ? MessageType.Offer : MessageType.Ack));
  options.set(OptionCode.ServerId, ipOption(deps.serverIp));
  // PXE 2.1: a proxy reply identifies itself with option 60; HTTP boot firmware wants HTTPClient.
  options.set(OptionCode.VendorClass, stringOption(boot.vendorClassEcho ?? "PXEClient"));
  const bootItem = requestedBootItem(request);
  if (bootItem && !offer) {
    // A boot server discovery REQUEST (option 43 with PXE_BOOT_ITEM, PXE 2.1 §2.2.5): the ACK echoes the item.
    options.set(OptionCode.VendorSpecific, Buffer.concat([Buffer.from([71, bootItem.length]), bootItem, END]));
  }
  options.set(OptionCode.TftpServerName, stringOption(deps.serverIp));
  options.set(OptionCode.BootFileName, stringOption(boot.file));
  const uuid = request.options.get(OptionCode.ClientMachineId);
  if (uuid) options.set(OptionCode.ClientMachineId, uuid);

  const packet = replyTo(request, {
    ciaddr: offer ? ZERO_IPV4 : request.ciaddr,
    siaddr: deps.serverIp,
    sname: deps.serverIp,
    // Some firmware reads only the BOOTP field; a name that does not fit stays in option 67 only.
    file: Buffer.byteLength(boot.file, "latin1") < 128 ? boot.file : "",
    options: orderByRequestList(options, request),
  });
  return { packet, type: offer ? "offer" : "ack", ...destination(request, ctx, deps) };
}

const END = Buffer.from([255]);

/** Sub-option 71 (PXE_BOOT_ITEM) of the request's option 43, when present and well-formed. */
function requestedBootItem(request: DhcpPacket): Buffer | undefined {
  const vendor = request.options.get(OptionCode.VendorSpecific);
  if (!vendor) return undefined;
  let i = 0;
  while (i + 1 < vendor.length) {
    const code = vendor[i]!;
    if (code === 255) return undefined;
    if (code === 0) {
      i++;
      continue;
    }
    const len = vendor[i + 1]!;
    if (i + 2 + len > vendor.length) return undefined;
    if (code === 71 && len === 4) return vendor.subarray(i + 2, i + 2 + len);
    i += 2 + len;
  }
  return undefined;
}

/**
 * Offers on :67 go where a DHCP server's would (relay, else broadcast: the client has no
 * address yet). Boot server ACKs go back to the source of the REQUEST, from :4011.
 */
function destination(
  request: DhcpPacket,
  ctx: ProxyReceiveContext,
  deps: ProxyHandlerDeps,
): { address: string; port: number } {
  if (request.giaddr !== ZERO_IPV4) return { address: request.giaddr, port: deps.relayPort ?? 67 };
  if (ctx.via === "boot-server" && isIpv4(ctx.address) && ctx.address !== ZERO_IPV4) {
    return { address: ctx.address, port: ctx.port };
  }
  if (ctx.via === "boot-server" && request.ciaddr !== ZERO_IPV4) {
    return { address: request.ciaddr, port: deps.clientPort ?? 68 };
  }
  return { address: BROADCAST_IPV4, port: deps.clientPort ?? 68 };
}

/** Options the client asked for (55) first, in its order; 53 is put first by the encoder. */
function orderByRequestList(options: DhcpOptions, request: DhcpPacket): DhcpOptions {
  const prl = request.options.get(OptionCode.ParameterRequestList);
  if (!prl || prl.length === 0) return options;
  const ordered: DhcpOptions = new Map();
  for (const code of prl) {
    const value = options.get(code);
    if (value) ordered.set(code, value);
  }
  for (const [code, value] of options) if (!ordered.has(code)) ordered.set(code, value);
  return ordered;
}

function detailOf(facts: ClientFacts, ctx: ProxyReceiveContext): Record<string, string | boolean | undefined> {
  return { proxy: true, via: ctx.via, ...clientDetail(facts) };
}

function leaseHasAddress(machine: Machine, mac: string, ip: string): boolean {
  const wanted = parseIpv4(ip);
  return (machine.spec.pxe?.dhcpLeases ?? []).some(
    (l) => typeof l.mac === "string" && l.mac.toLowerCase() === mac && parseIpv4(l.ipv4) === wanted,
  );
}

function addressMismatch(machine: string, mac: string, address: string): NonNullable<ProxyOutcome["warning"]> {
  return {
    key: `proxy-address:${machine}`,
    message:
      "proxyDHCP: the site DHCP server gives this Machine another address than its lease; TFTP and HTTP will not recognise it (reserve the lease address on the site server)",
    fields: { machine, mac, address },
  };
}
