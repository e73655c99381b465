import type { Socket } from "node:dgram";
import { loadAddon } from "../native/addon-loader.js";
import { Opcode } from "./packets.js";

/**
 * What a TftpSession needs from its socket, so it runs on either Node's dgram or the lean native
 * socket (server/native/src/udp_socket.c). The socket is already bound and connected to the peer.
 */
export interface TransferSocket {
  /**
   * Sends one datagram to the peer, synchronously. false: the kernel's send buffer is full and
   * nothing was sent; `onWritable` fires once there is room again (dgram never says false: it
   * queues internally).
   */
  send(packet: Buffer): boolean;
  /** Sets (or, with undefined, removes) the receiver of this socket's events. */
  listen(handlers: TransferSocketHandlers | undefined): void;
  /** Idempotent; no handler is called afterwards. */
  close(): Promise<void>;
  /**
   * Lock-step latency (native socket only): `packet` is sent by the socket itself as soon as
   * the ACK for wire block `ackBlock` arrives, before any JS runs; `onAck` then says so. The
   * packet's bytes must stay unchanged until then. No argument disarms.
   */
  arm?(packet?: Buffer, ackBlock?: number): void;
  /**
   * Lock-step data phase on a worker thread (native socket only, server/native/src/lockstep.c):
   * the thread owns the socket's receive side from now on, reads blocks from `job.fileFd` with
   * pread and reports through `onEvent` (every few thousand blocks, for a non-ACK datagram and
   * at the end, never per block). false: not started (thread cap reached, or it failed), the
   * caller keeps the event-loop path and nothing changed.
   */
  lockstep?(job: LockstepJob, onEvent: LockstepListener): boolean;
  /** Stops and joins the thread; its final counters (undefined when none runs). */
  stopLockstep?(): LockstepCounters | undefined;
}

/** What the lock-step thread needs (see TftpSession for the retransmit rules it follows). */
export interface LockstepJob {
  fileFd: number;
  size: number;
  blksize: number;
  /** Blocks already acknowledged. */
  acked: number;
  baseTimeoutMs: number;
  minRetransmitMs: number;
  /** Smoothed RTT so far; undefined = none. */
  srttMs: number | undefined;
  maxRetries: number;
  /** Refuse when this many lock-step threads already run in the process. */
  maxThreads: number;
}

export interface LockstepCounters {
  acked: number;
  dataPackets: number;
  bytesSent: number;
  retransmits: number;
}

/** Event kinds of lockstep.h. */
export const LockstepEvent = {
  progress: 0,
  /** A non-ACK, non-ERROR datagram (attached); the transfer goes on. */
  packet: 1,
  ok: 2,
  timeout: 3,
  unreachable: 4,
  /** The client's ERROR (attached). */
  clientError: 5,
  /** errno attached. */
  readError: 6,
  /** errno attached; the transfer goes on. */
  socketError: 7,
  /** The socket kept failing (errno attached): the transfer ends. */
  failed: 9,
} as const;

export type LockstepListener = (kind: number, counters: LockstepCounters, detail?: Buffer | number) => void;

export interface TransferSocketHandlers {
  /**
   * An ACK (4 bytes, or longer: trailing bytes are ignored) for this wire block number (the
   * per-block path: no Buffer needed). `armed`: the armed packet went out for it ("sent"), or
   * sending it failed ("failed": count it as lost).
   */
  onAck(wireBlock: number, armed?: "sent" | "failed"): void;
  /** Any other datagram from the peer. */
  onPacket(packet: Buffer): void;
  /** ICMP port unreachable: the client is gone. */
  onUnreachable(): void;
  /** There is room again after `send` returned false. */
  onWritable(): void;
}

/** Socket errors other than "peer unreachable" (logged by the owner; the socket stays open). */
export type TransferSocketErrorListener = (err: Error) => void;

/** Adapts a bound, `connect()`ed dgram socket. */
export function dgramTransferSocket(socket: Socket, onOtherError: TransferSocketErrorListener): TransferSocket {
  let handlers: TransferSocketHandlers | undefined;
  let closed = false;
  socket.on("message", (msg: Buffer) => {
    if (!handlers) return;
    if (msg.length >= 4 && msg[0] === 0 && msg[1] === Opcode.ACK) handlers.onAck((msg[2] << 8) | msg[3]);
    else handlers.onPacket(msg);
  });
  socket.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "ECONNREFUSED") handlers?.onUnreachable();
    else onOtherError(err);
  });
  return {
    // No callback: a send the kernel takes at once completes synchronously, with no request
    // object or callback tick. Errors that matter (client gone) come back as ICMP -> 'error'.
    send(packet) {
      socket.send(packet);
      return true;
    },
    listen(next) {
      handlers = next;
    },
    close() {
      handlers = undefined;
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise((resolve) => {
        try {
          socket.close(() => resolve());
        } catch {
          resolve(); // never bound, or already closed
        }
      });
    },
  };
}

/** File name node-gyp gives the addon (target_name in server/native/binding.gyp). */
export const UDP_ADDON_FILE = "metalman_udp.node";

/** The native socket of udp_socket.c (see its header comment for the exact contract). */
interface NativeUdpSocket {
  /** 0 sent, -1 EAGAIN (onWritable follows), > 0 errno. */
  send(data: Uint8Array): number;
  close(): void;
  /** Absent in builds before the lock-step fast path. */
  arm?(packet?: Buffer, ackBlock?: number): void;
  /** Absent in builds before the lock-step thread; 0 started, else an errno (11: thread cap). */
  lockstep?(
    fileFd: number,
    size: number,
    blksize: number,
    acked: number,
    baseTimeoutMs: number,
    minRetransmitMs: number,
    srttMs: number,
    maxRetries: number,
    maxThreads: number,
    onEvent: (
      kind: number,
      acked: number,
      dataPackets: number,
      bytesSent: number,
      retransmits: number,
      detail?: Buffer | number,
    ) => void,
  ): number;
  stopLockstep?(): [number, number, number, number] | undefined;
  readonly port: number;
}

export interface UdpAddon {
  UdpSocket: new (
    localAddress: string,
    localPort: number,
    peerAddress: string,
    peerPort: number,
    onDatagram: (ackBlock: number, packet?: Buffer | number) => void,
    onError: (err: NodeJS.ErrnoException) => void,
    onWritable: () => void,
  ) => NativeUdpSocket;
}

/** The addon, or undefined when it is not built or does not load: transfers then use dgram. */
export function loadUdpAddon(addonPath?: string): UdpAddon | undefined {
  if (process.platform !== "linux") return undefined;
  const loaded = loadAddon<UdpAddon>(UDP_ADDON_FILE, "UdpSocket", addonPath);
  return loaded.ok ? loaded.addon : undefined;
}

const ECONNREFUSED = 111; // Linux errno; the addon exists only on Linux

export interface NativeTransferSocketParams {
  addon: UdpAddon;
  /** IPv4 literal and port to bind (SO_REUSEADDR: the transfer's unconnected socket shares it). */
  localAddress: string;
  localPort: number;
  peerAddress: string;
  peerPort: number;
  onOtherError: TransferSocketErrorListener;
}

/** Opens the native socket, bound and connected. Throws (with `code`) when bind/connect fail. */
export function nativeTransferSocket(p: NativeTransferSocketParams): TransferSocket {
  let handlers: TransferSocketHandlers | undefined;
  const socket = new p.addon.UdpSocket(
    p.localAddress,
    p.localPort,
    p.peerAddress,
    p.peerPort,
    (ackBlock, packet) => {
      if (!handlers) return;
      if (ackBlock >= 0) handlers.onAck(ackBlock, packet === 1 ? "sent" : packet === 2 ? "failed" : undefined);
      else if (packet instanceof Buffer) handlers.onPacket(packet);
    },
    (err) => {
      if (err.code === "ECONNREFUSED") handlers?.onUnreachable();
      else p.onOtherError(err);
    },
    () => handlers?.onWritable(),
  );
  let closed = false;
  const arm = socket.arm ? (packet?: Buffer, ackBlock?: number) => socket.arm?.(packet, ackBlock) : undefined;
  const lockstep = socket.lockstep
    ? (job: LockstepJob, onEvent: LockstepListener): boolean =>
        socket.lockstep?.(
          job.fileFd,
          job.size,
          job.blksize,
          job.acked,
          job.baseTimeoutMs,
          job.minRetransmitMs,
          job.srttMs ?? -1,
          job.maxRetries,
          job.maxThreads,
          (kind, acked, dataPackets, bytesSent, retransmits, detail) => {
            if (closed) return;
            // Logged like the event-loop path's receive errors (ICMP other than port unreachable).
            if (kind === LockstepEvent.socketError)
              p.onOtherError(
                Object.assign(new Error(`recv failed: errno ${detail}`), { errno: -Number(detail), syscall: "recv" }),
              );
            onEvent(kind, { acked, dataPackets, bytesSent, retransmits }, detail);
          },
        ) === 0
    : undefined;
  const stopLockstep = (): LockstepCounters | undefined => {
    const c = closed ? undefined : socket.stopLockstep?.();
    return c && { acked: c[0], dataPackets: c[1], bytesSent: c[2], retransmits: c[3] };
  };
  return {
    ...(arm && { arm }),
    ...(lockstep && { lockstep, stopLockstep }),
    send(packet) {
      const status = socket.send(packet);
      if (status === 0) return true;
      if (status === -1) return false;
      // Like dgram: a failed send is a lost datagram (the retransmit timer covers it); only
      // "client gone" ends the transfer, reported outside the caller's send loop.
      if (status === ECONNREFUSED) queueMicrotask(() => handlers?.onUnreachable());
      else
        p.onOtherError(Object.assign(new Error(`send failed: errno ${status}`), { errno: -status, syscall: "send" }));
      return true;
    },
    listen(next) {
      handlers = next;
    },
    close() {
      handlers = undefined;
      if (!closed) {
        closed = true;
        socket.close();
      }
      return Promise.resolve();
    },
  };
}
