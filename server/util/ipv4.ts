/**
 * Dotted-quad IPv4 helpers (DHCP wire format, Machine validation). Hand-written instead of node:net
 * because they run per packet and must never throw on hostile input.
 */

/** Parse `a.b.c.d` into an unsigned 32-bit number, or undefined when it is not a plain dotted quad. */
export function parseIpv4(text: string | undefined): number | undefined {
  if (typeof text !== "string" || text.length < 7 || text.length > 15) return undefined;
  let value = 0;
  let octet = -1;
  let dots = 0;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (octet < 0 || dots === 3) return undefined;
      value = value * 256 + octet;
      octet = -1;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      // No leading zeros: "010" is octal to some parsers and decimal to others.
      if (digits === 1 && octet === 0) return undefined;
      octet = octet < 0 ? c - 48 : octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return undefined;
    } else {
      return undefined;
    }
  }
  if (dots !== 3 || octet < 0) return undefined;
  return value * 256 + octet;
}

export function isIpv4(text: string | undefined): boolean {
  return parseIpv4(text) !== undefined;
}

/** A subnet mask: valid IPv4 whose one-bits are contiguous from the top. */
export function isSubnetMask(text: string | undefined): boolean {
  const n = parseIpv4(text);
  if (n === undefined) return false;
  const inverted = ~n >>> 0;
  return (inverted & (inverted + 1)) === 0;
}

/** Read 4 bytes at `offset` as a dotted quad. */
export function readIpv4(buf: Buffer, offset: number): string {
  return `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}`;
}

/** Write a dotted quad at `offset`; throws TypeError for anything that is not one. */
export function writeIpv4(buf: Buffer, offset: number, text: string): void {
  const n = parseIpv4(text);
  if (n === undefined) throw new TypeError(`not an IPv4 address: ${JSON.stringify(text)}`);
  buf.writeUInt32BE(n, offset);
}

export const ZERO_IPV4 = "0.0.0.0";
export const BROADCAST_IPV4 = "255.255.255.255";
