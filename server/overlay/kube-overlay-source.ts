import { CustomObjectsApi, type KubeConfig, type KubernetesObject, makeInformer } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { OverlaySource } from "./overlay-source.js";
import {
  type GatewayPool,
  NET_API_GROUP,
  NET_API_VERSION,
  type OverlayResources,
  type Site,
  type SiteGatewayPoolAssignment,
  type SitePeering,
} from "./resources.js";

/**
 * The overlay's resources from the upstream cluster: one list+watch informer per kind of
 * `net.unbounded-cloud.io/v1alpha1` object the plan reads (all cluster-scoped; RBAC: get, list,
 * watch on those four resources only, deploy/rbac). The snapshot appears once all four have listed,
 * so the first plan never sees a pool without its assignment and withdraws a working tunnel.
 */

const KINDS = {
  sites: "sites",
  gatewayPools: "gatewaypools",
  assignments: "sitegatewaypoolassignments",
  peerings: "sitepeerings",
} as const;

type Key = keyof typeof KINDS;

export interface KubeOverlaySourceOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  /** Wait before an informer that failed is started again (default 5 s). */
  restartMs?: number;
}

export class KubeOverlaySource implements OverlaySource {
  readonly #informers: { key: Key; informer: ReturnType<typeof makeInformer<KubernetesObject>> }[] = [];
  readonly #synced = new Set<Key>();
  readonly #listeners = new Set<() => void>();
  readonly #log: Logger;
  readonly #restartMs: number;
  #stopped = false;

  constructor(options: KubeOverlaySourceOptions) {
    this.#log = options.log;
    this.#restartMs = options.restartMs ?? 5_000;
    const api = options.kubeConfig.makeApiClient(CustomObjectsApi);
    for (const key of Object.keys(KINDS) as Key[]) {
      const plural = KINDS[key];
      const informer = makeInformer<KubernetesObject>(
        options.kubeConfig,
        `/apis/${NET_API_GROUP}/${NET_API_VERSION}/${plural}`,
        () => api.listClusterCustomObject({ group: NET_API_GROUP, version: NET_API_VERSION, plural }),
      );
      const changed = () => this.#changed();
      informer.on("add", changed);
      informer.on("update", changed);
      informer.on("delete", changed);
      informer.on("connect", () => {
        this.#synced.add(key);
        this.#changed();
      });
      informer.on("error", (err: unknown) => {
        if (this.#stopped) return;
        this.#log.warn({ err: String(err), resource: plural }, "overlay: watch failed; restarting");
        setTimeout(() => {
          if (!this.#stopped) void informer.start().catch(() => undefined);
        }, this.#restartMs).unref();
      });
      this.#informers.push({ key, informer });
    }
  }

  async start(): Promise<void> {
    this.#stopped = false;
    await Promise.all(this.#informers.map(({ informer }) => informer.start()));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#informers.map(({ informer }) => informer.stop()));
  }

  snapshot(): OverlayResources | undefined {
    if (this.#synced.size < this.#informers.length) return undefined;
    const list = <T>(key: Key): T[] => (this.#informers.find((i) => i.key === key)?.informer.list() ?? []) as T[];
    return {
      sites: list<Site>("sites"),
      gatewayPools: list<GatewayPool>("gatewayPools"),
      assignments: list<SiteGatewayPoolAssignment>("assignments"),
      peerings: list<SitePeering>("peerings"),
    };
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    for (const listener of [...this.#listeners]) listener();
  }
}
