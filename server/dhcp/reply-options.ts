import type { DhcpLease } from "../inventory/types.js";
import { isIpv4, isSubnetMask } from "../util/ipv4.js";
import { ipOption, ipsOption, stringOption, u8Option, u32Option } from "./options.js";

/**
 * Encoded option values that repeat from reply to reply: our address (54, 66), the lease time,
 * the message types, boot file names, and each lease's mask, router, DNS servers and host name.
 * Building them per reply allocated about ten small Buffers per answered packet, a good part
 * of the DHCP server's garbage. The handler works the same without a cache (unit tests call it
 * without one); the server keeps one per DhcpServer.
 *
 * The values are shared between replies: nothing may write into them (the encoder only copies).
 * Per-lease values are cached only for frozen leases (the inventory deep-freezes every stored
 * Machine, and a changed Machine is a new object), so a mutable lease is never served stale.
 */
export interface LeaseOptionValues {
  /** Option 1, when the lease's mask is a valid mask. */
  readonly subnetMask: Buffer | undefined;
  /** Option 3, when the gateway is an IPv4 address. */
  readonly router: Buffer | undefined;
  /** Option 6, the lease's valid IPv4 DNS servers (undefined when none). */
  readonly dns: Buffer | undefined;
  /** Option 12, the Machine name (undefined when empty). */
  readonly hostName: Buffer | undefined;
}

/** Strings (file names, addresses) kept before the table starts over. */
const MAX_STRINGS = 4096;

export class ReplyOptionCache {
  readonly #leases = new WeakMap<DhcpLease, { hostName: string; values: LeaseOptionValues }>();
  readonly #strings = new Map<string, Buffer>();
  readonly #ips = new Map<string, Buffer>();
  readonly #u8 = new Map<number, Buffer>();
  readonly #u32 = new Map<number, Buffer>();

  /** Option values of `lease` for a reply to the Machine `hostName`. */
  lease(lease: DhcpLease, hostName: string): LeaseOptionValues {
    if (!Object.isFrozen(lease)) return leaseOptionValues(lease, hostName);
    const cached = this.#leases.get(lease);
    if (cached && cached.hostName === hostName) return cached.values;
    const values = leaseOptionValues(lease, hostName);
    this.#leases.set(lease, { hostName, values });
    return values;
  }

  /** Latin-1 string option (66, 67, 60). */
  string(value: string): Buffer {
    return cached(this.#strings, value, stringOption);
  }

  /** IPv4 option (54); throws TypeError for anything that is not an address, as ipOption does. */
  ip(value: string): Buffer {
    return cached(this.#ips, value, ipOption);
  }

  u8(value: number): Buffer {
    return cached(this.#u8, value, u8Option);
  }

  u32(value: number): Buffer {
    return cached(this.#u32, value, u32Option);
  }
}

function cached<K>(table: Map<K, Buffer>, key: K, make: (key: K) => Buffer): Buffer {
  let value = table.get(key);
  if (value === undefined) {
    value = make(key);
    if (table.size >= MAX_STRINGS) table.clear();
    table.set(key, value);
  }
  return value;
}

/** What the handler used to build per reply, from the lease and the Machine name. */
export function leaseOptionValues(lease: DhcpLease, hostName: string): LeaseOptionValues {
  const dns = (lease.dns ?? []).filter((d) => isIpv4(d));
  return {
    subnetMask: isSubnetMask(lease.subnetMask) ? ipOption(lease.subnetMask) : undefined,
    router: isIpv4(lease.gateway) ? ipOption(lease.gateway) : undefined,
    dns: dns.length > 0 ? ipsOption(dns) : undefined,
    hostName: hostName ? stringOption(hostName) : undefined,
  };
}
