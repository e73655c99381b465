import { isIP } from "node:net";
import { createTrustedProxyMatcher } from "../config/trusted-proxy.js";

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
  const isTrusted = createTrustedProxyMatcher(trustedProxies);
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
