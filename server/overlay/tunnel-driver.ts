import type { ShownInterface } from "./wg-text.js";

/**
 * What the overlay reconciler needs from the host's WireGuard and routing: the room's only
 * view of `wg`/`ip` (the command-line implementation is wg-command-driver.ts). Interfaces it
 * manages are named `wg<port>`; it never touches another.
 */
export interface TunnelDriver {
  /** Names of the `wg<port>` WireGuard interfaces that exist now. */
  listTunnels(): Promise<string[]>;
  /** What `wg` shows for one interface, or undefined when it does not exist. */
  show(name: string): Promise<ShownInterface | undefined>;
  /** Creates the interface (kernel module, else wireguard-go) when missing, sets its MTU and brings it up. */
  ensureInterface(name: string, mtu: number): Promise<void>;
  /** Replaces the interface's whole WireGuard configuration (`wg setconf` text, private key inside). */
  setConfig(name: string, config: string): Promise<void>;
  /** Makes the routes through the interface exactly these CIDRs (added, replaced, others removed). */
  setRoutes(name: string, cidrs: readonly string[], source?: string): Promise<void>;
  /** Deletes the interface; its routes go with it. */
  removeInterface(name: string): Promise<void>;
}

/** `wg51821`: the names the overlay owns (a port, so never more than IFNAMSIZ). */
export const TUNNEL_NAME = /^wg\d{4,5}$/;
