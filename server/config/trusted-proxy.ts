import { BlockList, isIPv4, isIPv6 } from "node:net";

/** A parsed `--trusted-proxy` value: a bare address means a single host (/32 or /128). */
export interface Cidr {
  address: string;
  prefix: number;
  family: "ipv4" | "ipv6";
}

/** Parses `10.0.0.0/8`, `192.0.2.7`, `fd00::/8`. Returns undefined when invalid. */
export function parseCidr(text: string): Cidr | undefined {
  const [address = "", prefixText, extra] = text.trim().split("/");
  if (extra !== undefined) return undefined;
  const family = isIPv4(address) ? "ipv4" : isIPv6(address) ? "ipv6" : undefined;
  if (!family) return undefined;
  const max = family === "ipv4" ? 32 : 128;
  if (prefixText === undefined) return { address, prefix: max, family };
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  return prefix <= max ? { address, prefix, family } : undefined;
}

export function formatCidr(cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefix}`;
}

/**
 * Builds the check "is this TCP peer a proxy whose X-Forwarded-For we believe" (spec §12 item 1:
 * upstream trusts XFF from anyone). IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`) match IPv4 ranges.
 */
export function createTrustedProxyMatcher(cidrs: readonly string[]): (peer: string) => boolean {
  const list = new BlockList();
  let empty = true;
  for (const text of cidrs) {
    const cidr = parseCidr(text);
    if (!cidr) throw new Error(`trusted proxy: not an address or CIDR: ${JSON.stringify(text)}`);
    list.addSubnet(cidr.address, cidr.prefix, cidr.family);
    empty = false;
  }
  return (peer: string) => {
    if (empty || !peer) return false;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(peer);
    if (mapped) return list.check(mapped[1]!, "ipv4");
    if (isIPv4(peer)) return list.check(peer, "ipv4");
    if (isIPv6(peer)) return list.check(peer, "ipv6");
    return false;
  };
}
