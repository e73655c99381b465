import { type NetworkInterfaceInfo, networkInterfaces } from "node:os";

/** Same shape as `os.networkInterfaces()`; injectable so callers and tests need no real NICs. */
export type InterfaceTable = NodeJS.Dict<NetworkInterfaceInfo[]>;

function isIPv4(info: NetworkInterfaceInfo): boolean {
  // Node 18.0-18.3 reported the family as the number 4; accept both spellings.
  return info.family === "IPv4" || (info.family as unknown) === 4;
}

/**
 * First IPv4 address of interface `name` (spec §1.1: in interface mode this becomes the DHCP
 * server IP), or undefined when the interface does not exist or has no IPv4 address.
 */
export function interfaceIPv4(name: string, table: InterfaceTable = networkInterfaces()): string | undefined {
  return table[name]?.find(isIPv4)?.address;
}

/** Name of the interface holding IPv4 address `ip` (for --dhcp-auto-interface), or undefined. */
export function interfaceOwning(ip: string, table: InterfaceTable = networkInterfaces()): string | undefined {
  for (const [name, addresses] of Object.entries(table)) {
    if (addresses?.some((info) => isIPv4(info) && info.address === ip)) return name;
  }
  return undefined;
}
