import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { OverlayKeyPublisher } from "./key-publisher.js";
import { loadOrCreateOverlayKey } from "./overlay-key.js";
import { OverlayReconciler, type OverlayStatus } from "./overlay-reconciler.js";
import type { OverlaySource } from "./overlay-source.js";
import type { TunnelDriver } from "./tunnel-driver.js";

export interface OverlayServiceOptions {
  site: string;
  /** `<stateDir>/overlay/wireguard.key`: made at first start, 0600, never leaves the box. */
  keyFile: string;
  /** The Node name that stands for the appliance (default `metalman-<site>`). */
  nodeName: string;
  /** The appliance's address as gateways route it; also the routes' source address. */
  internalIP: string;
  source: OverlaySource & { start?(): Promise<void>; stop?(): Promise<void> };
  publisher: OverlayKeyPublisher;
  driver: TunnelDriver;
  log: Logger;
  metrics?: Registry;
  /** Wait between attempts to publish the key while the uplink is down (default 10 s). */
  publishRetryMs?: number;
}

/**
 * The overlay room put together (cluster mode only; standalone configures nothing): the key,
 * its publication on the appliance's Node, the resource source and the reconciler. Tunnels are
 * reconciled even while the key cannot be published yet (gateways that know it keep working).
 */
export class OverlayService {
  readonly #o: OverlayServiceOptions;
  #reconciler: OverlayReconciler | undefined;
  #published = false;
  #stopped = false;
  #retry: NodeJS.Timeout | undefined;

  constructor(options: OverlayServiceOptions) {
    this.#o = options;
  }

  async start(): Promise<void> {
    const key = await loadOrCreateOverlayKey(this.#o.keyFile);
    this.#o.log.info({ publicKey: key.publicKey, node: this.#o.nodeName }, "overlay: WireGuard key ready");
    this.#reconciler = new OverlayReconciler({
      source: this.#o.source,
      driver: this.#o.driver,
      key,
      site: this.#o.site,
      log: this.#o.log,
      routeSource: this.#o.internalIP,
      ...(this.#o.metrics === undefined ? {} : { metrics: this.#o.metrics }),
    });
    await this.#o.source.start?.();
    this.#reconciler.start();
    void this.#publish(key.publicKey);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    await this.#reconciler?.stop();
    await this.#o.source.stop?.();
  }

  status(): (OverlayStatus & { keyPublished: boolean }) | undefined {
    const status = this.#reconciler?.status();
    return status === undefined ? undefined : { ...status, keyPublished: this.#published };
  }

  async #publish(publicKey: string): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#o.publisher.publish({
        nodeName: this.#o.nodeName,
        site: this.#o.site,
        publicKey,
        internalIP: this.#o.internalIP,
      });
      this.#published = true;
      this.#o.log.info({ node: this.#o.nodeName }, "overlay: public key published on the appliance's Node");
    } catch (err) {
      this.#o.log.warn(
        { err: err instanceof Error ? err.message : String(err) },
        "overlay: could not publish the key; retrying",
      );
      this.#retry = setTimeout(() => void this.#publish(publicKey), this.#o.publishRetryMs ?? 10_000);
      this.#retry.unref();
    }
  }
}
