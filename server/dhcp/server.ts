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
import type { DhcpTransport, ReceivedDatagram } from "./transport.js";

export interface DhcpServerOptions {
  transport: DhcpTransport;
  backend: MachineBackend;
  discovery: DiscoveryStore;
  images: ImageStore;
  events: BootEventBus;
  log: Logger;
  metrics: Registry;
  mode: DhcpMode;
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
}

/**
 * DHCPv4 server: transport → decode → policy (handler.ts) → encode → transport. Never throws
 * on wire input: malformed datagrams are counted and logged at most once per source per interval.
 */
export class DhcpServer {
  readonly #options: DhcpServerOptions;
  readonly #deps: DhcpHandlerDeps;
  readonly #metrics: DhcpMetrics;
  readonly #log: Logger;
  readonly #warnOnce: (key: string, fields: Record<string, unknown>, message: string) => boolean;
  #state: "new" | "running" | "closed" = "new";

  constructor(options: DhcpServerOptions) {
    const ip = parseIpv4(options.serverIp);
    if (ip === undefined || ip === 0 || ip === 0xffffffff) {
      throw new Error(`DHCP server IP must be a unicast IPv4 address, got ${JSON.stringify(options.serverIp)}`);
    }
    if (options.mode !== "relay" && options.mode !== "interface") {
      throw new Error(`DHCP mode must be "relay" or "interface", got ${JSON.stringify(options.mode)}`);
    }
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
    };
  }

  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error(`DHCP server already ${this.#state}`);
    this.#state = "running";
    try {
      await this.#options.transport.start((datagram) => this.#onDatagram(datagram));
    } catch (err) {
      this.#state = "closed";
      throw err;
    }
    this.#log.info(
      { mode: this.#options.mode, serverIp: this.#options.serverIp, transport: this.#options.transport.description },
      "DHCP server listening",
    );
  }

  async close(): Promise<void> {
    if (this.#state === "closed") return;
    const wasRunning = this.#state === "running";
    this.#state = "closed";
    if (wasRunning) await this.#options.transport.close();
  }

  #onDatagram(datagram: ReceivedDatagram): void {
    if (this.#state !== "running") return;
    const started = process.hrtime.bigint();
    try {
      this.#handle(datagram, started);
    } catch (err) {
      // A fault in a store or in our own code: one packet is lost, the server keeps going.
      this.#metrics.errors.inc("handle");
      this.#warnOnce(`error:${datagram.address}`, { err, source: datagram.address }, "DHCP packet handling failed");
    }
  }

  #handle(datagram: ReceivedDatagram, started: bigint): void {
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
    const outcome = handleDhcpRequest(
      request,
      {
        mode: this.#options.mode,
        address: datagram.address,
        port: datagram.port,
        interfaceName: datagram.interfaceName ?? this.#options.interfaceName,
      },
      this.#deps,
    );
    this.#account(outcome);
    const reply = outcome.reply;
    if (reply) {
      const bytes = encode(reply.packet);
      const type = reply.type;
      this.#options.transport.send(bytes, reply.address, reply.port).then(
        () => {
          this.#metrics.replies.inc(type);
          this.#metrics.duration.observe(Number(process.hrtime.bigint() - started) / 1e9);
        },
        (err: unknown) => {
          this.#metrics.errors.inc("send");
          this.#warnOnce(
            `send:${reply.address}`,
            { err, destination: `${reply.address}:${reply.port}`, type },
            "sending DHCP reply failed",
          );
        },
      );
    }
  }

  #account(outcome: DhcpOutcome): void {
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
