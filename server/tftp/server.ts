import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import type { LookupOneOptions } from "node:dns";
import { isIP, isIPv4 } from "node:net";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { BootEventBus, BootResult } from "../events/boot-events.js";
import type { MachineBackend } from "../inventory/backend.js";
import type { Machine } from "../inventory/types.js";
import { loadUdpListener, type UdpListenerAddon } from "../native/udp-listener.js";
import type { Artifact, ArtifactResolver } from "../netboot/artifact.js";
import { RateLimiter } from "../util/rate-limiter.js";
import { type TftpMetrics, tftpMetrics } from "./metrics.js";
import { type NegotiatedTransfer, negotiate } from "./negotiate.js";
import { toNetascii } from "./netascii.js";
import { BLKSIZE_CAP_DEFAULT, WINDOWSIZE_CAP_DEFAULT } from "./options.js";
import {
  decode,
  encode,
  Opcode,
  type RequestPacket,
  TftpDecodeError,
  TftpErrorCode,
  type TftpPacket,
} from "./packets.js";
import { TftpSession, type TftpSessionOutcome } from "./session.js";
import { type BlockSource, BufferBlockSource, FileBlockSource, netasciiFileSource } from "./source.js";
import {
  dgramTransferSocket,
  loadUdpAddon,
  nativeTransferSocket,
  type TransferSocket,
  type UdpAddon,
} from "./transfer-socket.js";

export interface TftpServerOptions {
  /** IP literal to listen on; each transfer's socket binds the same address. */
  bindAddress: string;
  /** 69 in production; 0 picks a free port (tests). */
  port: number;
  backend: MachineBackend;
  resolver: ArtifactResolver;
  events: BootEventBus;
  log: Logger;
  metrics: Registry;
  /** Concurrent transfers; more are refused with "server busy". Default 64. */
  maxTransfers?: number;
  /**
   * Concurrent transfers per client IP; more are refused with "server busy", so one client (or
   * one address behind a NAT) cannot take every slot. Default 8 (firmware fetches one at a time).
   */
  maxTransfersPerClient?: number;
  /** blksize cap, default 1468 (see options.ts for why not the interface MTU). */
  maxBlockSize?: number;
  /** windowsize cap, default 64. */
  maxWindowSize?: number;
  /** First retransmit timeout when the client negotiates none. Default 1000 ms. */
  defaultTimeoutMs?: number;
  /** Retransmissions at the full timeout before a transfer is abandoned. Default 5. */
  maxRetries?: number;
  /** Shortest retransmit interval for a stalled window (see TftpSession). Default 50 ms. */
  minRetransmitMs?: number;
  /**
   * Transfer sockets from the native addon (server/native/src/udp_socket.c) instead of dgram:
   * fewer allocations per datagram, which is what a lock-step transfer is made of. Used only
   * for an IPv4 bindAddress and when the addon loads; dgram otherwise. Default true.
   */
  nativeSockets?: boolean;
  /**
   * Lock-step transfers (windowsize 1) of files run their data phase on a native worker thread
   * (server/native/src/lockstep.c, docs/tftp.md), at most this many at once; beyond that, or
   * with 0, the event-loop path. Native sockets only. Default LOCKSTEP_THREADS_DEFAULT.
   */
  lockstepThreads?: number;
  /** Path of metalman_udp.node (tests); default: server/native/build/Release/. */
  udpAddonPath?: string;
}

/** Default of TftpServerOptions.lockstepThreads: on, the thread path beat the event-loop one (docs/tftp.md). */
export const LOCKSTEP_THREADS_DEFAULT = 64;

/** The port-69 socket: dgram, or the native listener that reports each request's local address. */
interface RequestSocket {
  readonly port: number;
  close(): Promise<void>;
}

/** Longest file name accepted (bytes); image paths are short, anything longer is garbage or an attack. */
const MAX_FILENAME_BYTES = 512;
/** netascii converts in memory; it is meant for small text files (configs), not kernels. */
const MAX_NETASCII_BYTES = 16 * 1024 * 1024;

/** Outcome label of one request (metric label and, mapped, the BootEvent result). */
type RequestOutcome =
  | TftpSessionOutcome["result"]
  | "not-found"
  | "not-ready"
  | "unknown-ip"
  | "bad-request"
  | "write-request"
  | "busy";

const BOOT_RESULT: Record<RequestOutcome, BootResult> = {
  ok: "ok",
  // A client ERROR right after OACK is how UEFI firmware asks only the size: a normal outcome.
  // Reported as ignored with reason aborted-by-client; an abort in the middle of the data is
  // overridden to "aborted" where it is recorded.
  "aborted-by-client": "ignored",
  timeout: "error",
  aborted: "error",
  error: "error",
  "not-found": "not-found",
  "not-ready": "not-ready",
  "unknown-ip": "error",
  "bad-request": "error",
  "write-request": "error",
  busy: "error",
};

interface ActiveTransfer {
  session?: TftpSession;
  /** An RRQ from the same port is waiting to see whether this transfer ends (see #onRequest). */
  recheck?: boolean;
  /** Frees the slot and the client key (idempotent): as soon as the session ends, before cleanup. */
  release: () => void;
}

/** Loop turns a same-port RRQ waits for the transfer it collides with to end (e.g. its ERROR is still queued). */
const SAME_PORT_RECHECK_TURNS = 2;

/** dgram resolves even IP literals through dns.lookup on the next tick; answering at once keeps sends synchronous. */
function literalLookup(
  hostname: string,
  _options: LookupOneOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  callback(null, hostname, isIP(hostname) === 6 ? 6 : 4);
}

/** `::ffff:10.0.0.5` (dual-stack socket) → `10.0.0.5`: the inventory stores plain IPv4. */
function clientIp(address: string): string {
  const mapped = address.startsWith("::ffff:") ? address.slice(7) : address;
  return isIPv4(mapped) ? mapped : address;
}

/**
 * Read-only TFTP server (spec §4): identity is the source IP, files come from the shared
 * ArtifactResolver (the same resolution as HTTP), each transfer runs on its own ephemeral port.
 *
 * Error codes: upstream answers every failure with code 1 (file not found). We use the code that
 * says what happened, because firmware and operators act on it: 1 only for a missing file,
 * 2 (access violation) for an unknown client or a refused file name/WRQ, 4 for an illegal
 * operation, 0 ("see message") for transient or internal conditions (image not pulled yet, busy,
 * render error). "Server busy" is 0, not 3: code 3 means the *storage* allocation of a write is
 * exceeded, which would send an operator looking at disks; 0 carries the real reason as text.
 */
export class TftpServer {
  readonly #o: TftpServerOptions;
  readonly #metrics: TftpMetrics;
  readonly #logLimit = new RateLimiter({ maxKeys: 4096 });
  readonly #transfers = new Map<string, ActiveTransfer>();
  readonly #perClient = new Map<string, number>();
  readonly #handlers = new Set<Promise<void>>();
  readonly #maxTransfers: number;
  readonly #maxPerClient: number;
  /** Set when transfers use the native socket. */
  readonly #udpAddon: UdpAddon | undefined;
  #socket: RequestSocket | undefined;
  /** Set when the listener reports each request's local address (IP_PKTINFO). */
  #localAddressAware = false;
  #closing = false;

  constructor(options: TftpServerOptions) {
    if (isIP(options.bindAddress) === 0)
      throw new TypeError(`TFTP bindAddress must be an IP literal: ${options.bindAddress}`);
    this.#o = options;
    this.#metrics = tftpMetrics(options.metrics);
    this.#maxTransfers = options.maxTransfers ?? 64;
    this.#maxPerClient = options.maxTransfersPerClient ?? 8;
    this.#udpAddon =
      (options.nativeSockets ?? true) && isIP(options.bindAddress) === 4
        ? loadUdpAddon(options.udpAddonPath)
        : undefined;
  }

  /** Which socket implementation transfers use. */
  get transferSockets(): "native" | "dgram" {
    return this.#udpAddon ? "native" : "dgram";
  }

  /**
   * Binds the listening socket. Rejects when the port cannot be bound.
   *
   * On a wildcard address, answers must still leave from the address the client talked to
   * (EDK2 drops packets from any other source; a host may have a secondary address, a VIP or
   * several NICs): the native listener reports each request's local address (IP_PKTINFO) and
   * the transfer and error sockets bind to it. Without the addon, dgram: the kernel then picks
   * the source by route, which is right only with one address per subnet (logged once).
   */
  async start(): Promise<void> {
    if (this.#socket) throw new Error("TFTP server already started");
    const wildcard = this.#o.bindAddress === "0.0.0.0";
    const listenerAddon =
      wildcard && (this.#o.nativeSockets ?? true) ? loadUdpListener(this.#o.udpAddonPath) : undefined;
    this.#socket = listenerAddon ? this.#nativeListener(listenerAddon) : await this.#dgramListener();
    this.#localAddressAware = listenerAddon !== undefined;
    if (wildcard && !listenerAddon) {
      this.#o.log.warn(
        "tftp: listening on 0.0.0.0 without the native addon: replies leave from the address the kernel picks by route, not necessarily the one the client asked (build server/native, or bind one address)",
      );
    }
    this.#o.log.info(
      {
        address: this.address,
        transferSockets: this.transferSockets,
        replySource: this.#localAddressAware ? "request destination" : "bind address",
      },
      "tftp: listening",
    );
  }

  async #dgramListener(): Promise<RequestSocket> {
    const socket = this.#newSocket();
    try {
      await bindSocket(socket, this.#o.bindAddress, this.#o.port);
    } catch (err) {
      socket.close();
      throw err;
    }
    socket.on("message", (msg, from) => this.#onRequest(msg, from, this.#o.bindAddress));
    socket.on("error", (err) => this.#o.log.error({ err }, "tftp: listening socket error"));
    return {
      port: socket.address().port,
      close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
    };
  }

  #nativeListener(addon: UdpListenerAddon): RequestSocket {
    const listener = new addon.UdpListener(
      this.#o.bindAddress,
      this.#o.port,
      (data, address, port, localAddress) =>
        this.#onRequest(data, { address, port, family: "IPv4", size: data.length }, localAddress),
      (err) => this.#o.log.error({ err }, "tftp: listening socket error"),
    );
    return {
      port: listener.port,
      close: async () => listener.close(),
    };
  }

  /** The bound address (port resolved when started with port 0). */
  get address(): { address: string; port: number; family: string } {
    if (!this.#socket) throw new Error("TFTP server not started");
    return {
      address: this.#o.bindAddress,
      port: this.#socket.port,
      family: isIP(this.#o.bindAddress) === 6 ? "IPv6" : "IPv4",
    };
  }

  /** Transfers in progress (including requests still being resolved). */
  get activeTransfers(): number {
    return this.#transfers.size;
  }

  /** Stops accepting requests, aborts transfers (clients get an ERROR), closes every socket. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    for (const transfer of this.#transfers.values()) transfer.session?.abort("server shutting down");
    await Promise.allSettled([...this.#handlers]);
    await this.#socket?.close();
  }

  #newSocket(reuseAddr = false): Socket {
    return createSocket({ type: isIP(this.#o.bindAddress) === 6 ? "udp6" : "udp4", lookup: literalLookup, reuseAddr });
  }

  #malformed(kind: string, from: RemoteInfo, err?: unknown): void {
    this.#metrics.malformedPackets.inc({ kind });
    if (this.#logLimit.check(from.address).allowed) {
      this.#o.log.warn(
        { from: from.address, port: from.port, kind, err: err instanceof Error ? err.message : err },
        "tftp: dropped malformed or unexpected packet (further ones from this source are not logged for a minute)",
      );
    }
  }

  /**
   * An ERROR answering a request, sent from a new TID (a fresh port, RFC 1350 §4: every answer
   * to a request comes from the port that would have carried the transfer), bound to the address
   * the request was sent to. Texts are fixed and generic (docs/tftp.md): the reason goes to the
   * event and the log, never to the wire.
   */
  #reply(to: RemoteInfo, localAddress: string, code: number, message: string): void {
    const socket = this.#newSocket();
    const sent = new Promise<void>((resolve) => {
      const done = () => {
        socket.close(() => resolve());
      };
      socket.once("error", done);
      socket.bind({ address: localAddress, port: 0, exclusive: true }, () => {
        socket.send(encode({ opcode: Opcode.ERROR, code, message }), to.port, to.address, done);
      });
    }).finally(() => this.#handlers.delete(sent));
    this.#handlers.add(sent);
  }

  #onRequest(msg: Buffer, from: RemoteInfo, localAddress: string): void {
    if (this.#closing) return;
    let packet: TftpPacket;
    try {
      packet = decode(msg);
    } catch (err) {
      const unknownMode = err instanceof TftpDecodeError && err.reason === "unknown-mode";
      this.#malformed(unknownMode ? "unknown-mode" : err instanceof TftpDecodeError ? "decode" : "internal", from, err);
      // A well-formed request in a mode nobody defined: say so (RFC 1350 code 4) instead of silence.
      if (unknownMode) this.#reply(from, localAddress, TftpErrorCode.illegalOperation, "unknown transfer mode");
      return;
    }
    const ip = clientIp(from.address);
    if (packet.opcode === Opcode.WRQ) {
      this.#reply(from, localAddress, TftpErrorCode.accessViolation, "access violation");
      this.#record("write-request", { ip, path: packet.filename });
      return;
    }
    if (packet.opcode !== Opcode.RRQ) {
      // DATA/ACK/ERROR/OACK belong on a transfer port; on port 69 they are stray or forged.
      this.#malformed("unexpected-opcode", from);
      return;
    }
    const key = `${from.address}|${from.port}`;
    const existing = this.#transfers.get(key);
    if (existing) {
      // Either the client retransmitted its RRQ before our first answer arrived (one transfer is
      // enough) or it ended the transfer with an ERROR and asks again from the same port, as
      // UEFI does after a tsize probe; that ERROR may still sit in the transfer socket's queue.
      // Look again once it had its turns: a new request if the old transfer is gone by then.
      if (!existing.recheck) {
        existing.recheck = true;
        this.#afterTurns(SAME_PORT_RECHECK_TURNS, () => {
          existing.recheck = false;
          if (!this.#transfers.has(key)) this.#onRequest(msg, from, localAddress);
        });
      }
      return;
    }
    if (this.#transfers.size >= this.#maxTransfers || (this.#perClient.get(ip) ?? 0) >= this.#maxPerClient) {
      this.#reply(from, localAddress, TftpErrorCode.notDefined, "server busy, retry later");
      this.#record("busy", { ip, path: packet.filename });
      return;
    }
    let released = false;
    const transfer: ActiveTransfer = {
      release: () => {
        if (released) return;
        released = true;
        this.#transfers.delete(key);
        const n = (this.#perClient.get(ip) ?? 1) - 1;
        if (n > 0) this.#perClient.set(ip, n);
        else this.#perClient.delete(ip);
        this.#metrics.activeTransfers.set(this.#transfers.size);
      },
    };
    this.#transfers.set(key, transfer);
    this.#perClient.set(ip, (this.#perClient.get(ip) ?? 0) + 1);
    this.#metrics.activeTransfers.set(this.#transfers.size);
    const handler = this.#handleRead(packet, from, localAddress, ip, transfer)
      .catch((err: unknown) => {
        this.#o.log.error({ err, ip }, "tftp: transfer failed unexpectedly");
      })
      .finally(() => {
        transfer.release();
        this.#handlers.delete(handler);
      });
    this.#handlers.add(handler);
  }

  /** Runs `fn` after `turns` event-loop turns (I/O callbacks of each turn run first). */
  #afterTurns(turns: number, fn: () => void): void {
    setImmediate(() => (turns <= 1 ? fn() : this.#afterTurns(turns - 1, fn)));
  }

  async #handleRead(
    request: RequestPacket,
    from: RemoteInfo,
    localAddress: string,
    ip: string,
    transfer: ActiveTransfer,
  ): Promise<void> {
    const reply = (code: number, message: string) => this.#reply(from, localAddress, code, message);
    const started = performance.now();
    const rawName = request.filename.startsWith("/") ? request.filename.slice(1) : request.filename;
    const base = { ip, path: rawName, started, mode: request.mode };

    const path = fileName(rawName);
    if (path === undefined) {
      reply(TftpErrorCode.accessViolation, "access violation");
      this.#record("bad-request", { ...base, reason: "bad-filename" });
      return;
    }
    if (path === "") {
      reply(TftpErrorCode.fileNotFound, "file not found");
      this.#record("not-found", { ...base, reason: "empty-path" });
      return;
    }
    if (request.mode === "mail") {
      reply(TftpErrorCode.illegalOperation, "mail mode is not supported");
      this.#record("bad-request", { ...base, reason: "mail-mode" });
      return;
    }
    const machine = this.#o.backend.byIp(ip);
    if (!machine) {
      // Access violation, not "file not found": the file may exist, this client may not read it.
      reply(TftpErrorCode.accessViolation, "access violation");
      this.#record("unknown-ip", { ...base, reason: "unknown-ip" });
      return;
    }
    const who = { ...base, machine };
    if (!machine.spec.pxe) {
      reply(TftpErrorCode.accessViolation, "access violation");
      this.#record("bad-request", { ...who, reason: "no-pxe" });
      return;
    }

    let artifact: Artifact;
    try {
      artifact = await this.#o.resolver.resolve(machine, path);
    } catch (err) {
      // The contract says resolve never throws; a bug there must not kill the server.
      artifact = { kind: "error", reason: err instanceof Error ? err.message : String(err) };
    }
    if (this.#closing) {
      this.#record("aborted", { ...who, reason: "server-shutdown" });
      return;
    }
    switch (artifact.kind) {
      case "not-ready":
        // TFTP has no retry hint; the firmware's own retry is the only one there is.
        reply(TftpErrorCode.notDefined, "not ready, retry later");
        this.#record("not-ready", { ...who, reason: "not-ready" });
        return;
      case "not-found":
        reply(TftpErrorCode.fileNotFound, "file not found");
        this.#record("not-found", { ...who, reason: "not-found" });
        return;
      case "error":
        // The reason (a template error, a path) is for the operator: log and event, not the wire.
        reply(TftpErrorCode.fileNotFound, "file not found");
        this.#record("error", { ...who, reason: "resolve-error" });
        this.#o.log.warn({ ip, path, reason: artifact.reason }, "tftp: artifact could not be produced");
        return;
    }

    let opened: { source: BlockSource; negotiated: NegotiatedTransfer };
    try {
      opened = await this.#openSource(artifact, request);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const missing = code === "ENOENT" || code === "ENOTFILE" || code === "EISDIR";
      reply(
        missing ? TftpErrorCode.fileNotFound : TftpErrorCode.accessViolation,
        missing ? "file not found" : "access violation",
      );
      this.#record(missing ? "not-found" : "error", { ...who, reason: missing ? "not-found" : "open-error" });
      return;
    }
    const { source, negotiated } = opened;
    // The transfer socket is connect()ed to the client (the kernel filters other senders, sends
    // need no address: the per-block path stays short). A second, unconnected socket on the same
    // port (both SO_REUSEADDR) receives what the connected one does not, i.e. other TIDs, so
    // they still get ERROR 5. It is bound first, to pick the port. Cost of SO_REUSEADDR: the
    // kernel may give two transfers the same ephemeral port (harmless: each connected socket
    // still receives only its own client) and a local process could bind it too (the
    // appliance's local processes are trusted). tftpd-hpa connects too but has no such socket:
    // foreign TIDs get ICMP port unreachable there.
    const strangers = this.#newSocket(true);
    let socket: TransferSocket | undefined;
    try {
      await bindSocket(strangers, localAddress, 0);
      strangers.on("error", (err) => this.#o.log.warn({ err, ip }, "tftp: transfer socket error"));
      socket = await this.#transferSocket(localAddress, strangers.address().port, from, ip);
      if (this.#closing) {
        this.#record("aborted", { ...who, reason: "server-shutdown" });
        return;
      }
      const session = new TftpSession({
        socket,
        strangers,
        peer: { address: from.address, port: from.port },
        source,
        negotiated,
        defaultTimeoutMs: this.#o.defaultTimeoutMs,
        maxRetries: this.#o.maxRetries,
        minRetransmitMs: this.#o.minRetransmitMs,
        lockstepThreads: this.#o.lockstepThreads ?? LOCKSTEP_THREADS_DEFAULT,
        onMalformed: (src, err) => this.#malformed("decode", src, err),
        onWrongTid: (src) => this.#malformed("wrong-tid", src),
      });
      transfer.session = session;
      const outcome = await session.run();
      // The client may ask again from the same port right away (after a tsize probe): free the
      // key now, not after the sockets closed.
      transfer.release();
      this.#metrics.bytesSent.inc(outcome.bytesSent);
      // ERROR instead of ACK 0 is how UEFI firmware asks only the size: normal, not a failure.
      // A client giving up in the middle of the data aborted the step.
      const probe = outcome.result === "aborted-by-client" && outcome.endedIn === "negotiation";
      this.#record(outcome.result, {
        ...who,
        bootResult: outcome.result === "aborted-by-client" && !probe ? "aborted" : undefined,
        reason: outcome.result === "ok" ? undefined : outcome.result === "aborted" ? "server-shutdown" : outcome.result,
        bytes: outcome.bytesAcked,
        blksize: outcome.blksize,
        windowsize: outcome.windowsize,
        retransmits: outcome.retransmits,
        dataPackets: outcome.dataPackets,
        message: outcome.message,
      });
    } catch (err) {
      reply(TftpErrorCode.notDefined, "internal error");
      this.#record("error", { ...who, reason: "socket-error" });
      this.#o.log.error({ err, ip }, "tftp: could not start transfer");
    } finally {
      await Promise.all([socket?.close(), closeQuietly(strangers)]);
      await source.close().catch(() => {});
    }
  }

  /** The transfer's connected socket on `port` (shared with the strangers socket). */
  async #transferSocket(localAddress: string, port: number, from: RemoteInfo, ip: string): Promise<TransferSocket> {
    // ECONNREFUSED (client gone) ends the session (see TftpSession); anything else is logged.
    const onOtherError = (err: Error) => this.#o.log.warn({ err, ip }, "tftp: transfer socket error");
    if (this.#udpAddon) {
      return nativeTransferSocket({
        addon: this.#udpAddon,
        localAddress,
        localPort: port,
        peerAddress: from.address,
        peerPort: from.port,
        onOtherError,
      });
    }
    const socket = this.#newSocket(true);
    try {
      await bindSocket(socket, localAddress, port);
      await connectSocket(socket, from.port, from.address);
    } catch (err) {
      await closeQuietly(socket);
      throw err;
    }
    return dgramTransferSocket(socket, onOtherError);
  }

  async #openSource(
    artifact: Extract<Artifact, { kind: "file" | "rendered" }>,
    request: RequestPacket,
  ): Promise<{ source: BlockSource; negotiated: NegotiatedTransfer }> {
    const limits = {
      maxBlockSize: this.#o.maxBlockSize ?? BLKSIZE_CAP_DEFAULT,
      maxWindowSize: this.#o.maxWindowSize ?? WINDOWSIZE_CAP_DEFAULT,
    };
    if (artifact.kind === "rendered") {
      const source = new BufferBlockSource(request.mode === "netascii" ? toNetascii(artifact.body) : artifact.body);
      return { source, negotiated: negotiate(request.options, source.size, limits) };
    }
    if (request.mode === "netascii") {
      const source = await netasciiFileSource(artifact.open ?? artifact.absPath, MAX_NETASCII_BYTES);
      return { source, negotiated: negotiate(request.options, source.size, limits) };
    }
    const file = await FileBlockSource.open(artifact.open ?? artifact.absPath);
    const negotiated = negotiate(request.options, file.size, limits);
    return { source: file.configure(negotiated.blksize, negotiated.windowsize), negotiated };
  }

  #record(
    outcome: RequestOutcome,
    info: {
      ip: string;
      path: string;
      started?: number;
      mode?: string;
      machine?: Machine;
      reason?: string;
      bytes?: number;
      blksize?: number;
      windowsize?: number;
      retransmits?: number;
      dataPackets?: number;
      message?: string;
      /** Overrides the default mapping of `outcome`. */
      bootResult?: BootResult;
    },
  ): void {
    this.#metrics.transfers.inc({ result: outcome });
    const mac = info.machine?.spec.pxe?.dhcpLeases?.find((l) => l.ipv4 === info.ip)?.mac;
    this.#o.events.emit({
      step: "tftp.transfer",
      result: info.bootResult ?? BOOT_RESULT[outcome],
      ip: info.ip,
      mac: mac?.toLowerCase(),
      machine: info.machine?.metadata.name,
      reason: outcome === "ok" ? undefined : (info.reason ?? outcome),
      detail: {
        path: info.path,
        mode: info.mode,
        bytes: info.bytes ?? 0,
        blksize: info.blksize,
        windowsize: info.windowsize,
        retransmits: info.retransmits,
        dataPackets: info.dataPackets,
        message: info.message,
        ms: info.started === undefined ? 0 : Math.round(performance.now() - info.started),
      },
    });
  }
}

/** The request path as text, or undefined when it cannot be a file name (control bytes, not UTF-8, too long). */
function fileName(latin1: string): string | undefined {
  const bytes = Buffer.from(latin1, "latin1");
  if (bytes.length > MAX_FILENAME_BYTES) return undefined;
  // NUL cannot arrive inside a TFTP string, but the resolver is shared with HTTP: check anyway.
  if (bytes.some((b) => b < 0x20 || b === 0x7f)) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

function bindSocket(socket: Socket, address: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    socket.once("error", onError);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off("error", onError);
      resolve();
    });
  });
}

function connectSocket(socket: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    socket.once("error", onError);
    socket.connect(port, address, () => {
      socket.off("error", onError);
      resolve();
    });
  });
}

/** Closes a socket that may never have been bound (close() throws on a socket that is already closed). */
function closeQuietly(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve();
    }
  });
}
