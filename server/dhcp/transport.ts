/**
 * How DHCP packets reach the server and leave it. Two implementations:
 * - relay mode: the native UdpListener (or a plain `dgram` socket without the addon); giaddr
 *   traffic is unicast both ways;
 * - interface mode: the native addon (SO_BINDTODEVICE + IP_PKTINFO), which sees broadcast
 *   DISCOVERs of exactly one interface and can broadcast replies without a default route.
 */
export interface ReceivedDatagram {
  data: Buffer;
  /** Source address and port of the datagram (0.0.0.0:68 for a client without address). */
  address: string;
  port: number;
  /** Interface the datagram arrived on, when the transport knows it. */
  interfaceName?: string;
  interfaceIndex?: number;
}

export interface DhcpTransport {
  /** Open the socket and deliver every datagram to `onDatagram`. Rejects when the socket cannot be opened. */
  start(onDatagram: (datagram: ReceivedDatagram) => void): Promise<void>;
  /** Send one datagram; `address` may be 255.255.255.255 (interface mode only). */
  send(data: Buffer, address: string, port: number): Promise<void>;
  /**
   * Optional synchronous send, for transports whose socket takes a datagram at once (the
   * native ones): undefined when sent, else the error. The server prefers it on its hot path
   * (no promise per reply); read it after start(), as it may only exist then.
   */
  readonly trySend?: (data: Buffer, address: string, port: number) => Error | undefined;
  close(): Promise<void>;
  /** Human description for logs and the banner, e.g. `udp 0.0.0.0:67 (relay)` or `device srv0 :67`. */
  readonly description: string;
}
