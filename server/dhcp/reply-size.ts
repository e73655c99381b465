import {
  DHCP_HEADER_LENGTH,
  type DhcpPacket,
  encodingLength,
  FILE_FIELD_LENGTH,
  optionWireLength,
  SNAME_FIELD_LENGTH,
} from "./codec.js";
import { type DhcpOptions, OptionCode, readU16 } from "./options.js";

/**
 * Reply size (issue 5 §1.6, docs/boot-files.md "Reply size"). A client accepts at most the
 * option 57 size (RFC 2132 §9.10), else 576 bytes (RFC 2131 §2). Like ISC dhcpd, both count
 * the IP and UDP headers, so the DHCP message itself gets 28 bytes less: 548 by default,
 * which is also the receive buffer of old PXE ROMs. A reply that does not fit first moves
 * options into the `sname` and `file` fields (option overload, RFC 2132 §9.3), then drops
 * optional options in DROP_ORDER, re-trying the plain layout before the overloaded one each time.
 */

/** RFC 2131 §2 and RFC 2132 §9.10: every client takes 576-byte IP datagrams; 57 below that is invalid. */
export const MIN_MAX_MESSAGE_SIZE = 576;
/** IPv4 header without options (20) plus UDP header (8). */
export const IP_UDP_HEADER_LENGTH = 28;
/** Without path MTU knowledge a reply never exceeds one Ethernet frame (no IP fragments to PXE ROMs). */
export const MAX_DATAGRAM_SIZE = 1500;

/**
 * Optional options, least needed first: the host name (cosmetic for a boot), DNS (the boot
 * chain uses addresses), the TFTP server name (siaddr says the same), the client identifier
 * echo (RFC 6842; clients match on chaddr too), the NAK message text. Address, mask, router,
 * lease time, server id, boot file, option 60/43 and the relay's option 82 are never dropped.
 */
export const DROP_ORDER: readonly number[] = [
  OptionCode.HostName,
  OptionCode.DnsServer,
  OptionCode.TftpServerName,
  OptionCode.ClientId,
  OptionCode.Message,
];

/** Options that stay in the options field: 53 (PXE ROMs look there first) and 82 (relays strip it there). */
const PINNED: ReadonlySet<number> = new Set([OptionCode.MessageType, OptionCode.RelayAgentInfo]);

/** Largest DHCP message (no IP/UDP headers) the sender of `request` accepts. */
export function replySizeLimit(request: DhcpPacket): number {
  const asked = readU16(request.options.get(OptionCode.MaxMessageSize));
  const datagram = asked !== undefined && asked >= MIN_MAX_MESSAGE_SIZE ? asked : MIN_MAX_MESSAGE_SIZE;
  return Math.min(datagram, MAX_DATAGRAM_SIZE) - IP_UDP_HEADER_LENGTH;
}

export interface FittedReply {
  packet: DhcpPacket;
  /** Which BOOTP fields carry options (0 none, 1 file, 2 sname, 3 both). */
  overload: number;
  /** Option codes left out, in the order they were dropped. */
  dropped: number[];
}

/** `packet` laid out to encode in at most `limit` bytes, or undefined when even the essentials do not fit. */
export function fitReply(packet: DhcpPacket, limit: number): FittedReply | undefined {
  // The common case: nothing to do, nothing copied.
  if (packet.overload === undefined && encodingLength(packet) <= limit) return { packet, overload: 0, dropped: [] };
  const options: DhcpOptions = new Map(packet.options);
  const dropped: number[] = [];
  for (;;) {
    const plain: DhcpPacket = { ...packet, options, overload: undefined };
    if (encodingLength(plain) <= limit) return { packet: plain, overload: 0, dropped };
    const overloaded = overloadLayout(packet, options, limit);
    if (overloaded) return { ...overloaded, dropped };
    const next = DROP_ORDER.find((code) => options.has(code));
    if (next === undefined) return undefined;
    options.delete(next);
    dropped.push(next);
  }
}

/**
 * First fit in option order: an option stays in the options field while it fits (order there
 * is the client's option 55 order), else goes to `sname`, else to `file`. `sname` first: its
 * text (our address) is also in siaddr and option 66, while PXE ROMs that read only BOOTP
 * fields need `file` to stay the boot file name. Options are never split across fields,
 * which some clients cannot reassemble.
 */
function overloadLayout(
  packet: DhcpPacket,
  options: DhcpOptions,
  limit: number,
): { packet: DhcpPacket; overload: number } | undefined {
  // Options field: pinned options, option 52 (3 bytes) and End (1) always.
  let mainFree = limit - DHCP_HEADER_LENGTH - 3 - 1;
  for (const [code, value] of options) if (PINNED.has(code)) mainFree -= optionWireLength(value.length);
  if (mainFree < 0) return undefined;
  let fileFree = FILE_FIELD_LENGTH - 1;
  let snameFree = SNAME_FIELD_LENGTH - 1;
  const main: DhcpOptions = new Map();
  const file: DhcpOptions = new Map();
  const sname: DhcpOptions = new Map();
  for (const [code, value] of options) {
    const size = optionWireLength(value.length);
    if (PINNED.has(code)) main.set(code, value);
    else if (size <= mainFree) {
      main.set(code, value);
      mainFree -= size;
    } else if (size <= snameFree) {
      sname.set(code, value);
      snameFree -= size;
    } else if (size <= fileFree) {
      file.set(code, value);
      fileFree -= size;
    } else return undefined;
  }
  const relayInfo = main.get(OptionCode.RelayAgentInfo);
  if (relayInfo) {
    // RFC 3046 §2.1: the relay agent option stays the last one of the options field.
    main.delete(OptionCode.RelayAgentInfo);
    main.set(OptionCode.RelayAgentInfo, relayInfo);
  }
  const overload = (file.size > 0 ? 1 : 0) | (sname.size > 0 ? 2 : 0);
  if (overload === 0) return undefined;
  const laidOut: DhcpPacket = {
    ...packet,
    options: main,
    file: file.size > 0 ? "" : packet.file,
    sname: sname.size > 0 ? "" : packet.sname,
    overload: { file: file.size > 0 ? file : undefined, sname: sname.size > 0 ? sname : undefined },
  };
  // The encoder pads to the 300-byte BOOTP minimum; a limit below that cannot be met.
  return encodingLength(laidOut) <= limit ? { packet: laidOut, overload } : undefined;
}
