/**
 * Cluster facts for templates and `/attest` (spec §10.1, §10.2): the server version (`/version`),
 * the kube-dns ClusterIP, and the API server URL and CA from `kube-public/cluster-info`, which
 * is watched (every replica, not only the leader: upstream's quirk left followers with stale
 * templates). Unlike upstream, an unreachable API is not fatal: the last-known facts are used.
 */
import type { Logger } from "pino";
import { parse as parseYaml } from "yaml";
import type { KubeApi } from "./kube-api.js";
import type { ClusterFacts } from "./last-known.js";
import { Reflector } from "./reflector.js";

/** Reads `kubeconfig` of cluster-info: the first cluster's server and certificate-authority-data. */
export function parseClusterInfo(kubeconfig: string): { server?: string; caCertBase64?: string } {
  try {
    const doc = parseYaml(kubeconfig) as { clusters?: Array<{ cluster?: Record<string, string> }> };
    const cluster = doc?.clusters?.[0]?.cluster ?? {};
    // certificate-authority-data is already base64 of the PEM: what AgentConfig's CaCertBase64 carries.
    return { server: cluster.server, caCertBase64: cluster["certificate-authority-data"] };
  } catch {
    return {};
  }
}

export class ClusterFactsWatcher {
  readonly #api: KubeApi;
  readonly #log: Pick<Logger, "warn" | "info" | "debug">;
  readonly #onFacts: (facts: ClusterFacts) => void;
  readonly #reflector: Reflector;
  readonly #apiserverOverride?: string;

  constructor(o: {
    api: KubeApi;
    log: Pick<Logger, "warn" | "info" | "debug">;
    onFacts: (facts: ClusterFacts) => void;
    apiserverUrl?: string;
  }) {
    this.#api = o.api;
    this.#log = o.log;
    this.#onFacts = o.onFacts;
    this.#apiserverOverride = o.apiserverUrl;
    const take = (object: Record<string, unknown>) => {
      const kubeconfig = (object.data as Record<string, string> | undefined)?.kubeconfig;
      if (typeof kubeconfig !== "string") return;
      const info = parseClusterInfo(kubeconfig);
      this.#onFacts({
        apiserverUrl: this.#apiserverOverride ?? info.server,
        ...(info.caCertBase64 ? { caCertBase64: info.caCertBase64 } : {}),
      });
    };
    this.#reflector = new Reflector(
      {
        api: o.api,
        path: "/api/v1/namespaces/kube-public/configmaps",
        fieldSelector: "metadata.name=cluster-info",
        log: o.log,
      },
      {
        onList: (items) => {
          for (const item of items) take(item);
        },
        onEvent: (type, object) => {
          if (type !== "DELETED") take(object);
        },
      },
    );
  }

  /** One-shot facts (version, kube-dns), then the cluster-info watch. Errors are logged, never fatal. */
  async start(): Promise<void> {
    const facts: ClusterFacts = {};
    try {
      facts.version = (await this.#api.request<{ gitVersion?: string }>("GET", "/version")).gitVersion;
    } catch (err) {
      this.#log.warn({ error: (err as Error).message }, "cluster facts: /version failed; using the last-known version");
    }
    try {
      const svc = await this.#api.request<{ spec?: { clusterIP?: string } }>(
        "GET",
        "/api/v1/namespaces/kube-system/services/kube-dns",
      );
      if (svc.spec?.clusterIP) facts.clusterDNS = svc.spec.clusterIP;
    } catch (err) {
      this.#log.warn(
        { error: (err as Error).message },
        "cluster facts: kube-system/kube-dns not readable; using the last-known cluster DNS",
      );
    }
    if (Object.keys(facts).length > 0) this.#onFacts(facts);
    this.#reflector.start();
  }

  stop(): Promise<void> {
    return this.#reflector.stop();
  }
}
