import { addonCandidates, loadAddon } from "../../native/addon-loader.js";

/** File name node-gyp gives the addon (target_name in server/native/binding.gyp). */
export const NATIVE_ADDON_FILE = "metalman_dhcp_socket.node";

/**
 * The native socket (server/native/src/device_socket.c): UDP on 0.0.0.0:<port> with
 * SO_BINDTODEVICE, SO_BROADCAST, SO_REUSEADDR and IP_PKTINFO. Errors thrown by the constructor
 * and by send() carry `code` (e.g. "EPERM", "ENODEV"), `errno` and `syscall`.
 */
export interface NativeDeviceSocket {
  send(data: Uint8Array, address: string, port: number): void;
  /** Idempotent. No callback fires after it returns. */
  close(): void;
  readonly interfaceIndex: number;
  /** Bound local port (useful when 0 was asked for). */
  readonly port: number;
}

export type NativeMessageListener = (
  data: Buffer,
  address: string,
  port: number,
  interfaceIndex: number,
  /** Destination address of the IP header, e.g. 255.255.255.255 for a broadcast. */
  destination: string,
) => void;

export interface NativeAddon {
  DeviceSocket: new (
    interfaceName: string,
    port: number,
    onMessage: NativeMessageListener,
    onError?: (error: Error) => void,
  ) => NativeDeviceSocket;
}

/** Where the built addon can be (see addonCandidates). */
export function defaultAddonCandidates(): string[] {
  return addonCandidates(NATIVE_ADDON_FILE);
}

export function loadNativeAddon(addonPath?: string): NativeAddon {
  const loaded = loadAddon<NativeAddon>(NATIVE_ADDON_FILE, "DeviceSocket", addonPath);
  if (loaded.ok) return loaded.addon;
  const remedy =
    "Build it with `npm rebuild` (or `npx node-gyp rebuild --directory=server/native`; needs python3, make and a C compiler). " +
    "Relay-mode DHCP (no --dhcp-interface / --dhcp-auto-interface) works without it.";
  if (loaded.reason === "not-found") {
    throw new Error(
      `interface-mode DHCP needs the native socket addon ${NATIVE_ADDON_FILE}, which was not found (looked at ${loaded.candidates.join(", ")}). ${remedy}`,
    );
  }
  throw new Error(
    `interface-mode DHCP: the native socket addon ${loaded.path} did not load (${loaded.message}). ${remedy}`,
    {
      cause: loaded.cause,
    },
  );
}
