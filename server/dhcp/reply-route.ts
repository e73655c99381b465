import type { DhcpLease } from "../inventory/types.js";
import { BROADCAST_IPV4, isSubnetMask, parseIpv4, ZERO_IPV4 } from "../util/ipv4.js";
import type { DhcpPacket } from "./codec.js";
import { MessageType } from "./options.js";

/**
 * Where a reply may go (issue 5 §1.5, docs/boot-files.md): never anywhere a packet merely
 * claims. A relay's giaddr counts only inside the lease's subnet, a ciaddr only when it is
 * the lease address. Pure functions; the handler applies them.
 */

/**
 * RFC 2131 §4.1 for OFFER and ACK (the ACK to an INFORM too, §4.3.5). The caller has checked
 * that a giaddr lies in the lease's subnet.
 */
export function replyDestination(
  request: DhcpPacket,
  deps: { relayPort?: number; clientPort?: number },
  lease: DhcpLease,
): { address: string; port: number } {
  if (request.giaddr !== ZERO_IPV4) return { address: request.giaddr, port: deps.relayPort ?? 67 };
  // Only the lease address: a DISCOVER may carry any ciaddr, and we unicast nowhere else.
  if (request.ciaddr !== ZERO_IPV4 && parseIpv4(request.ciaddr) === parseIpv4(lease.ipv4)) {
    return { address: lease.ipv4, port: deps.clientPort ?? 68 };
  }
  // Unicast to yiaddr would need an ARP entry the client cannot answer for yet; broadcast
  // reaches it whether or not it set the broadcast flag.
  return { address: BROADCAST_IPV4, port: deps.clientPort ?? 68 };
}

/**
 * In relay mode, the direct packets worth looking at: a client that holds its lease unicasts
 * RENEWING REQUESTs, INFORMs and RELEASEs to the server id with ciaddr set (RFC 2131 §4.3.2,
 * §4.3.5, §4.4.5). DISCOVERs and broadcasts without a relay stay the relays' job.
 */
export function isLeaseHolderUnicast(request: DhcpPacket, type: number | undefined): boolean {
  if (request.ciaddr === ZERO_IPV4) return false;
  return type === MessageType.Request || type === MessageType.Inform || type === MessageType.Release;
}

/**
 * giaddr is a host address of the lease's subnet (lease.ipv4/subnetMask): false without a
 * valid mask (the subnet is then unknown), and false for the subnet's network and broadcast
 * addresses, where a reply would be a directed broadcast (except in /31 and /32, RFC 3021).
 */
export function inLeaseSubnet(giaddr: string, lease: DhcpLease): boolean {
  if (!isSubnetMask(lease.subnetMask)) return false;
  const mask = parseIpv4(lease.subnetMask);
  const relay = parseIpv4(giaddr);
  const ip = parseIpv4(lease.ipv4);
  if (mask === undefined || relay === undefined || ip === undefined) return false;
  if ((relay & mask) >>> 0 !== (ip & mask) >>> 0) return false;
  const host = (relay & ~mask) >>> 0;
  const hostBits = ~mask >>> 0;
  return hostBits <= 1 || (host !== 0 && host !== hostBits);
}
