import type { RemoteInfo, Socket } from "node:dgram";
import type { NegotiatedTransfer } from "./negotiate.js";
import { decode, encode, encodeData, Opcode, TftpErrorCode, type TftpPacket } from "./packets.js";
import type { BlockSource } from "./source.js";

export interface TftpPeer {
  address: string;
  port: number;
}

export interface TftpSessionParams {
  /** Bound, unconnected socket used by this transfer only (its port is the server TID). The caller closes it. */
  socket: Socket;
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
  readonly #blksize: number;
  readonly #windowsize: number;
  readonly #lastBlock: number;
  readonly #baseTimeoutMs: number;
  readonly #maxRetries: number;

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
  #pumping = false;
  #bytesSent = 0;
  #retransmits = 0;
  #settle: ((outcome: TftpSessionOutcome) => void) | undefined;
  readonly #done: Promise<TftpSessionOutcome>;
  readonly #onMessage = (msg: Buffer, from: RemoteInfo) => this.#receive(msg, from);
  readonly #onSent = (): void => {};

  constructor(params: TftpSessionParams) {
    this.#p = params;
    this.#blksize = params.negotiated.blksize;
    this.#windowsize = params.negotiated.windowsize;
    // A transfer always ends with a short block, possibly empty (size = k·blksize needs an empty one).
    this.#lastBlock = Math.floor(params.source.size / this.#blksize) + 1;
    const negotiatedTimeout = params.negotiated.timeoutSeconds;
    this.#baseTimeoutMs =
      negotiatedTimeout !== undefined ? negotiatedTimeout * 1000 : (params.defaultTimeoutMs ?? 1000);
    this.#timeoutMs = this.#baseTimeoutMs;
    this.#maxRetries = params.maxRetries ?? 5;
    this.#done = new Promise((resolve) => {
      this.#settle = resolve;
    });
  }

  /** Starts the transfer; resolves once it is over (never rejects). */
  run(): Promise<TftpSessionOutcome> {
    this.#p.socket.on("message", this.#onMessage);
    if (this.#p.negotiated.oack.length > 0) {
      this.#phase = "oack";
      this.#sendOack();
      this.#arm();
    } else {
      this.#arm();
      void this.#pump();
    }
    return this.#done;
  }

  /** Stops the transfer (server shutdown): the client gets an ERROR so it does not wait for timeouts. */
  abort(reason: string): void {
    if (this.#phase === "done") return;
    this.#sendError(TftpErrorCode.notDefined, reason);
    this.#finish("aborted", reason);
  }

  #send(packet: Buffer): void {
    this.#p.socket.send(packet, this.#p.peer.port, this.#p.peer.address, this.#onSent);
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
      void this.#pump();
    }
  }

  #progress(): void {
    this.#retries = 0;
    this.#timeoutMs = this.#baseTimeoutMs;
    this.#arm();
  }

  #receive(msg: Buffer, from: RemoteInfo): void {
    if (this.#phase === "done") return;
    if (from.port !== this.#p.peer.port || from.address !== this.#p.peer.address) {
      // RFC 1350: a packet from a foreign TID gets ERROR 5 and must not disturb the transfer.
      this.#p.socket.send(
        encode({ opcode: Opcode.ERROR, code: TftpErrorCode.unknownTransferId, message: "unknown transfer ID" }),
        from.port,
        from.address,
        this.#onSent,
      );
      this.#p.onWrongTid?.(from);
      return;
    }
    let packet: TftpPacket;
    try {
      packet = decode(msg);
    } catch (err) {
      this.#p.onMalformed?.(from, err);
      return;
    }
    if (packet.opcode === Opcode.ERROR) {
      this.#finish("aborted-by-client", packet.message, packet.code);
      return;
    }
    // Anything but ACK from the client (a repeated RRQ, stray DATA) is ignored: the transfer goes on.
    if (packet.opcode !== Opcode.ACK) return;
    if (this.#phase === "oack") {
      if (packet.block !== 0) return;
      this.#phase = "data";
      this.#progress();
      void this.#pump();
      return;
    }
    const ahead = (packet.block - (this.#acked % BLOCK_MOD) + BLOCK_MOD) % BLOCK_MOD;
    const block = this.#acked + ahead;
    // ahead 0: duplicate; beyond what we sent: stale ACK from before a wrap, or bogus.
    if (ahead === 0 || block > this.#highestSent) return;
    this.#acked = block;
    if (block >= this.#lastBlock) {
      this.#finish("ok");
      return;
    }
    this.#next = block + 1;
    this.#progress();
    void this.#pump();
  }

  /** Sends blocks from #next up to the window's end; loops again if an ACK moved things while it awaited the disk. */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#phase === "data" && this.#next <= Math.min(this.#acked + this.#windowsize, this.#lastBlock)) {
        const block = this.#next;
        const offset = (block - 1) * this.#blksize;
        const length = Math.min(this.#blksize, this.#p.source.size - offset);
        const data = this.#p.source.peek(offset, length);
        if (data === undefined) {
          await this.#p.source.fill(offset, length);
          continue; // state may have changed while waiting; re-evaluate
        }
        this.#send(encodeData(block % BLOCK_MOD, data));
        this.#bytesSent += length;
        if (block <= this.#highestSent) this.#retransmits++;
        else this.#highestSent = block;
        this.#next = block + 1;
      }
    } catch (err) {
      if (this.#phase !== "done") {
        this.#sendError(TftpErrorCode.notDefined, "read error");
        this.#finish("error", err instanceof Error ? err.message : String(err));
      }
    } finally {
      this.#pumping = false;
    }
  }

  #finish(result: TftpSessionResult, message?: string, clientErrorCode?: number): void {
    if (this.#phase === "done") return;
    const endedIn = this.#phase === "oack" ? "negotiation" : "data";
    this.#phase = "done";
    clearTimeout(this.#timer);
    this.#p.socket.off("message", this.#onMessage);
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
