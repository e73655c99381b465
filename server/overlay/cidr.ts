import { isIP } from "node:net";

/** `10.0.0.0/24` or `fd00::/64`: an address and a prefix length that fits its family. */
export function isCidr(value: string): boolean {
  const slash = value.indexOf("/");
  if (slash < 1) return false;
  const family = isIP(value.slice(0, slash));
  const bits = value.slice(slash + 1);
  if (family === 0 || !/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

/** A WireGuard key: 32 bytes in standard base64 (44 characters ending in `=`). */
export function isWireGuardKey(value: unknown): value is string {
  return typeof value === "string" && /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(value);
}

/** `ip:port` as WireGuard wants it, with IPv6 addresses in brackets. */
export function endpointOf(ip: string, port: number): string {
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}
