import { BlockList, isIP } from "node:net";

/**
 * Who is asking. Netboot routes are machine-facing and, like upstream, identify the
 * Machine by its source IP (the DHCP lease address). Unlike upstream (spec §12 item 1),
 * `X-Forwarded-For` is ignored unless the TCP peer is a configured trusted proxy.
 *
 * With a trusted peer the chain `XFF hops..., peer` is walked from the right and the
 * first address that is NOT a trusted proxy is the client ("right-most untrusted hop"):
 * hops further left were written by the client or by proxies we do not trust, so they
 * can be forged; the right-most untrusted one was written by a proxy we do trust. When
 * every hop is trusted the left-most one is used. A hop that is not an IP address makes
 * the identity unknown (the request is then treated as coming from a stranger).
 */
export type ClientIdentity = (
  peerAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
) => string | undefined;

export function createClientIdentity(trustedProxies: readonly string[] = []): ClientIdentity {
  const trusted = parseTrustedProxies(trustedProxies);
  const isTrusted = (ip: string) => trustedProxies.length > 0 && trusted.check(ip, isIP(ip) === 6 ? "ipv6" : "ipv4");
  return (peerAddress, forwardedFor) => {
    const peer = peerAddress === undefined ? undefined : normalizeIp(peerAddress);
    if (peer === undefined || !isTrusted(peer) || forwardedFor === undefined) return peer;
    const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor)
      .split(",")
      .map((hop) => hop.trim())
      .filter((hop) => hop !== "");
    if (hops.length === 0) return peer;
    // Bounded by the header size limit of the HTTP parser.
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = normalizeIp(hops[i]!);
      if (hop === undefined) return undefined;
      if (!isTrusted(hop)) return hop;
    }
    return normalizeIp(hops[0]!);
  };
}

/** Canonical text form used as the lookup key: IPv4-mapped IPv6 → IPv4, brackets and IPv4 ports stripped, IPv6 lower-cased. */
export function normalizeIp(raw: string): string | undefined {
  let value = raw.trim();
  if (value.startsWith("[")) {
    const end = value.indexOf("]");
    if (end < 0) return undefined;
    value = value.slice(1, end);
  }
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(value);
  if (v4WithPort) value = v4WithPort[1]!;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(value);
  if (mapped) value = mapped[1]!;
  const family = isIP(value);
  if (family === 4) return value;
  if (family === 6) return value.toLowerCase();
  return undefined;
}

/** Parses `10.0.0.0/8`, `fd00::/8` or a bare address. Throws on anything else (a configuration error). */
export function parseTrustedProxies(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address, prefixText, extra] = cidr.trim().split("/");
    const ip = address === undefined ? undefined : normalizeIp(address);
    if (ip === undefined || extra !== undefined)
      throw new Error(`trusted proxy ${JSON.stringify(cidr)} is not an IP or CIDR`);
    const family = isIP(ip) === 6 ? "ipv6" : "ipv4";
    const max = family === "ipv6" ? 128 : 32;
    const prefix = prefixText === undefined ? max : Number(prefixText);
    if (!/^\d{1,3}$/.test(prefixText ?? String(max)) || prefix > max) {
      throw new Error(`trusted proxy ${JSON.stringify(cidr)} has an invalid prefix length`);
    }
    list.addSubnet(ip, prefix, family);
  }
  return list;
}
