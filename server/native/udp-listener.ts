import { loadAddon } from "./addon-loader.js";

/** File name of the addon that carries UdpListener (and the TFTP transfer socket). */
export const UDP_LISTENER_ADDON_FILE = "metalman_udp.node";

/**
 * A datagram and the local address it was sent to (IP_PKTINFO ipi_spec_dst: the destination
 * for unicast, the receiving interface's address for a broadcast).
 */
export type UdpListenerMessage = (data: Buffer, address: string, port: number, localAddress: string) => void;

/** The listening socket of server/native/src/udp_listener.c (see its header comment). */
export interface NativeUdpListener {
  /** 0 sent, otherwise the errno. With `sourceAddress` the datagram leaves from that local address. */
  send(data: Buffer, address: string, port: number, sourceAddress?: string): number;
  /** Idempotent; no callback fires after it returns. */
  close(): void;
  readonly port: number;
}

export interface UdpListenerAddon {
  UdpListener: new (
    localAddress: string,
    port: number,
    onMessage: UdpListenerMessage,
    onError: (err: NodeJS.ErrnoException) => void,
    reuseAddress?: boolean,
  ) => NativeUdpListener;
}

/** The addon, or undefined when it is not built, does not load or predates UdpListener (callers fall back to dgram). */
export function loadUdpListener(addonPath?: string): UdpListenerAddon | undefined {
  if (process.platform !== "linux") return undefined;
  const loaded = loadAddon<UdpListenerAddon>(UDP_LISTENER_ADDON_FILE, "UdpListener", addonPath);
  return loaded.ok ? loaded.addon : undefined;
}
