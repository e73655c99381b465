import { createHash } from "node:crypto";
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { decode, encode, Opcode, type TftpPacket } from "../../../server/tftp/packets.js";

/**
 * A small TFTP read client for tests: RFC 1350 lock-step, RFC 2347 options, RFC 7440 windows
 * (ACK at the end of each window, ACK the last in-order block on a gap), block rollover, and
 * hooks to misbehave on purpose (drop a DATA, abort after OACK).
 */
export interface TftpGetOptions {
  host: string;
  port: number;
  filename: string;
  mode?: string;
  /** Options sent in the RRQ, in this order. */
  options?: Record<string, string>;
  /** Local address to send from (e.g. 127.0.0.2 to be an unknown client). Default 127.0.0.1. */
  localAddress?: string;
  /** Client retransmit timeout. Default 2000 ms. */
  timeoutMs?: number;
  /** Called for each in-order DATA block (absolute number, 1-based); true = pretend it was lost. */
  dropData?: (block: number) => boolean;
  /** After the OACK, answer ERROR 8 instead of ACK 0 (how UEFI probes tsize). */
  abortAfterOack?: boolean;
  /** Keep the bytes in memory (default true); false = only hash and count them. */
  keepData?: boolean;
  /** Hard limit for the whole transfer. Default 60 s. */
  deadlineMs?: number;
  /**
   * Answer like EDK2's Mtftp4RrqHandleData: every out-of-order DATA (ahead or behind) is
   * answered at once with an ACK of the last in-order block, and in-order blocks are ACKed once
   * `windowsize` of them arrived since the last ACK sent (of any kind). Default: ACK a gap once.
   */
  edk2Acks?: boolean;
  /** Ignore datagrams whose source address is not `host` (EDK2's UDP instance is configured with the server's address). */
  strictSource?: boolean;
}

export interface TftpGetResult {
  outcome: "ok" | "error" | "aborted" | "timeout";
  data?: Buffer;
  size: number;
  sha256: string;
  oack?: Record<string, string>;
  error?: { code: number; message: string };
  /** The server's transfer port (its TID). */
  serverPort?: number;
  blocks: number;
  dropped: number;
  /** DATA datagrams received (duplicates and out-of-order ones included). */
  dataReceived: number;
  /** ACKs sent. */
  acksSent: number;
  /** Source addresses of the datagrams received (ignored ones included). */
  sources: string[];
}

const MOD = 0x10000;

export function tftpGet(opts: TftpGetOptions): Promise<TftpGetResult> {
  const socket = createSocket("udp4");
  const hash = createHash("sha256");
  const chunks: Buffer[] = [];
  const keep = opts.keepData ?? true;
  const timeoutMs = opts.timeoutMs ?? 2000;
  let size = 0;
  let received = 0; // absolute number of the last in-order block
  let lastAcked = 0;
  let blksize = 512;
  let windowsize = 1;
  let serverPort: number | undefined;
  let oack: Record<string, string> | undefined;
  let dropped = 0;
  let retries = 0;
  let lastSent: Buffer;
  let timer: NodeJS.Timeout | undefined;
  let pending = 0;
  let dataReceived = 0;
  let acksSent = 0;
  const sources = new Set<string>();

  return new Promise<TftpGetResult>((resolve) => {
    let finished = false;
    const deadline = setTimeout(() => finish("timeout"), opts.deadlineMs ?? 60_000);
    const finish = (outcome: TftpGetResult["outcome"], error?: { code: number; message: string }) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(deadline);
      // Let the last ACK/ERROR leave before closing (dgram sends after a lookup tick).
      if (pending === 0) socket.close();
      resolve({
        outcome,
        data: keep ? Buffer.concat(chunks) : undefined,
        size,
        sha256: hash.digest("hex"),
        oack,
        error,
        serverPort,
        blocks: received,
        dropped,
        dataReceived,
        acksSent,
        sources: [...sources],
      });
    };
    const send = (packet: Buffer, port: number) => {
      lastSent = packet;
      pending++;
      socket.send(packet, port, opts.host, () => {
        pending--;
        if (finished && pending === 0) socket.close();
      });
    };
    const ack = (block: number) => {
      lastAcked = block;
      acksSent++;
      send(encode({ opcode: Opcode.ACK, block: block % MOD }), serverPort!);
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (++retries > 5) return finish("timeout");
        send(lastSent, serverPort ?? opts.port);
        arm();
      }, timeoutMs);
    };

    const onPacket = (packet: TftpPacket, from: RemoteInfo) => {
      if (serverPort === undefined) serverPort = from.port;
      else if (from.port !== serverPort) {
        pending++;
        socket.send(
          encode({ opcode: Opcode.ERROR, code: 5, message: "unknown transfer ID" }),
          from.port,
          from.address,
          () => {
            pending--;
            if (finished && pending === 0) socket.close();
          },
        );
        return;
      }
      retries = 0;
      if (packet.opcode === Opcode.ERROR) return finish("error", { code: packet.code, message: packet.message });
      if (packet.opcode === Opcode.OACK) {
        if (received > 0) return; // a late retransmitted OACK
        oack = Object.fromEntries(packet.options.map((o) => [o.name.toLowerCase(), o.value]));
        if (opts.abortAfterOack) {
          send(encode({ opcode: Opcode.ERROR, code: 8, message: "tsize probe done" }), serverPort);
          return finish("aborted");
        }
        blksize = Number(oack.blksize ?? 512);
        windowsize = Number(oack.windowsize ?? 1);
        ack(0);
        arm();
        return;
      }
      if (packet.opcode !== Opcode.DATA) return;
      dataReceived++;
      const expected = (received + 1) % MOD;
      if (packet.block !== expected && opts.edk2Acks) {
        // Mtftp4RrqHandleData: any unexpected block gets an ACK of the last in-order one.
        ack(received);
        arm();
        return;
      }
      if (packet.block !== expected) {
        const ahead = (packet.block - expected + MOD) % MOD < MOD / 2;
        // Behind: our ACK was lost, repeat it. Ahead: a gap, report the last in-order block once.
        if (!ahead || lastAcked !== received) ack(received);
        arm();
        return;
      }
      if (opts.dropData?.(received + 1)) {
        dropped++;
        return;
      }
      received++;
      size += packet.data.length;
      hash.update(packet.data);
      if (keep) chunks.push(packet.data);
      if (packet.data.length < blksize) {
        ack(received);
        return finish("ok");
      }
      if (received - lastAcked >= windowsize) ack(received);
      arm();
    };

    socket.on("message", (msg, from) => {
      if (finished) return;
      sources.add(from.address);
      if (opts.strictSource && from.address !== opts.host) return;
      let packet: TftpPacket;
      try {
        packet = decode(msg);
      } catch {
        return;
      }
      onPacket(packet, from);
    });
    socket.bind({ address: opts.localAddress ?? "127.0.0.1", port: 0 }, () => {
      const options = Object.entries(opts.options ?? {}).map(([name, value]) => ({ name, value }));
      send(
        encode({
          opcode: Opcode.RRQ,
          filename: opts.filename,
          mode: (opts.mode ?? "octet") as "octet",
          options,
        }),
        opts.port,
      );
      arm();
    });
  });
}

/** A bound UDP socket with a queue of received datagrams, for hand-made protocol steps. */
export class RawPeer {
  readonly socket: Socket;
  readonly #queue: { packet: TftpPacket; from: RemoteInfo }[] = [];
  readonly #pending = new Set<Promise<void>>();
  readonly #waiters: ((v: { packet: TftpPacket; from: RemoteInfo }) => void)[] = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("message", (msg, from) => {
      let packet: TftpPacket;
      try {
        packet = decode(msg);
      } catch {
        return;
      }
      const waiter = this.#waiters.shift();
      if (waiter) waiter({ packet, from });
      else this.#queue.push({ packet, from });
    });
  }

  static async open(address = "127.0.0.1"): Promise<RawPeer> {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind({ address, port: 0 }, resolve));
    return new RawPeer(socket);
  }

  send(packet: TftpPacket, port: number, host = "127.0.0.1"): void {
    const sent = new Promise<void>((resolve) => this.socket.send(encode(packet), port, host, () => resolve()));
    this.#pending.add(sent);
    void sent.then(() => this.#pending.delete(sent));
  }

  /** Next packet, or rejects after `timeoutMs`. */
  next(timeoutMs = 5000): Promise<{ packet: TftpPacket; from: RemoteInfo }> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(done);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new Error("no packet within " + timeoutMs + " ms"));
      }, timeoutMs);
      const done = (v: { packet: TftpPacket; from: RemoteInfo }) => {
        clearTimeout(timer);
        resolve(v);
      };
      this.#waiters.push(done);
    });
  }

  /** Closes once queued datagrams have left (dgram sends a tick later). */
  async close(): Promise<void> {
    await Promise.all([...this.#pending]);
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
