import dgram from "node:dgram";
import { constants } from "node:os";
import type { Logger } from "pino";
import { loadUdpListener, type NativeUdpListener } from "../../native/udp-listener.js";
import type { DhcpTransport, ReceivedDatagram } from "../transport.js";

export interface UdpTransportOptions {
  /** UDP port, normally 67. 0 picks a free port (tests); see `localPort`. */
  port: number;
  /** Relay mode listens on every address (spec §3.1: --bind-address is ignored). */
  address?: string;
  logger?: Logger;
  /**
   * Use the native listener (server/native/src/udp_listener.c). On a wildcard address it makes
   * each reply leave from the address its request was sent to; on any address its send is one
   * synchronous sendmsg(2) (dgram's costs a send request, an address lookup and a callback
   * per reply, ~10 % of a saturated DHCP server). Default true; dgram when false or when the
   * addon is missing.
   */
  nativeSockets?: boolean;
  /** Path of metalman_udp.node (tests); default: server/native/build/Release/. */
  udpAddonPath?: string;
}

/** BOOTP xid: bytes 4..7 of every DHCP message; a reply carries its request's. */
const XID_OFFSET = 4;
/** Requests whose local address is remembered for the reply (oldest forgotten first). */
const MAX_REMEMBERED_XIDS = 4096;

/**
 * Relay-mode DHCP transport. Relayed traffic is unicast both ways (relay -> us on :67, us ->
 * giaddr:67), so none of the broadcast problems of interface mode apply.
 *
 * Reply source: on a host with a secondary address, a VIP or several NICs, a reply must leave
 * from the address the request was sent to (a relay or a renewing client drops or mis-files
 * anything else; EDK2 drops it). On a wildcard bind the native listener reports each request's
 * local address (IP_PKTINFO); the transport remembers it by xid, since the DhcpTransport
 * interface does not pass the request to `send`, and sends the reply with that source. Without
 * the addon it is plain dgram and the kernel picks the source by route.
 */
export class UdpTransport implements DhcpTransport {
  readonly description: string;
  private socket: dgram.Socket | undefined;
  private native: NativeUdpListener | undefined;
  private readonly address: string;
  private readonly localByXid = new Map<number, string>();

  constructor(private readonly options: UdpTransportOptions) {
    this.address = options.address ?? "0.0.0.0";
    this.description = `udp ${this.address}:${options.port} (relay)`;
  }

  /** The bound port once started (differs from `options.port` only when that was 0). */
  get localPort(): number | undefined {
    return this.native?.port ?? this.socket?.address().port;
  }

  /** "native" when replies leave from their request's local address (IP_PKTINFO). */
  get replySource(): "request-destination" | "kernel-route" {
    return this.native ? "request-destination" : "kernel-route";
  }

  async start(onDatagram: (datagram: ReceivedDatagram) => void): Promise<void> {
    if (this.socket || this.native) throw new Error(`${this.description}: already started`);
    const addon = (this.options.nativeSockets ?? true) ? loadUdpListener(this.options.udpAddonPath) : undefined;
    if (addon) {
      // On a specific address every reply leaves from it anyway: nothing to remember.
      const wildcard = this.address === "0.0.0.0";
      // reuseAddress as with dgram below (restarts, rolling updates with hostNetwork).
      this.native = new addon.UdpListener(
        this.address,
        this.options.port,
        wildcard
          ? (data, address, port, localAddress) => {
              this.remember(data, localAddress);
              onDatagram({ data, address, port });
            }
          : (data, address, port) => onDatagram({ data, address, port }),
        (error) => this.options.logger?.warn({ err: error }, "dhcp udp socket error"),
        true,
      );
      return;
    }
    // reuseAddr: a restart need not wait for the previous socket, and a second instance on the
    // same host (e.g. during a rolling update with hostNetwork) can bind too.
    const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
    await new Promise<void>((resolve, reject) => {
      const onBindError = (error: Error) => {
        socket.close();
        reject(error);
      };
      socket.once("error", onBindError);
      socket.bind({ address: this.address, port: this.options.port }, () => {
        socket.off("error", onBindError);
        resolve();
      });
    });
    // Only possible after bind. Relay replies are unicast; this keeps a reply to a broadcast
    // address (e.g. a subnet broadcast giaddr misconfiguration) from failing with EACCES.
    socket.setBroadcast(true);
    socket.on("error", (error) => this.options.logger?.warn({ err: error }, "dhcp udp socket error"));
    socket.on("message", (data, remote) => onDatagram({ data, address: remote.address, port: remote.port }));
    this.socket = socket;
  }

  private remember(data: Buffer, localAddress: string): void {
    if (data.length < XID_OFFSET + 4 || localAddress === "0.0.0.0") return;
    const xid = data.readUInt32BE(XID_OFFSET);
    this.localByXid.delete(xid); // re-insert: newest last
    this.localByXid.set(xid, localAddress);
    if (this.localByXid.size > MAX_REMEMBERED_XIDS) {
      const oldest = this.localByXid.keys().next().value;
      if (oldest !== undefined) this.localByXid.delete(oldest);
    }
  }

  /**
   * The synchronous send of the native socket (DhcpTransport.trySend): undefined when the
   * datagram was handed to the kernel, else the error. Absent (undefined) on the dgram path.
   */
  get trySend(): ((data: Buffer, address: string, port: number) => Error | undefined) | undefined {
    return this.native ? this.#trySend : undefined;
  }

  readonly #trySend = (data: Buffer, address: string, port: number): Error | undefined => {
    const native = this.native;
    if (!native) return new Error(`${this.description}: send before start`);
    const source =
      this.localByXid.size > 0 && data.length >= XID_OFFSET + 4
        ? this.localByXid.get(data.readUInt32BE(XID_OFFSET))
        : undefined;
    const errno = native.send(data, address, port, source);
    if (errno === 0) return undefined;
    // Shaped like dgram's errors (code "ENETUNREACH", ...), which callers and logs expect.
    const code = errnoName(errno);
    return Object.assign(new Error(`send ${code} ${address}:${port}`), { errno: -errno, code, syscall: "send" });
  };

  send(data: Buffer, address: string, port: number): Promise<void> {
    if (this.native) {
      const error = this.#trySend(data, address, port);
      return error ? Promise.reject(error) : Promise.resolve();
    }
    const socket = this.socket;
    if (!socket) return Promise.reject(new Error(`${this.description}: send before start`));
    return new Promise((resolve, reject) => {
      socket.send(data, port, address, (error) => (error ? reject(error) : resolve()));
    });
  }

  close(): Promise<void> {
    const socket = this.socket;
    const native = this.native;
    this.socket = undefined;
    this.native = undefined;
    this.localByXid.clear();
    native?.close();
    if (!socket) return Promise.resolve();
    return new Promise((resolve) => socket.close(() => resolve()));
  }
}

/** "ENETUNREACH" for 101 (Linux errno numbers, as the addon returns them). */
function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(constants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}
