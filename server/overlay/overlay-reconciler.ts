import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import type { OverlayKey } from "./overlay-key.js";
import type { OverlaySource } from "./overlay-source.js";
import type { TunnelDriver } from "./tunnel-driver.js";
import { type PlannedTunnel, planTunnels, type SkippedGateway } from "./tunnel-plan.js";
import { matchesPlan, renderSetconf } from "./wg-text.js";

/**
 * Keeps the host's WireGuard interfaces equal to the plan computed from the cluster's Site and
 * GatewayPool resources: creates and updates `wg<port>` interfaces and their routes, follows a
 * gateway's key rotation, and removes the interface (and with it the routes) of a gateway that
 * left. One pass at a time; a change during a pass triggers one more. Health comes from the
 * handshake age that `wg` reports (docs/overlay.md).
 */

export interface OverlayReconcilerOptions {
  source: OverlaySource;
  driver: TunnelDriver;
  key: OverlayKey;
  site: string;
  log: Logger;
  metrics?: Registry;
  /** The gateways' mesh port (default 51820). */
  meshPort?: number;
  /** Source address for the routes (the appliance's internal IP as the gateways know it). */
  routeSource?: string;
  /** Health and drift check interval (default 15 s). */
  checkIntervalMs?: number;
  /** A handshake older than this is unhealthy (default 180 s: WireGuard re-keys every 120 s while traffic flows). */
  handshakeMaxAgeSeconds?: number;
  /** Wait after a failed pass before the next (default 5 s, doubled up to 60 s). */
  retryMs?: number;
  now?: () => number;
}

export interface TunnelStatus {
  interfaceName: string;
  gateway: PlannedTunnel["gateway"];
  endpoint?: string;
  allowedIPs: string[];
  /** Seconds since the last handshake; undefined: none yet. */
  handshakeAgeSeconds?: number;
  healthy: boolean;
  rxBytes: number;
  txBytes: number;
}

/** What the console's appliance page and /readyz show about the overlay. */
export interface OverlayStatus {
  state: "starting" | "waiting-for-resources" | "ok" | "degraded" | "error";
  site: string;
  publicKey: string;
  tunnels: TunnelStatus[];
  skipped: SkippedGateway[];
  warnings: string[];
  lastError?: string;
  lastReconciled?: string;
}

export class OverlayReconciler {
  readonly #o: OverlayReconcilerOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  #status: OverlayStatus;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = true;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #failures = 0;
  readonly #metrics: { tunnels: Gauge; handshakeAge: Gauge; errors: Counter; changes: Counter } | undefined;

  constructor(options: OverlayReconcilerOptions) {
    this.#o = options;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    this.#status = {
      state: "starting",
      site: options.site,
      publicKey: options.key.publicKey,
      tunnels: [],
      skipped: [],
      warnings: [],
    };
    this.#metrics = options.metrics === undefined ? undefined : overlayMetrics(options.metrics);
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#unsubscribe = this.#o.source.onChange(() => this.trigger());
    this.trigger();
  }

  /** Stops watching. The interfaces stay: the tunnel outlives a restart of the daemon. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#running;
  }

  status(): OverlayStatus {
    return this.#status;
  }

  /** Schedules a pass (coalesced with one in flight); resolves when the resulting pass is done. */
  trigger(): Promise<void> {
    if (this.#running !== undefined) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      await this.#pass();
    } while (this.#again && !this.#stopped);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const interval = this.#failures === 0 ? (this.#o.checkIntervalMs ?? 15_000) : this.#retryDelay();
    this.#timer = setTimeout(() => void this.trigger(), interval);
    this.#timer.unref();
  }

  #retryDelay(): number {
    return Math.min(60_000, (this.#o.retryMs ?? 5_000) * 2 ** Math.min(this.#failures - 1, 4));
  }

  async #pass(): Promise<void> {
    const resources = this.#o.source.snapshot();
    if (resources === undefined) {
      this.#status = { ...this.#status, state: "waiting-for-resources" };
      return;
    }
    const plan = planTunnels(resources, {
      site: this.#o.site,
      ...(this.#o.meshPort === undefined ? {} : { meshPort: this.#o.meshPort }),
    });
    try {
      const existing = await this.#o.driver.listTunnels();
      const wanted = new Set(plan.tunnels.map((t) => t.interfaceName));
      for (const tunnel of plan.tunnels) await this.#apply(tunnel);
      for (const name of existing) {
        if (wanted.has(name)) continue;
        await this.#o.driver.removeInterface(name);
        this.#metrics?.changes.inc({ change: "removed" });
        this.#log.info({ interface: name }, "overlay: gateway gone, tunnel and routes removed");
      }
      this.#metrics?.handshakeAge.reset();
      const tunnels = await Promise.all(plan.tunnels.map((t) => this.#health(t)));
      this.#failures = 0;
      this.#status = {
        state: tunnels.every((t) => t.healthy) ? "ok" : "degraded",
        site: this.#o.site,
        publicKey: this.#o.key.publicKey,
        tunnels,
        skipped: plan.skipped,
        warnings: plan.warnings,
        lastReconciled: new Date(this.#now()).toISOString(),
      };
      this.#metrics?.tunnels.set(tunnels.length);
    } catch (err) {
      this.#failures++;
      const message = err instanceof Error ? err.message : String(err);
      this.#metrics?.errors.inc();
      this.#log.warn({ err: message, failures: this.#failures }, "overlay: reconcile failed; retrying");
      this.#status = {
        ...this.#status,
        state: "error",
        skipped: plan.skipped,
        warnings: plan.warnings,
        lastError: message,
      };
    }
  }

  async #apply(tunnel: PlannedTunnel): Promise<void> {
    const shown = await this.#o.driver.show(tunnel.interfaceName);
    await this.#o.driver.ensureInterface(tunnel.interfaceName, tunnel.mtu);
    // Rewriting an unchanged configuration would drop the session and force a new handshake.
    if (shown === undefined || !matchesPlan(shown, tunnel, this.#o.key.publicKey)) {
      await this.#o.driver.setConfig(tunnel.interfaceName, renderSetconf(tunnel, this.#o.key.privateKey));
      this.#metrics?.changes.inc({ change: shown === undefined ? "created" : "updated" });
      this.#log.info(
        {
          interface: tunnel.interfaceName,
          gateway: tunnel.gateway.node,
          pool: tunnel.gateway.pool,
          endpoint: tunnel.peer.endpoint,
          allowedIPs: tunnel.peer.allowedIPs,
          peerKey: tunnel.peer.publicKey,
        },
        shown === undefined ? "overlay: tunnel created" : "overlay: tunnel updated",
      );
    }
    await this.#o.driver.setRoutes(tunnel.interfaceName, tunnel.peer.allowedIPs, this.#o.routeSource);
  }

  async #health(tunnel: PlannedTunnel): Promise<TunnelStatus> {
    const shown = await this.#o.driver.show(tunnel.interfaceName);
    const peer = shown?.peers.find((p) => p.publicKey === tunnel.peer.publicKey);
    const nowSeconds = Math.floor(this.#now() / 1000);
    const age = peer?.latestHandshake === undefined ? undefined : Math.max(0, nowSeconds - peer.latestHandshake);
    const healthy = age !== undefined && age <= (this.#o.handshakeMaxAgeSeconds ?? 180);
    this.#metrics?.handshakeAge.set({ interface: tunnel.interfaceName, gateway: tunnel.gateway.node }, age ?? -1);
    return {
      interfaceName: tunnel.interfaceName,
      gateway: tunnel.gateway,
      ...(tunnel.peer.endpoint === undefined ? {} : { endpoint: tunnel.peer.endpoint }),
      allowedIPs: tunnel.peer.allowedIPs,
      ...(age === undefined ? {} : { handshakeAgeSeconds: age }),
      healthy,
      rxBytes: peer?.rxBytes ?? 0,
      txBytes: peer?.txBytes ?? 0,
    };
  }
}

function overlayMetrics(registry: Registry) {
  return {
    tunnels: new Gauge({
      name: "metalman_overlay_tunnels",
      help: "WireGuard tunnels to gateways",
      registers: [registry],
    }),
    handshakeAge: new Gauge({
      name: "metalman_overlay_handshake_age_seconds",
      help: "Seconds since the last WireGuard handshake with a gateway (-1: none yet)",
      labelNames: ["interface", "gateway"],
      registers: [registry],
    }),
    errors: new Counter({
      name: "metalman_overlay_reconcile_errors_total",
      help: "Overlay reconcile passes that failed",
      registers: [registry],
    }),
    changes: new Counter({
      name: "metalman_overlay_tunnel_changes_total",
      help: "Overlay tunnels created, updated or removed",
      labelNames: ["change"],
      registers: [registry],
    }),
  };
}
