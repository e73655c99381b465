import { isWireGuardKey } from "./cidr.js";
import type { PlannedTunnel } from "./tunnel-plan.js";

/**
 * The two texts metalman exchanges with `wg`: the configuration it feeds to `wg setconf IFACE
 * /dev/stdin` (so the private key never lands in a file or on a command line), and the
 * `wg show IFACE dump` table it reads back. Pure, so both are tested without a tunnel.
 */

/** Keepalive for every gateway peer: the appliance sits behind NAT with outbound traffic only. */
export const PERSISTENT_KEEPALIVE_SECONDS = 25;

export function renderSetconf(tunnel: PlannedTunnel, privateKey: string): string {
  if (!isWireGuardKey(privateKey)) throw new Error("overlay: the private key is not a WireGuard key");
  const lines = [
    "[Interface]",
    `PrivateKey = ${privateKey}`,
    `ListenPort = ${tunnel.listenPort}`,
    "",
    "[Peer]",
    `PublicKey = ${tunnel.peer.publicKey}`,
    `AllowedIPs = ${tunnel.peer.allowedIPs.join(", ")}`,
    `PersistentKeepalive = ${PERSISTENT_KEEPALIVE_SECONDS}`,
  ];
  if (tunnel.peer.endpoint !== undefined) lines.push(`Endpoint = ${tunnel.peer.endpoint}`);
  return `${lines.join("\n")}\n`;
}

export interface ShownPeer {
  publicKey: string;
  endpoint?: string;
  allowedIPs: string[];
  /** Seconds since the epoch of the last handshake; undefined: never. */
  latestHandshake?: number;
  rxBytes: number;
  txBytes: number;
}

export interface ShownInterface {
  publicKey: string;
  listenPort: number;
  peers: ShownPeer[];
}

/**
 * Parses `wg show IFACE dump`: a first line `private-key public-key listen-port fwmark`, then one
 * tab-separated line per peer. The private key is read past and never kept.
 */
export function parseDump(text: string): ShownInterface | undefined {
  const lines = text.split("\n").filter((line) => line.length > 0);
  const head = lines[0]?.split("\t");
  if (head === undefined || head.length < 4) return undefined;
  const listenPort = Number(head[2]);
  const shown: ShownInterface = {
    publicKey: head[1] ?? "",
    listenPort: Number.isInteger(listenPort) ? listenPort : 0,
    peers: [],
  };
  for (const line of lines.slice(1)) {
    const f = line.split("\t");
    if (f.length < 8) continue;
    const [publicKey = "", , endpoint = "", allowed = "", handshake = "0", rx = "0", tx = "0"] = f;
    const handshakeSeconds = Number(handshake);
    shown.peers.push({
      publicKey,
      ...(endpoint === "(none)" ? {} : { endpoint }),
      allowedIPs: allowed === "(none)" ? [] : allowed.split(","),
      ...(handshakeSeconds > 0 ? { latestHandshake: handshakeSeconds } : {}),
      rxBytes: Number(rx) || 0,
      txBytes: Number(tx) || 0,
    });
  }
  return shown;
}

/** True when what `wg` shows already is the plan (so nothing is rewritten and no handshake is lost). */
export function matchesPlan(shown: ShownInterface, tunnel: PlannedTunnel, publicKey: string): boolean {
  if (shown.publicKey !== publicKey || shown.listenPort !== tunnel.listenPort || shown.peers.length !== 1) return false;
  const peer = shown.peers[0];
  if (peer === undefined || peer.publicKey !== tunnel.peer.publicKey) return false;
  if (tunnel.peer.endpoint !== undefined && peer.endpoint !== tunnel.peer.endpoint) return false;
  const want = [...tunnel.peer.allowedIPs].map(normaliseCidr).sort();
  const have = [...peer.allowedIPs].map(normaliseCidr).sort();
  return want.length === have.length && want.every((cidr, i) => cidr === have[i]);
}

/** `wg` prints CIDRs in canonical form; the plan may not (`10.0.0.1/24` vs `10.0.0.0/24` is left alone). */
function normaliseCidr(cidr: string): string {
  return cidr.trim().toLowerCase();
}
