import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

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

/** Where a built addon can be: `server/native/build/Release/` above this module (works from dist/ and from source). */
export function defaultAddonCandidates(): string[] {
  const candidates: string[] = [];
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth++) {
    candidates.push(path.join(dir, "server", "native", "build", "Release", NATIVE_ADDON_FILE));
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return candidates;
}

/**
 * Load the addon. Throws an operator-readable error when it is missing or does not load
 * (e.g. built for another Node ABI): interface mode needs it, relay mode does not.
 */
export function loadNativeAddon(addonPath?: string): NativeAddon {
  const candidates = addonPath ? [addonPath] : defaultAddonCandidates();
  const found = candidates.find((candidate) => existsSync(candidate));
  const remedy =
    "Build it with `npm rebuild` (or `npx node-gyp rebuild --directory=server/native`; needs python3, make and a C compiler). " +
    "Relay-mode DHCP (no --dhcp-interface / --dhcp-auto-interface) works without it.";
  if (!found) {
    throw new Error(
      `interface-mode DHCP needs the native socket addon ${NATIVE_ADDON_FILE}, which was not found (looked at ${candidates.join(", ")}). ${remedy}`,
    );
  }
  try {
    return createRequire(import.meta.url)(found) as NativeAddon;
  } catch (error) {
    throw new Error(
      `interface-mode DHCP: the native socket addon ${found} did not load (${(error as Error).message}). ${remedy}`,
      { cause: error },
    );
  }
}
