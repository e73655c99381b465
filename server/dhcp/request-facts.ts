import type { BootEvent } from "../events/boot-events.js";
import type { DiscoveryStore } from "../inventory/backend.js";
import { ZERO_IPV4 } from "../util/ipv4.js";
import type { BootClient } from "./boot-file.js";
import { clientArchName } from "./client-arch.js";
import { type DhcpPacket, hardwareAddress } from "./codec.js";
import {
  type MessageTypeName,
  OptionCode,
  readClientArchList,
  readClientMachineId,
  readString,
  readUserClasses,
} from "./options.js";

/**
 * What a BOOTREQUEST says about its client, and the event shapes both DHCP policies (the
 * address server in handler.ts and proxyDHCP in proxy-handler.ts) report it with, so the two
 * modes describe the same client the same way. Pure.
 */

export interface ClientFacts extends BootClient {
  mac: string;
  uuid?: string;
  relay?: string;
}

type EventInput = Omit<BootEvent, "time">;

/** The part of a policy's outcome (DhcpOutcome, ProxyOutcome) that an unanswered packet fills in. */
export interface IgnoredOutcome<R extends string> {
  requestType?: MessageTypeName;
  ignoredReason: R;
  events: EventInput[];
  warning?: { key: string; message: string; fields?: Record<string, unknown> };
}

export function clientFacts(request: DhcpPacket): ClientFacts {
  const opts = request.options;
  return {
    mac: hardwareAddress(request),
    arch: readClientArchList(opts.get(OptionCode.ClientSystemArch))?.[0],
    vendorClass: readString(opts.get(OptionCode.VendorClass)),
    userClasses: readUserClasses(opts.get(OptionCode.UserClass)),
    uuid: readClientMachineId(opts.get(OptionCode.ClientMachineId)),
    relay: nonZero(request.giaddr),
  };
}

/** The client part of an event's detail. */
export function clientDetail(facts: ClientFacts): Record<string, string | undefined> {
  return {
    arch: clientArchName(facts.arch),
    vendorClass: facts.vendorClass,
    userClass: facts.userClasses?.join(","),
    relay: facts.relay,
  };
}

/** A stranger PXE client, for `metalman discovered`. */
export function recordDiscovery(discovery: DiscoveryStore, facts: ClientFacts, interfaceName?: string): void {
  discovery.record({
    mac: facts.mac,
    arch: facts.arch,
    vendorClass: facts.vendorClass,
    userClass: facts.userClasses?.join(","),
    uuid: facts.uuid,
    relayAddress: facts.relay,
    interface: interfaceName,
  });
}

export function nonZero(ip: string): string | undefined {
  return ip === ZERO_IPV4 ? undefined : ip;
}

/** The client's own address, when it has one (a relayed packet's source is the relay). */
export function clientSourceIp(request: DhcpPacket, sourceAddress: string): string | undefined {
  return nonZero(request.ciaddr) ?? (request.giaddr === ZERO_IPV4 ? nonZero(sourceAddress) : undefined);
}

/** A packet dropped before it could be tied to a request step (malformed, unexpected type). */
export function ignoredPacket<R extends string>(
  reason: R,
  sourceAddress: string,
  mac?: string,
  requestType?: MessageTypeName,
): IgnoredOutcome<R> {
  return {
    requestType,
    ignoredReason: reason,
    events: [{ step: "dhcp.ignored", result: "ignored", reason, mac, ip: nonZero(sourceAddress) }],
  };
}

/** A request we do not answer, reported on its own step. */
export function ignoredRequest<R extends string>(
  requestType: MessageTypeName,
  step: EventInput["step"],
  base: { mac: string; ip?: string; machine?: string },
  reason: R,
  detail?: Record<string, string | undefined>,
): IgnoredOutcome<R> {
  return { requestType, ignoredReason: reason, events: [{ ...base, step, result: "ignored", reason, detail }] };
}
