import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { BootEventBus } from "../events/boot-events.js";
import type { ImageStore } from "../images/image-store.js";
import type { DiscoveryStore, MachineBackend } from "../inventory/backend.js";
import { parseIpv4 } from "../util/ipv4.js";
import { RateLimiter, rateLimitedLog } from "../util/rate-limiter.js";
import { encode, tryDecode } from "./codec.js";
import { type DhcpHandlerDeps, type DhcpMode, type DhcpOutcome, handleDhcpRequest } from "./handler.js";
import { DhcpMetrics } from "./metrics.js";
import { messageTypeName } from "./options.js";
import { handleProxyRequest, type ProxyOutcome } from "./proxy-handler.js";
import { classify, PriorityReceiveQueue, peekMessageType, type ReceiveQueueLimits } from "./receive-queue.js";
import { ReplyOptionCache } from "./reply-options.js";
import type { DhcpTransport, ReceivedDatagram } from "./transport.js";

/**
 * relay / interface: we are the address server (handler.ts). proxy: the site's DHCP server hands
 * out addresses and we add boot information for PXE clients of known Machines (proxy-handler.ts).
 */
export type DhcpServerMode = DhcpMode | "proxy";

export const DHCP_SERVER_MODES: readonly DhcpServerMode[] = ["relay", "interface", "proxy"];

/** Which of our sockets a datagram came in on: DHCP (:67) or the PXE boot server (:4011, proxy mode). */
type Via = "dhcp" | "boot-server";

/**
 * Datagrams handled per event-loop turn. Small on purpose: each turn the loop also reads up to
 * 32 (dgram) or 64 (native socket) datagrams per socket, so reading outpaces handling and the
 * kernel buffer, which drops blindly, stays empty; shedding then happens in our queue, by type.
 */
const DEFAULT_BATCH = 8;

interface QueuedDatagram {
  datagram: ReceivedDatagram;
  via: Via;
  /** performance.now() at arrival, for the handle-duration histogram (includes queueing); a number, not a BigInt to allocate. */
  arrived: number;
}

export interface DhcpServerOptions {
  transport: DhcpTransport;
  backend: MachineBackend;
  discovery: DiscoveryStore;
  images: ImageStore;
  events: BootEventBus;
  log: Logger;
  metrics: Registry;
  mode: DhcpServerMode;
  /** Proxy mode: the PXE boot server socket (:4011); clients unicast their REQUEST there. */
  bootServerTransport?: DhcpTransport;
  /** Advertised as option 54, siaddr and option 66. Must be a unicast address (not 0.0.0.0, spec §12 item 25). */
  serverIp: string;
  /** Base URL for HTTP boot files. */
  serveUrl: string;
  /** Interface mode: the NIC, reported in events when the transport does not say. */
  interfaceName?: string;
  leaseSeconds?: number;
  /** Reply port for relayed packets (RFC 2131: 67); tests use an unprivileged one. */
  relayPort?: number;
  /** Reply port for clients (RFC 2131: 68). */
  clientPort?: number;
  /** Interval for per-source log suppression; default 60 s. */
  logIntervalMs?: number;
  /** Overload policy (receive-queue.ts): queue bounds and datagrams handled per event-loop turn (default 8). */
  receiveQueue?: ReceiveQueueLimits & { batch?: number };
  /**
   * Cluster mode (docs/cluster.md "Leader duties"): whether this replica answers broadcast DHCP in
   * interface and proxy mode. Two replicas on one L2 segment would both offer; only the leader does.
   * Unicast renewals (ciaddr set), the proxy boot server (:4011) and relay mode are answered by every
   * replica. Absent: always (standalone).
   */
  answersBroadcast?: () => boolean;
}

/**
 * DHCPv4 server: transport → receive queue → decode → policy (handler.ts, or proxy-handler.ts in
 * proxy mode) → encode → transport. Never throws on wire input: malformed datagrams are counted
 * and logged at most once per source per interval.
 *
 * Datagrams are not handled in the socket callback: they go into a bounded queue that is drained
 * a batch per event-loop turn, started exchanges (REQUEST) first, so under a flood the event loop
 * keeps emptying the kernel buffer and sheds new DISCOVERs instead of REQUESTs (receive-queue.ts).
 */
export class DhcpServer {
  readonly #options: DhcpServerOptions;
  readonly #deps: DhcpHandlerDeps;
  readonly #metrics: DhcpMetrics;
  readonly #log: Logger;
  readonly #warnOnce: (key: string, fields: Record<string, unknown>, message: string) => boolean;
  readonly #queue: PriorityReceiveQueue<QueuedDatagram>;
  readonly #batch: number;
  #drainScheduled = false;
  #state: "new" | "running" | "closed" = "new";

  constructor(options: DhcpServerOptions) {
    const ip = parseIpv4(options.serverIp);
    if (ip === undefined || ip === 0 || ip === 0xffffffff) {
      throw new Error(`DHCP server IP must be a unicast IPv4 address, got ${JSON.stringify(options.serverIp)}`);
    }
    if (!DHCP_SERVER_MODES.includes(options.mode)) {
      throw new Error(`DHCP mode must be "relay", "interface" or "proxy", got ${JSON.stringify(options.mode)}`);
    }
    this.#queue = new PriorityReceiveQueue(options.receiveQueue);
    this.#batch = Math.max(1, options.receiveQueue?.batch ?? DEFAULT_BATCH);
    this.#options = options;
    this.#log = options.log.child({ component: "dhcp" });
    this.#metrics = new DhcpMetrics(options.metrics);
    this.#warnOnce = rateLimitedLog<Record<string, unknown>>(
      new RateLimiter({ intervalMs: options.logIntervalMs ?? 60_000 }),
      (fields, message) => this.#log.warn(fields, message),
    );
    this.#deps = {
      backend: options.backend,
      images: options.images,
      discovery: options.discovery,
      serverIp: options.serverIp,
      serveUrl: options.serveUrl,
      leaseSeconds: options.leaseSeconds,
      relayPort: options.relayPort,
      clientPort: options.clientPort,
      replyOptions: new ReplyOptionCache(),
    };
  }

  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error(`DHCP server already ${this.#state}`);
    this.#state = "running";
    const { transport, bootServerTransport } = this.#options;
    try {
      await transport.start((datagram) => this.#onDatagram(datagram, "dhcp"));
      if (bootServerTransport) {
        await bootServerTransport
          .start((datagram) => this.#onDatagram(datagram, "boot-server"))
          .catch(async (err) => {
            await transport.close();
            throw err;
          });
      }
    } catch (err) {
      this.#state = "closed";
      throw err;
    }
    this.#log.info(
      {
        mode: this.#options.mode,
        serverIp: this.#options.serverIp,
        transport: transport.description,
        bootServer: bootServerTransport?.description,
      },
      "DHCP server listening",
    );
  }

  async close(): Promise<void> {
    if (this.#state === "closed") return;
    const wasRunning = this.#state === "running";
    this.#state = "closed";
    this.#queue.clear();
    if (wasRunning) {
      await this.#options.transport.close();
      await this.#options.bootServerTransport?.close();
    }
  }

  #onDatagram(datagram: ReceivedDatagram, via: Via): void {
    if (this.#state !== "running") return;
    const shed = this.#queue.push({ datagram, via, arrived: performance.now() }, classify(datagram.data));
    if (shed) this.#metrics.shed.inc(messageTypeName(peekMessageType(shed.item.datagram.data)) ?? "other");
    if (!this.#drainScheduled) {
      this.#drainScheduled = true;
      setImmediate(() => this.#drain());
    }
  }

  /**
   * One batch per turn: between batches the event loop polls the sockets again, so the kernel
   * buffer keeps being emptied into our queue, where the priority applies.
   */
  #drain(): void {
    this.#drainScheduled = false;
    for (let i = 0; i < this.#batch && this.#state === "running"; i++) {
      const next = this.#queue.shift();
      if (!next) return;
      this.#process(next);
    }
    if (this.#queue.size > 0 && this.#state === "running") {
      this.#drainScheduled = true;
      setImmediate(() => this.#drain());
    }
  }

  #process({ datagram, via, arrived }: QueuedDatagram): void {
    try {
      this.#handle(datagram, via, arrived);
    } catch (err) {
      // A fault in a store or in our own code: one packet is lost, the server keeps going.
      this.#metrics.errors.inc("handle");
      this.#warnOnce(`error:${datagram.address}`, { err, source: datagram.address }, "DHCP packet handling failed");
    }
  }

  #handle(datagram: ReceivedDatagram, via: Via, started: number): void {
    const decoded = tryDecode(datagram.data);
    if (!decoded.ok) {
      this.#metrics.malformed.inc();
      this.#warnOnce(
        `malformed:${datagram.address}`,
        {
          source: datagram.address,
          port: datagram.port,
          bytes: datagram.data.length,
          reason: decoded.reason,
          error: decoded.message,
        },
        "dropping malformed DHCP datagram",
      );
      return;
    }
    const request = decoded.packet;
    const interfaceName = datagram.interfaceName ?? this.#options.interfaceName;
    const mode = this.#options.mode;
    const answersBroadcast = this.#options.answersBroadcast;
    if (
      answersBroadcast !== undefined &&
      mode !== "relay" &&
      via !== "boot-server" &&
      request.ciaddr === "0.0.0.0" &&
      request.giaddr === "0.0.0.0" &&
      !answersBroadcast()
    ) {
      // The leader answers this one; counted so a follower's silence is visible in /metrics.
      this.#metrics.ignored.inc("not-leader");
      return;
    }
    const outcome: DhcpOutcome | ProxyOutcome =
      mode === "proxy"
        ? handleProxyRequest(
            request,
            { address: datagram.address, port: datagram.port, interfaceName, via },
            this.#deps,
          )
        : handleDhcpRequest(
            request,
            { mode, address: datagram.address, port: datagram.port, interfaceName },
            this.#deps,
          );
    this.#account(outcome);
    const reply = outcome.reply;
    if (reply) {
      const bytes = encode(reply.packet);
      const type = reply.type;
      // A reply leaves through the socket the request came in on (the boot server answers from :4011).
      const transport =
        via === "boot-server" && this.#options.bootServerTransport
          ? this.#options.bootServerTransport
          : this.#options.transport;
      const trySend = transport.trySend;
      if (trySend) {
        // The native sockets take the datagram at once: no promise per reply.
        const error = trySend(bytes, reply.address, reply.port);
        if (error) this.#sendFailed(error, reply.address, reply.port, type);
        else this.#sent(type, started);
        return;
      }
      transport.send(bytes, reply.address, reply.port).then(
        () => this.#sent(type, started),
        (err: unknown) => this.#sendFailed(err, reply.address, reply.port, type),
      );
    }
  }

  #sent(type: string, started: number): void {
    this.#metrics.replies.inc(type);
    this.#metrics.duration.observe((performance.now() - started) / 1e3);
  }

  #sendFailed(err: unknown, address: string, port: number, type: string): void {
    this.#metrics.errors.inc("send");
    this.#warnOnce(`send:${address}`, { err, destination: `${address}:${port}`, type }, "sending DHCP reply failed");
  }

  #account(outcome: DhcpOutcome | ProxyOutcome): void {
    this.#metrics.received.inc(outcome.requestType ?? "none");
    if (outcome.ignoredReason) this.#metrics.ignored.inc(outcome.ignoredReason);
    for (const event of outcome.events) this.#options.events.emit(event);
    if (outcome.warning) this.#warnOnce(outcome.warning.key, outcome.warning.fields ?? {}, outcome.warning.message);
    if (this.#log.isLevelEnabled("debug")) {
      const reply = outcome.reply;
      this.#log.debug(
        {
          type: outcome.requestType,
          mac: outcome.events[0]?.mac,
          ignored: outcome.ignoredReason,
          reply: reply ? `${reply.type} to ${reply.address}:${reply.port}` : undefined,
        },
        "DHCP packet",
      );
    }
  }
}
