import { ZERO_IPV4 } from "../util/ipv4.js";
import type { DhcpPacket } from "./codec.js";

/**
 * The BOOTREPLY frame both DHCP policies (handler.ts, proxy-handler.ts) answer with. Pure.
 *
 * A BOOTREPLY for `request`: transaction, hardware address, flags and relay address copied
 * (RFC 2131 §4.3.1 table 3); addresses, server name and file empty unless given.
 */
export function replyTo(request: DhcpPacket, fields: Partial<DhcpPacket> & Pick<DhcpPacket, "options">): DhcpPacket {
  return {
    op: 2,
    htype: request.htype,
    hlen: request.hlen,
    hops: 0,
    xid: request.xid,
    secs: 0,
    flags: request.flags,
    ciaddr: ZERO_IPV4,
    yiaddr: ZERO_IPV4,
    siaddr: ZERO_IPV4,
    giaddr: request.giaddr,
    chaddr: request.chaddr,
    sname: "",
    file: "",
    ...fields,
  };
}
