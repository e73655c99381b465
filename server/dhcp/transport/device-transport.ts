import type { Logger } from "pino";
import type { DhcpTransport, ReceivedDatagram } from "../transport.js";
import { loadNativeAddon, type NativeDeviceSocket } from "./native-addon.js";

export { interfaceIPv4, interfaceOwning } from "../../util/network-interfaces.js";

export interface DeviceTransportOptions {
  /** The DHCP interface (--dhcp-interface, or the one found by --dhcp-auto-interface). */
  interfaceName: string;
  /** UDP port, default 67. 0 picks a free port (tests); see `localPort`. */
  port?: number;
  /** Explicit path of the built addon; default: server/native/build/Release/ of this checkout. */
  addonPath?: string;
  logger?: Logger;
}

/** PXE 2.1 boot server port: proxyDHCP clients unicast their REQUEST here. */
export const PXE_BOOT_SERVER_PORT = 4011;

/** Receive errors are logged at most this often (a persistent error would otherwise flood the log). */
const ERROR_LOG_INTERVAL_MS = 60_000;

/**
 * Interface-mode DHCP transport (spec §3.1): a UDP socket on 0.0.0.0:<port> pinned to one NIC
 * with SO_BINDTODEVICE, through the native addon (Node's dgram cannot do this). It receives the
 * broadcast DISCOVERs of that NIC only, and a send to 255.255.255.255 leaves through that NIC even
 * when the host has no default route. The addon is loaded in start(), so importing this module
 * never touches the native code.
 */
export class DeviceTransport implements DhcpTransport {
  readonly description: string;
  private socket: NativeDeviceSocket | undefined;
  private lastErrorLogAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: DeviceTransportOptions) {
    this.description = `device ${options.interfaceName} :${options.port ?? 67}`;
  }

  get localPort(): number | undefined {
    return this.socket?.port;
  }

  get interfaceIndex(): number | undefined {
    return this.socket?.interfaceIndex;
  }

  async start(onDatagram: (datagram: ReceivedDatagram) => void): Promise<void> {
    if (this.socket) throw new Error(`${this.description}: already started`);
    const addon = loadNativeAddon(this.options.addonPath);
    const interfaceName = this.options.interfaceName;
    try {
      this.socket = new addon.DeviceSocket(
        interfaceName,
        this.options.port ?? 67,
        (data, address, port, interfaceIndex) => onDatagram({ data, address, port, interfaceName, interfaceIndex }),
        (error) => this.logReceiveError(error),
      );
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const hint = code === "EPERM" || code === "EACCES" ? " (needs CAP_NET_RAW and CAP_NET_BIND_SERVICE)" : "";
      throw Object.assign(new Error(`${this.description}: ${(error as Error).message}${hint}`, { cause: error }), {
        code,
      });
    }
  }

  /** Synchronous send (DhcpTransport.trySend): undefined when sent, else the errno error. */
  readonly trySend = (data: Buffer, address: string, port: number): Error | undefined => {
    if (!this.socket) return new Error(`${this.description}: send before start`);
    try {
      this.socket.send(data, address, port);
      return undefined;
    } catch (error) {
      return error as Error;
    }
  };

  async send(data: Buffer, address: string, port: number): Promise<void> {
    if (!this.socket) throw new Error(`${this.description}: send before start`);
    this.socket.send(data, address, port); // throws the errno error (EPERM, ENETUNREACH, EAGAIN, ...)
  }

  async close(): Promise<void> {
    this.socket?.close();
    this.socket = undefined;
  }

  private logReceiveError(error: Error): void {
    const now = Date.now();
    if (now - this.lastErrorLogAt < ERROR_LOG_INTERVAL_MS) return;
    this.lastErrorLogAt = now;
    this.options.logger?.warn(
      { err: error, interface: this.options.interfaceName },
      "dhcp device socket receive error",
    );
  }
}
