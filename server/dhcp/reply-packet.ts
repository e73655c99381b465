import { ZERO_IPV4 } from "../util/ipv4.js";
import type { DhcpPacket } from "./codec.js";

/**
 * The BOOTREPLY frame both DHCP policies (handler.ts, proxy-handler.ts) answer with. Pure.
 *
 * A BOOTREPLY for `request`: transaction, hardware address, flags and relay address copied
 * (RFC 2131 §4.3.1 table 3); addresses, server name and file empty unless given.
 */
export function replyTo(request: DhcpPacket, fields: Partial<DhcpPacket> & Pick<DhcpPacket, "options">): DhcpPacket {
  // Field by field, not `{ ...defaults, ...fields }`: one reply per answered packet.
  const reply: DhcpPacket = {
    op: fields.op ?? 2,
    htype: fields.htype ?? request.htype,
    hlen: fields.hlen ?? request.hlen,
    hops: fields.hops ?? 0,
    xid: fields.xid ?? request.xid,
    secs: fields.secs ?? 0,
    flags: fields.flags ?? request.flags,
    ciaddr: fields.ciaddr ?? ZERO_IPV4,
    yiaddr: fields.yiaddr ?? ZERO_IPV4,
    siaddr: fields.siaddr ?? ZERO_IPV4,
    giaddr: fields.giaddr ?? request.giaddr,
    chaddr: fields.chaddr ?? request.chaddr,
    sname: fields.sname ?? "",
    file: fields.file ?? "",
    options: fields.options,
  };
  if (fields.overload !== undefined) reply.overload = fields.overload;
  return reply;
}
