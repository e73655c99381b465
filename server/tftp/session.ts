import type { RemoteInfo, Socket } from "node:dgram";
import type { NegotiatedTransfer } from "./negotiate.js";
import { decode, encode, Opcode, TftpErrorCode, type TftpPacket } from "./packets.js";
import type { BlockSource } from "./source.js";
import {
  type LockstepCounters,
  LockstepEvent,
  type TransferSocket,
  type TransferSocketHandlers,
} from "./transfer-socket.js";

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
  /** Retransmissions at the full timeout before giving up (fast probes before them are not counted). Default 5. */
  maxRetries?: number;
  /**
   * Shortest retransmit interval (ms): a stalled window is first probed after about four round
   * trips, never sooner than this, then the interval doubles up to the full timeout. Default 50.
   */
  minRetransmitMs?: number;
  /**
   * Lock-step data phase on a worker thread (TransferSocket.lockstep, server/native/src/lockstep.c)
   * when the socket offers it and the source is a file: at most this many such threads in the
   * process, beyond that the event-loop path. 0 (default): always the event-loop path.
   */
  lockstepThreads?: number;
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

/** How #sendWindow treats blocks already sent once (see there). */
type SendMode = "new" | "restart" | "force";

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
  /** DATA packets put on the wire, retransmissions included. */
  dataPackets: number;
  blksize: number;
  windowsize: number;
  /** The data phase ran on a lock-step thread (see `lockstepThreads`). */
  lockstepThread: boolean;
}

const BLOCK_MOD = 0x10000;
const MIN_RETRANSMIT_MS_DEFAULT = 50;
/** Weight of a new round-trip sample in the smoothed estimate (TCP's 1/8). */
const RTT_GAIN = 1 / 8;

/**
 * One read transfer (RFC 1350 with RFC 2347/2348/2349/7440 options) from OACK/first DATA to the
 * last ACK. Blocks are numbered absolutely inside the session (1, 2, ... past 65535) and put on
 * the wire modulo 65536, so block numbers roll over to 0 like tftp-hpa and RFC 7440 senders do.
 *
 * Windowing (RFC 7440): the window is [acked+1, acked+windowsize] and moves with every ACK.
 * Loss recovery (RFC 7440 §4, docs/tftp.md): an ACK for n means "I have everything up to n";
 * when blocks after n are outstanding, the client either reports a gap at n+1 (EDK2's
 * Mtftp4RrqHandleData ACKs the last in-order block for *every* out-of-order block, so one loss
 * brings up to windowsize-1 such ACKs, most of them repeating the last acknowledged block) or has
 * simply not seen them yet. So the window restarts from n+1 at once, but:
 * - at most once per window round trip (smoothed RTT): the other ACKs of the same burst are
 *   echoes of one loss, not new losses;
 * - never resending a block sent less than a (minimum) round trip ago: the client cannot have
 *   missed what has not had time to reach it;
 * - an ACK repeating n shortly after blocks <= n were resent is an echo of those duplicates.
 * A window nobody answers is probed after about four round trips (>= minRetransmitMs), doubling
 * up to the full timeout; only full timeouts count towards maxRetries. The old rule (ignore an
 * ACK that does not move the window) stalled a whole timeout when the first block of a window
 * was lost, and resending every outstanding block on each ACK turned one loss into a cascade.
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
  /** When each slot's block was last put on the wire (performance.now()). */
  readonly #sentAt: Float64Array;
  /** How often each slot's block was sent (saturates at 255): 1 = a clean RTT sample (Karn). */
  readonly #sendCount: Uint8Array;
  readonly #minRetransmitMs: number;
  /** Smoothed and minimum round trip (ms); undefined until the first sample. */
  #srtt: number | undefined;
  #minRtt = Number.POSITIVE_INFINITY;
  #oackSentAt = 0;
  #oackSends = 0;
  /** Last time blocks were resent after an out-of-order ACK or a timeout. */
  #lastRestartAt = Number.NEGATIVE_INFINITY;
  /** Highest block sent when the window last restarted, and the range it resent. */
  #lastRestartTop = 0;
  #lastRestartFrom = 0;
  #lastRestartResentTop = 0;
  /**
   * A restart burst that resent blocks the client turned out to have: it answers each such
   * duplicate (EDK2 ACKs every one), and those echoes carry no news about the blocks sent in or
   * after the burst. So for the next #echoes ACKs of a level up to #echoTop (what the burst
   * covered), until #echoUntil (for clients that do not echo), only blocks sent before
   * #echoBurst are resent.
   */
  #echoBurst = Number.NEGATIVE_INFINITY;
  #echoTop = 0;
  #echoes = 0;
  #echoUntil = Number.NEGATIVE_INFINITY;
  /** Current retransmit interval. */
  #rtoMs: number;
  #dataPackets = 0;
  /** Lock-step with TransferSocket.arm: the next block is armed after each send. */
  readonly #armable: boolean;
  /** The block currently armed on the socket (0 = none). */
  #armedBlock = 0;
  /** A lock-step thread runs the data phase (it owns the timer and the socket's receive side). */
  #thread = false;
  #usedThread = false;

  #phase: "oack" | "data" | "done" = "data";
  /** Highest block the client acknowledged (0 = none / the OACK). */
  #acked = 0;
  /** Next block to put on the wire. */
  #next = 1;
  #highestSent = 0;
  #retries = 0;
  #timer: NodeJS.Timeout | undefined;
  #armedMs = 0;
  /** A disk read for #next is in flight; #sendWindow resumes when it lands. */
  #waitingForDisk = false;
  /** The socket's send buffer was full; #sendWindow resumes on onWritable. */
  #waitingForRoom = false;
  /** How a parked #sendWindow resumes (a refused retransmission must stay one). */
  #resumeMode: SendMode = "new";
  #bytesSent = 0;
  #retransmits = 0;
  #settle: ((outcome: TftpSessionOutcome) => void) | undefined;
  readonly #done: Promise<TftpSessionOutcome>;
  readonly #handlers: TransferSocketHandlers = {
    onAck: (wireBlock, armed) => {
      if (this.#phase !== "done") this.#onAck(wireBlock, armed);
    },
    onPacket: (msg) => this.#receive(msg, undefined),
    // ICMP port unreachable on the connected socket: the client is gone, retransmitting is pointless.
    onUnreachable: () => this.#finish("aborted-by-client", "client port unreachable"),
    onWritable: () => {
      this.#waitingForRoom = false;
      this.#sendWindow(this.#resumeMode);
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
    this.#maxRetries = params.maxRetries ?? 5;
    this.#minRetransmitMs = params.minRetransmitMs ?? MIN_RETRANSMIT_MS_DEFAULT;
    this.#rtoMs = this.#baseTimeoutMs;
    // Lock-step on a socket that can send the next block itself (see #armNext) needs the next
    // block's packet ready while the current one may still be resent: two slots.
    this.#armable = this.#windowsize === 1 && params.socket.arm !== undefined;
    const slots = Math.min(this.#armable ? 2 : this.#windowsize, this.#lastBlock);
    const packetBytes = 4 + Math.min(this.#blksize, params.source.size);
    this.#packets = Array.from({ length: slots }, () => Buffer.allocUnsafe(packetBytes));
    this.#packetBlocks = new Array<number>(slots).fill(0);
    this.#sentAt = new Float64Array(slots);
    this.#sendCount = new Uint8Array(slots);
    this.#done = new Promise((resolve) => {
      this.#settle = resolve;
    });
  }

  /** Starts the transfer; resolves once it is over (never rejects). */
  run(): Promise<TftpSessionOutcome> {
    this.#socket.listen(this.#handlers);
    this.#p.strangers?.on("message", this.#onStranger);
    this.#arm(this.#rtoMs);
    if (this.#p.negotiated.oack.length > 0) {
      this.#phase = "oack";
      this.#sendOack();
    } else {
      this.#startData();
    }
    return this.#done;
  }

  /** Stops the transfer (server shutdown): the client gets an ERROR so it does not wait for timeouts. */
  abort(reason: string): void {
    if (this.#phase === "done") return;
    this.#stopThread(); // no DATA after the ERROR
    this.#sendError(TftpErrorCode.notDefined, reason);
    this.#finish("aborted", reason);
  }

  /** false: the kernel's send buffer is full, nothing was sent (OACK/ERROR: the timer resends or it is best effort). */
  #send(packet: Buffer): boolean {
    return this.#socket.send(packet);
  }

  #sendOack(): void {
    this.#oackSentAt = performance.now();
    this.#oackSends++;
    this.#send(encode({ opcode: Opcode.OACK, options: this.#p.negotiated.oack }));
  }

  #sendError(code: number, message: string): void {
    this.#send(encode({ opcode: Opcode.ERROR, code, message }));
  }

  #arm(ms: number): void {
    // Re-armed on every ACK: refreshing the existing timer is much cheaper than a new one.
    if (this.#timer && this.#armedMs === ms) {
      this.#timer.refresh();
      return;
    }
    clearTimeout(this.#timer);
    this.#armedMs = ms;
    this.#timer = setTimeout(() => this.#onTimeout(), ms);
  }

  /** First retransmit interval: ~4 round trips, rounded up to a power of two (so the timer is usually refreshed, not replaced). */
  #firstRto(): number {
    if (this.#srtt === undefined) return this.#baseTimeoutMs;
    let ms = this.#minRetransmitMs;
    while (ms < 4 * this.#srtt && ms < this.#baseTimeoutMs) ms *= 2;
    return Math.min(ms, this.#baseTimeoutMs);
  }

  #onTimeout(): void {
    if (this.#phase === "done") return;
    if (this.#rtoMs < this.#baseTimeoutMs) {
      // A fast probe: the client or the network lost the tail of a window (or its ACK).
      this.#rtoMs = Math.min(this.#rtoMs * 2, this.#baseTimeoutMs);
    } else {
      this.#retries++;
      if (this.#retries > this.#maxRetries) {
        this.#sendError(TftpErrorCode.notDefined, "timeout: no acknowledgement from the client");
        this.#finish("timeout", `no ACK after ${this.#maxRetries} retransmissions`);
        return;
      }
    }
    this.#arm(this.#rtoMs);
    if (this.#phase === "oack") {
      this.#sendOack();
    } else {
      // Go-back-N: resend everything after the last acknowledged block.
      this.#next = this.#acked + 1;
      this.#sendWindow("force");
    }
  }

  #progress(): void {
    this.#retries = 0;
    this.#rtoMs = this.#firstRto();
    this.#arm(this.#rtoMs);
  }

  #rttSample(ms: number): void {
    if (ms < this.#minRtt) this.#minRtt = ms;
    this.#srtt = this.#srtt === undefined ? ms : this.#srtt + RTT_GAIN * (ms - this.#srtt);
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
    // Fast path, once per block: an ACK, read in place (trailing bytes ignored, as tftpd-hpa does).
    if (msg.length >= 4 && msg[0] === 0 && msg[1] === Opcode.ACK) {
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

  #onAck(wireBlock: number, armed?: "sent" | "failed"): void {
    const now = performance.now();
    if (armed !== undefined) this.#armedBlock = 0; // consumed by this ACK, whatever follows
    if (this.#phase === "oack") {
      if (wireBlock !== 0) return;
      if (this.#oackSends === 1) this.#rttSample(now - this.#oackSentAt);
      this.#phase = "data";
      this.#progress();
      this.#startData();
      return;
    }
    const ahead = (wireBlock - (this.#acked % BLOCK_MOD) + BLOCK_MOD) % BLOCK_MOD;
    const block = this.#acked + ahead;
    // Beyond what we sent: a stale ACK from before a wrap, or bogus.
    if (block > this.#highestSent) return;
    if (ahead > 0) {
      const slots = this.#packets.length;
      if (this.#sendCount[block % slots] === 1) this.#rttSample(now - this.#sentAt[block % slots]);
      // A block of the last restart burst is now known delivered: expect echoes (see #echoBurst).
      for (let b = this.#acked + 1; b <= block; b++) {
        const slot = b % slots;
        if (this.#sendCount[slot] > 1 && this.#sentAt[slot] === this.#lastRestartAt) {
          this.#echoBurst = this.#lastRestartAt;
          this.#echoTop = this.#lastRestartTop;
          // One echo per resent block the client already had; this ACK is the first of them.
          this.#echoes = Math.min(block, this.#lastRestartResentTop) - this.#lastRestartFrom + 1;
          this.#echoUntil = this.#echoBurst + Math.max(4 * (this.#srtt ?? 0), this.#minRetransmitMs);
          break;
        }
      }
      this.#acked = block;
      if (block >= this.#lastBlock) {
        this.#finish("ok");
        return;
      }
      this.#progress();
      if (armed !== undefined && this.#armable) {
        // The socket already sent block+1 (lock-step fast path): account for it as sent here.
        // A failed send counts as sent and lost: the retransmit timer recovers it.
        this.#sent(block + 1, (block + 1) % this.#packets.length, now);
        this.#next = block + 2;
        this.#armNext(block + 1);
        return;
      }
    }
    this.#next = block + 1;
    // Blocks after `block` are outstanding: the client may be reporting a gap (RFC 7440 §4).
    // Lock-step keeps RFC 1350's rule instead (a repeated ACK never triggers a resend: that is
    // the Sorcerer's Apprentice bug); the retransmit timer recovers a lost block there.
    const gap = block < this.#highestSent && this.#windowsize > 1;
    this.#sendWindow(gap ? "restart" : "new", now);
  }

  /**
   * Enters the data phase: on a lock-step thread when allowed and available (it sends block 1
   * at once), otherwise the event-loop path.
   */
  #startData(): void {
    const source = this.#p.source;
    const maxThreads = this.#p.lockstepThreads ?? 0;
    if (
      this.#windowsize === 1 &&
      maxThreads > 0 &&
      source.fd !== undefined &&
      this.#acked === 0 &&
      this.#socket.lockstep?.(
        {
          fileFd: source.fd,
          size: source.size,
          blksize: this.#blksize,
          acked: 0,
          baseTimeoutMs: this.#baseTimeoutMs,
          minRetransmitMs: this.#minRetransmitMs,
          srttMs: this.#srtt,
          maxRetries: this.#maxRetries,
          maxThreads,
        },
        (kind, counters, detail) => this.#onThreadEvent(kind, counters, detail),
      )
    ) {
      this.#thread = true;
      this.#usedThread = true;
      clearTimeout(this.#timer); // the thread owns the retransmit timer
      return;
    }
    this.#sendWindow("new");
  }

  #onThreadEvent(kind: number, counters: LockstepCounters, detail: Buffer | number | undefined): void {
    if (this.#phase === "done" || !this.#thread) return;
    this.#absorb(counters);
    switch (kind) {
      case LockstepEvent.progress:
      case LockstepEvent.socketError:
        return;
      case LockstepEvent.packet:
        if (detail instanceof Buffer) this.#receive(detail, undefined);
        return;
      case LockstepEvent.ok:
        this.#finish("ok");
        return;
      case LockstepEvent.timeout:
        this.#stopThread();
        this.#sendError(TftpErrorCode.notDefined, "timeout: no acknowledgement from the client");
        this.#finish("timeout", `no ACK after ${this.#maxRetries} retransmissions`);
        return;
      case LockstepEvent.unreachable:
        this.#finish("aborted-by-client", "client port unreachable");
        return;
      case LockstepEvent.clientError: {
        let packet: TftpPacket | undefined;
        try {
          packet = detail instanceof Buffer ? decode(detail) : undefined;
        } catch {
          packet = undefined;
        }
        if (packet?.opcode === Opcode.ERROR) this.#finish("aborted-by-client", packet.message, packet.code);
        else this.#finish("aborted-by-client", "malformed ERROR");
        return;
      }
      case LockstepEvent.failed:
        this.#stopThread();
        this.#sendError(TftpErrorCode.notDefined, "internal error");
        this.#finish("error", `socket failed (errno ${typeof detail === "number" ? detail : "?"})`);
        return;
      case LockstepEvent.readError:
        this.#stopThread();
        this.#sendError(TftpErrorCode.notDefined, "read error");
        this.#finish("error", `read failed (errno ${typeof detail === "number" ? detail : "?"})`);
        return;
    }
  }

  /** Joins a running lock-step thread and takes its final counters. */
  #stopThread(): void {
    if (!this.#thread) return;
    this.#thread = false;
    const counters = this.#socket.stopLockstep?.();
    if (counters) this.#absorb(counters);
  }

  #absorb(c: LockstepCounters): void {
    this.#acked = c.acked;
    this.#dataPackets = c.dataPackets;
    this.#bytesSent = c.bytesSent;
    this.#retransmits = c.retransmits;
    if (c.acked > this.#highestSent) this.#highestSent = c.acked;
  }

  /**
   * Sends blocks from #next up to the window's end, synchronously while the bytes are in memory
   * (the usual case: the source reads ahead). A block not loaded yet parks the window until the
   * read lands; ACKs meanwhile only move the counters.
   *
   * Blocks already sent once: "new" skips them (only new blocks go out), "restart" resends those
   * old enough (see the class comment) unless the window restarted less than a round trip ago,
   * "force" (timeout) resends them all.
   */
  #sendWindow(mode: SendMode, now = performance.now()): void {
    if (this.#waitingForDisk || this.#waitingForRoom || this.#phase !== "data") return;
    const slots = this.#packets.length;
    const srtt = this.#srtt ?? 0;
    const mayResend =
      mode === "force" || (mode === "restart" && now - this.#lastRestartAt >= srtt && this.#srtt !== undefined);
    // Blocks sent after this instant are too young to resend (none on a timeout).
    let youngerThan = mode === "force" ? Number.POSITIVE_INFINITY : now - this.#minRtt;
    if (this.#echoes > 0 && this.#acked <= this.#echoTop && mode !== "force") {
      this.#echoes--;
      if (mode === "restart" && now < this.#echoUntil) youngerThan = Math.min(youngerThan, this.#echoBurst - 1e-6);
    }
    let resent = false;
    let resentFrom = 0;
    let resentTop = 0;
    try {
      const end = Math.min(this.#acked + this.#windowsize, this.#lastBlock);
      while (this.#next <= end && this.#phase === "data") {
        const block = this.#next;
        const slot = block % slots;
        if (block <= this.#highestSent && (!mayResend || this.#sentAt[slot] > youngerThan)) {
          this.#next = block + 1; // in flight, or just resent: leave it
          continue;
        }
        const packet = this.#dataPacket(block);
        if (packet === undefined) {
          this.#resumeMode = mode;
          this.#waitForDisk(block);
          return;
        }
        if (!this.#send(packet)) {
          // Not sent: resume from this block once the socket drains (#next still points at it).
          this.#resumeMode = mode;
          this.#waitingForRoom = true;
          return;
        }
        if (block <= this.#highestSent) {
          if (!resent) resentFrom = block;
          resentTop = block;
          resent = true;
        }
        this.#sent(block, slot, now);
        this.#next = block + 1;
        if (this.#armable) this.#armNext(block);
      }
    } catch (err) {
      this.#readFailed(err);
    } finally {
      if (resent) {
        this.#lastRestartAt = now;
        this.#lastRestartTop = this.#highestSent;
        this.#lastRestartFrom = resentFrom;
        this.#lastRestartResentTop = resentTop;
      }
    }
  }

  /** Bookkeeping for block `block` (in `slot`) having been put on the wire at `now`. */
  #sent(block: number, slot: number, now: number): void {
    const length = Math.min(this.#blksize, this.#p.source.size - (block - 1) * this.#blksize);
    this.#sentAt[slot] = now;
    if (this.#sendCount[slot] < 255) this.#sendCount[slot]++;
    this.#dataPackets++;
    this.#bytesSent += length;
    if (block <= this.#highestSent) this.#retransmits++;
    else this.#highestSent = block;
  }

  /**
   * Lock-step fast path: prepares block sent+1 in its slot and arms it on the socket, which
   * sends it the moment the ACK for `sent` arrives, before any JS runs, so the per-block
   * latency is one recv and one send. Only when its bytes are in memory; otherwise the ACK
   * takes the ordinary path.
   */
  #armNext(sent: number): void {
    const block = sent + 1;
    if (block > this.#lastBlock) {
      if (this.#armedBlock !== 0) this.#socket.arm?.();
      this.#armedBlock = 0;
      return;
    }
    if (this.#armedBlock === block) return;
    const packet = this.#dataPacket(block);
    if (packet === undefined) {
      if (this.#armedBlock !== 0) this.#socket.arm?.();
      this.#armedBlock = 0;
      return;
    }
    this.#socket.arm?.(packet, sent % BLOCK_MOD);
    this.#armedBlock = block;
  }

  /**
   * DATA for `block`, built in its window slot unless the slot holds it already (a resend or
   * an armed packet), cut to length for the last block; undefined while its bytes are not in
   * memory (see #waitForDisk).
   */
  #dataPacket(block: number): Buffer | undefined {
    const slot = block % this.#packets.length;
    const packet = this.#packets[slot];
    const offset = (block - 1) * this.#blksize;
    const length = Math.min(this.#blksize, this.#p.source.size - offset);
    if (this.#packetBlocks[slot] !== block) {
      if (!this.#p.source.copy(offset, length, packet, 4)) return undefined;
      const wire = block % BLOCK_MOD;
      packet[0] = 0;
      packet[1] = Opcode.DATA;
      packet[2] = wire >> 8;
      packet[3] = wire & 0xff;
      this.#packetBlocks[slot] = block;
      this.#sendCount[slot] = 0;
    }
    return length + 4 < packet.length ? packet.subarray(0, length + 4) : packet; // the last block is shorter
  }

  /** Loads `block`'s bytes, then resumes the window. */
  #waitForDisk(block: number): void {
    const offset = (block - 1) * this.#blksize;
    const length = Math.min(this.#blksize, this.#p.source.size - offset);
    this.#waitingForDisk = true;
    this.#p.source.fill(offset, length).then(
      () => {
        this.#waitingForDisk = false;
        this.#sendWindow(this.#resumeMode); // re-evaluates: ACKs or a timeout may have moved things meanwhile
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
    this.#stopThread();
    this.#phase = "done";
    clearTimeout(this.#timer);
    if (this.#armedBlock !== 0) this.#socket.arm?.();
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
      dataPackets: this.#dataPackets,
      blksize: this.#blksize,
      windowsize: this.#windowsize,
      lockstepThread: this.#usedThread,
    });
  }
}
