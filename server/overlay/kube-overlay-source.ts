import type { Logger } from "pino";
import type { KubeApi } from "../cluster/kube-api.js";
import { type KubeObject, Reflector } from "../cluster/reflector.js";
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
 * The overlay's resources from the upstream cluster: one list+watch reflector per kind of
 * `net.unbounded-cloud.io/v1alpha1` object the plan reads (all cluster-scoped; RBAC: get, list,
 * watch on those four only, docs/overlay.md). The snapshot appears once all four have listed,
 * so a first plan never sees a pool without its assignment and withdraws a working tunnel.
 * While the API is unreachable the last snapshot stays: tunnels keep working offline.
 */

const KINDS = {
  sites: "sites",
  gatewayPools: "gatewaypools",
  assignments: "sitegatewaypoolassignments",
  peerings: "sitepeerings",
} as const;

type Key = keyof typeof KINDS;

export interface KubeOverlaySourceOptions {
  api: KubeApi;
  log: Pick<Logger, "warn" | "debug" | "info">;
}

export class KubeOverlaySource implements OverlaySource {
  readonly #reflectors: Reflector[] = [];
  readonly #objects = new Map<Key, Map<string, KubeObject>>();
  readonly #listeners = new Set<() => void>();

  constructor(options: KubeOverlaySourceOptions) {
    for (const key of Object.keys(KINDS) as Key[]) {
      const reflector = new Reflector(
        { api: options.api, path: `/apis/${NET_API_GROUP}/${NET_API_VERSION}/${KINDS[key]}`, log: options.log },
        {
          onList: (items) => {
            this.#objects.set(key, new Map(items.map((o) => [o.metadata.name, o])));
            this.#changed();
          },
          onEvent: (type, object) => {
            const objects = this.#objects.get(key);
            if (objects === undefined) return;
            if (type === "DELETED") objects.delete(object.metadata.name);
            else objects.set(object.metadata.name, object);
            this.#changed();
          },
        },
      );
      this.#reflectors.push(reflector);
    }
  }

  async start(): Promise<void> {
    for (const reflector of this.#reflectors) reflector.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.#reflectors.map((r) => r.stop()));
  }

  snapshot(): OverlayResources | undefined {
    if (this.#objects.size < this.#reflectors.length) return undefined;
    const list = <T>(key: Key): T[] => [...(this.#objects.get(key)?.values() ?? [])] as unknown as T[];
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
