import type { RemoteInfo, Socket } from "node:dgram";
import type { NegotiatedTransfer } from "./negotiate.js";
import { decode, encode, Opcode, TftpErrorCode, type TftpPacket } from "./packets.js";
import type { BlockSource } from "./source.js";
import type { TransferSocket, TransferSocketHandlers } from "./transfer-socket.js";

export interface TftpPeer {
  address: string;
  port: number;
}

export interface TftpSessionParams {
  /**
   * This transfer's socket (dgram or native, see transfer-socket.ts), bound (its port is the
   * server TID) and `connect()`ed to the peer: the kernel then delivers only the peer's
   * datagrams to it and sends need no address. The caller closes it.
   */
  socket: TransferSocket;
  /**
   * Optional unconnected socket sharing `socket`'s port (SO_REUSEADDR): the kernel prefers the
   * connected socket for the peer's datagrams, so this one receives only those from other
   * TIDs, which get ERROR 5 (RFC 1350). The caller closes it.
   */
  strangers?: Socket;
  peer: TftpPeer;
  source: BlockSource;
  negotiated: NegotiatedTransfer;
  /** First retransmit timeout when the client negotiated none. Default 1000 ms. */
  defaultTimeoutMs?: number;
  /** Retransmissions of one window before giving up. Default 5. */
  maxRetries?: number;
  /** A datagram on this socket that is not a TFTP packet (counted by the owner). */
  onMalformed?: (from: RemoteInfo, error: unknown) => void;
  /** A datagram from another address/port (answered with ERROR 5 here; reported for metrics). */
  onWrongTid?: (from: RemoteInfo) => void;
}

export type TftpSessionResult =
  | "ok"
  /** The client sent ERROR: normal after a tsize probe (UEFI/OVMF asks the size, then aborts). */
  | "aborted-by-client"
  /** No progress after all retransmissions. */
  | "timeout"
  /** The server stopped the transfer (shutdown). */
  | "aborted"
  /** Reading the source failed. */
  | "error";

export interface TftpSessionOutcome {
  result: TftpSessionResult;
  /** Human-readable detail for non-ok results (the client's ERROR text, the read error...). */
  message?: string;
  /** Client's ERROR code for `aborted-by-client`. */
  clientErrorCode?: number;
  /** Where the transfer ended: `negotiation` = before the client acknowledged the OACK (e.g. a tsize probe). */
  endedIn: "negotiation" | "data";
  /** Payload bytes the client acknowledged. */
  bytesAcked: number;
  /** Payload bytes put on the wire, retransmissions included. */
  bytesSent: number;
  /** DATA packets sent more than once. */
  retransmits: number;
  blksize: number;
  windowsize: number;
}

const BLOCK_MOD = 0x10000;
/** Back-off never waits longer than this between two retransmissions (unless the client asked for more). */
const MAX_BACKOFF_MS = 30_000;

/**
 * One read transfer (RFC 1350 with RFC 2347/2348/2349/7440 options) from OACK/first DATA to the
 * last ACK. Blocks are numbered absolutely inside the session (1, 2, ... past 65535) and put on
 * the wire modulo 65536, so block numbers roll over to 0 like tftp-hpa and RFC 7440 senders do.
 *
 * Windowing (RFC 7440): up to `windowsize` blocks after the last acknowledged one are in flight.
 * An ACK for block n means "I have everything up to n": the window restarts at n+1 (this also
 * recovers a gap the client reported by ACKing the last in-order block). An ACK that does not
 * move the window forward (duplicate or stale) is ignored: answering it would resend the window
 * once per duplicate, the Sorcerer's Apprentice bug of RFC 1350.
 */
export class TftpSession {
  readonly #p: TftpSessionParams;
  readonly #socket: TransferSocket;
  readonly #blksize: number;
  readonly #windowsize: number;
  readonly #lastBlock: number;
  readonly #baseTimeoutMs: number;
  readonly #maxRetries: number;
  /**
   * One encoded DATA packet per window slot (block b lives in slot b % windowsize), reused for
   * the whole transfer: no allocation per block. A slot is rewritten only once its block is
   * acknowledged, i.e. delivered; the rewrite is synchronous, so even a send the kernel queued
   * (EAGAIN) carries one whole, self-consistent packet.
   */
  readonly #packets: Buffer[];
  /** Absolute block number each slot holds (0 = none yet): a retransmission reuses the bytes. */
  readonly #packetBlocks: number[];

  #phase: "oack" | "data" | "done" = "data";
  /** Highest block the client acknowledged (0 = none / the OACK). */
  #acked = 0;
  /** Next block to put on the wire. */
  #next = 1;
  #highestSent = 0;
  #retries = 0;
  #timeoutMs: number;
  #timer: NodeJS.Timeout | undefined;
  #armedMs = 0;
  /** A disk read for #next is in flight; #sendWindow resumes when it lands. */
  #waitingForDisk = false;
  /** The socket's send buffer was full; #sendWindow resumes on onWritable. */
  #waitingForRoom = false;
  #bytesSent = 0;
  #retransmits = 0;
  #settle: ((outcome: TftpSessionOutcome) => void) | undefined;
  readonly #done: Promise<TftpSessionOutcome>;
  readonly #handlers: TransferSocketHandlers = {
    onAck: (wireBlock) => {
      if (this.#phase !== "done") this.#onAck(wireBlock);
    },
    onPacket: (msg) => this.#receive(msg, undefined),
    // ICMP port unreachable on the connected socket: the client is gone, retransmitting is pointless.
    onUnreachable: () => this.#finish("aborted-by-client", "client port unreachable"),
    onWritable: () => {
      this.#waitingForRoom = false;
      this.#sendWindow();
    },
  };
  readonly #onStranger = (msg: Buffer, from: RemoteInfo): void => this.#stranger(msg, from);

  constructor(params: TftpSessionParams) {
    this.#p = params;
    this.#socket = params.socket;
    this.#blksize = params.negotiated.blksize;
    this.#windowsize = params.negotiated.windowsize;
    // A transfer always ends with a short block, possibly empty (size = k·blksize needs an empty one).
    this.#lastBlock = Math.floor(params.source.size / this.#blksize) + 1;
    const negotiatedTimeout = params.negotiated.timeoutSeconds;
    this.#baseTimeoutMs =
      negotiatedTimeout !== undefined ? negotiatedTimeout * 1000 : (params.defaultTimeoutMs ?? 1000);
    this.#timeoutMs = this.#baseTimeoutMs;
    this.#maxRetries = params.maxRetries ?? 5;
    const slots = Math.min(this.#windowsize, this.#lastBlock);
    const packetBytes = 4 + Math.min(this.#blksize, params.source.size);
    this.#packets = Array.from({ length: slots }, () => Buffer.allocUnsafe(packetBytes));
    this.#packetBlocks = new Array<number>(slots).fill(0);
    this.#done = new Promise((resolve) => {
      this.#settle = resolve;
    });
  }

  /** Starts the transfer; resolves once it is over (never rejects). */
  run(): Promise<TftpSessionOutcome> {
    this.#socket.listen(this.#handlers);
    this.#p.strangers?.on("message", this.#onStranger);
    this.#arm();
    if (this.#p.negotiated.oack.length > 0) {
      this.#phase = "oack";
      this.#sendOack();
    } else {
      this.#sendWindow();
    }
    return this.#done;
  }

  /** Stops the transfer (server shutdown): the client gets an ERROR so it does not wait for timeouts. */
  abort(reason: string): void {
    if (this.#phase === "done") return;
    this.#sendError(TftpErrorCode.notDefined, reason);
    this.#finish("aborted", reason);
  }

  /** false: the kernel's send buffer is full, nothing was sent (OACK/ERROR: the timer resends or it is best effort). */
  #send(packet: Buffer): boolean {
    return this.#socket.send(packet);
  }

  #sendOack(): void {
    this.#send(encode({ opcode: Opcode.OACK, options: this.#p.negotiated.oack }));
  }

  #sendError(code: number, message: string): void {
    this.#send(encode({ opcode: Opcode.ERROR, code, message }));
  }

  #arm(): void {
    // Re-armed on every ACK: refreshing the existing timer is much cheaper than a new one.
    if (this.#timer && this.#armedMs === this.#timeoutMs) {
      this.#timer.refresh();
      return;
    }
    clearTimeout(this.#timer);
    this.#armedMs = this.#timeoutMs;
    this.#timer = setTimeout(() => this.#onTimeout(), this.#timeoutMs);
  }

  #onTimeout(): void {
    if (this.#phase === "done") return;
    this.#retries++;
    if (this.#retries > this.#maxRetries) {
      this.#sendError(TftpErrorCode.notDefined, "timeout: no acknowledgement from the client");
      this.#finish("timeout", `no ACK after ${this.#maxRetries} retransmissions`);
      return;
    }
    this.#timeoutMs = Math.min(this.#timeoutMs * 2, Math.max(this.#baseTimeoutMs, MAX_BACKOFF_MS));
    this.#arm();
    if (this.#phase === "oack") {
      this.#sendOack();
    } else {
      // Go-back-N: resend everything after the last acknowledged block.
      this.#next = this.#acked + 1;
      this.#sendWindow();
    }
  }

  #progress(): void {
    if (this.#retries !== 0) {
      this.#retries = 0;
      this.#timeoutMs = this.#baseTimeoutMs;
    }
    this.#arm();
  }

  /** A datagram on the shared port from someone else than the peer (see `strangers`). */
  #stranger(msg: Buffer, from: RemoteInfo): void {
    if (this.#phase === "done") return;
    if (from.port === this.#p.peer.port && from.address === this.#p.peer.address) {
      this.#receive(msg, from); // cannot happen once connected; never turn the peer away
      return;
    }
    // RFC 1350: a packet from a foreign TID gets ERROR 5 and must not disturb the transfer.
    this.#p.strangers?.send(
      encode({ opcode: Opcode.ERROR, code: TftpErrorCode.unknownTransferId, message: "unknown transfer ID" }),
      from.port,
      from.address,
    );
    this.#p.onWrongTid?.(from);
  }

  #receive(msg: Buffer, from: RemoteInfo | undefined): void {
    if (this.#phase === "done") return;
    // Fast path, once per block: a well-formed ACK, read in place.
    if (msg.length === 4 && msg[0] === 0 && msg[1] === Opcode.ACK) {
      this.#onAck((msg[2] << 8) | msg[3]);
      return;
    }
    let packet: TftpPacket;
    try {
      packet = decode(msg);
    } catch (err) {
      this.#p.onMalformed?.(from ?? this.#peerInfo(msg.length), err);
      return;
    }
    if (packet.opcode === Opcode.ERROR) {
      this.#finish("aborted-by-client", packet.message, packet.code);
      return;
    }
    // Anything else from the client (a repeated RRQ, stray DATA) is ignored: the transfer goes on.
  }

  #peerInfo(size: number): RemoteInfo {
    const { address, port } = this.#p.peer;
    return { address, port, size, family: address.includes(":") ? "IPv6" : "IPv4" };
  }

  #onAck(wireBlock: number): void {
    if (this.#phase === "oack") {
      if (wireBlock !== 0) return;
      this.#phase = "data";
      this.#progress();
      this.#sendWindow();
      return;
    }
    const ahead = (wireBlock - (this.#acked % BLOCK_MOD) + BLOCK_MOD) % BLOCK_MOD;
    const block = this.#acked + ahead;
    // ahead 0: duplicate; beyond what we sent: stale ACK from before a wrap, or bogus.
    if (ahead === 0 || block > this.#highestSent) return;
    this.#acked = block;
    if (block >= this.#lastBlock) {
      this.#finish("ok");
      return;
    }
    // Normally #next already; after a gap the client ACKs the last in-order block: resend from there.
    this.#next = block + 1;
    this.#progress();
    this.#sendWindow();
  }

  /**
   * Sends blocks from #next up to the window's end, synchronously while the bytes are in memory
   * (the usual case: the source reads ahead). A block not loaded yet parks the window until the
   * read lands; ACKs meanwhile only move the counters.
   */
  #sendWindow(): void {
    if (this.#waitingForDisk || this.#waitingForRoom || this.#phase !== "data") return;
    try {
      const end = Math.min(this.#acked + this.#windowsize, this.#lastBlock);
      while (this.#next <= end && this.#phase === "data") {
        const block = this.#next;
        const slot = block % this.#packets.length;
        let packet = this.#packets[slot];
        const offset = (block - 1) * this.#blksize;
        const length = Math.min(this.#blksize, this.#p.source.size - offset);
        if (this.#packetBlocks[slot] !== block) {
          if (!this.#p.source.copy(offset, length, packet, 4)) {
            this.#waitForDisk(offset, length);
            return;
          }
          const wire = block % BLOCK_MOD;
          packet[0] = 0;
          packet[1] = Opcode.DATA;
          packet[2] = wire >> 8;
          packet[3] = wire & 0xff;
          this.#packetBlocks[slot] = block;
        }
        if (length + 4 < packet.length) packet = packet.subarray(0, length + 4); // the last block
        if (!this.#send(packet)) {
          // Not sent: resume from this block once the socket drains (#next still points at it).
          this.#waitingForRoom = true;
          return;
        }
        this.#bytesSent += length;
        if (block <= this.#highestSent) this.#retransmits++;
        else this.#highestSent = block;
        this.#next = block + 1;
      }
    } catch (err) {
      this.#readFailed(err);
    }
  }

  #waitForDisk(offset: number, length: number): void {
    this.#waitingForDisk = true;
    this.#p.source.fill(offset, length).then(
      () => {
        this.#waitingForDisk = false;
        this.#sendWindow(); // re-evaluates: ACKs or a timeout may have moved things meanwhile
      },
      (err: unknown) => {
        this.#waitingForDisk = false;
        this.#readFailed(err);
      },
    );
  }

  #readFailed(err: unknown): void {
    if (this.#phase === "done") return;
    this.#sendError(TftpErrorCode.notDefined, "read error");
    this.#finish("error", err instanceof Error ? err.message : String(err));
  }

  #finish(result: TftpSessionResult, message?: string, clientErrorCode?: number): void {
    if (this.#phase === "done") return;
    const endedIn = this.#phase === "oack" ? "negotiation" : "data";
    this.#phase = "done";
    clearTimeout(this.#timer);
    this.#socket.listen(undefined);
    this.#p.strangers?.off("message", this.#onStranger);
    const bytesAcked = Math.min(this.#acked * this.#blksize, this.#p.source.size);
    this.#settle?.({
      result,
      message,
      clientErrorCode,
      endedIn,
      bytesAcked,
      bytesSent: this.#bytesSent,
      retransmits: this.#retransmits,
      blksize: this.#blksize,
      windowsize: this.#windowsize,
    });
  }
}
