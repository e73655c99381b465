import dgram from "node:dgram";
import type { Logger } from "pino";
import type { DhcpTransport, ReceivedDatagram } from "../transport.js";

export interface UdpTransportOptions {
  /** UDP port, normally 67. 0 picks a free port (tests); see `localPort`. */
  port: number;
  /** Relay mode listens on every address (spec §3.1: --bind-address is ignored). */
  address?: string;
  logger?: Logger;
}

/**
 * Relay-mode DHCP transport: a plain `dgram` socket. Relayed traffic is unicast both ways
 * (relay -> us on :67, us -> giaddr:67), so none of the broadcast problems of interface mode apply.
 */
export class UdpTransport implements DhcpTransport {
  readonly description: string;
  private socket: dgram.Socket | undefined;
  private readonly address: string;

  constructor(private readonly options: UdpTransportOptions) {
    this.address = options.address ?? "0.0.0.0";
    this.description = `udp ${this.address}:${options.port} (relay)`;
  }

  /** The bound port once started (differs from `options.port` only when that was 0). */
  get localPort(): number | undefined {
    return this.socket?.address().port;
  }

  async start(onDatagram: (datagram: ReceivedDatagram) => void): Promise<void> {
    if (this.socket) throw new Error(`${this.description}: already started`);
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

  send(data: Buffer, address: string, port: number): Promise<void> {
    const socket = this.socket;
    if (!socket) return Promise.reject(new Error(`${this.description}: send before start`));
    return new Promise((resolve, reject) => {
      socket.send(data, port, address, (error) => (error ? reject(error) : resolve()));
    });
  }

  close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return Promise.resolve();
    return new Promise((resolve) => socket.close(() => resolve()));
  }
}
