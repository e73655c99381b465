/**
 * Cluster mode composed (docs/cluster.md): the Kubernetes client, the Machine backend with its
 * offline state, the Lease election, Events from the bus, cluster facts and the TokenRequest
 * source. serve-pxe calls `startClusterMode` when --kubeconfig or --in-cluster is given and
 * hands the parts to the rooms through their interfaces.
 */
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { BootEventBus } from "../events/boot-events.js";
import { ClusterFactsWatcher } from "./cluster-facts.js";
import { HttpKubeApi, type KubeApi, loadKubeConfig } from "./kube-api.js";
import { KubeMachineBackend } from "./kube-backend.js";
import { subscribeKubeEvents } from "./kube-events.js";
import { LeaderElector } from "./leader-election.js";
import { TokenRequestSource } from "./token-request.js";
import type { UpstreamStatus } from "./upstream-status.js";

export interface ClusterModeOptions {
  kubeconfig?: string;
  inCluster: boolean;
  site: string;
  stateDir: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** METALMAN_APISERVER_URL. */
  apiserverUrl?: string;
  log: Logger;
  metrics: Registry;
  events: BootEventBus;
  /** Events flush interval (tests shorten it). */
  eventFlushMs?: number;
}

export interface ClusterMode {
  backend: KubeMachineBackend;
  /** The API client, for other rooms that read the cluster (the overlay, issue 12). */
  api: KubeApi;
  leader: LeaderElector;
  tokens: TokenRequestSource;
  /** The console's and /readyz's view (docs/cluster.md "Upstream status"). */
  upstream(): UpstreamStatus;
  flushEvents(): Promise<void>;
  close(): Promise<void>;
}

export async function startClusterMode(o: ClusterModeOptions): Promise<ClusterMode> {
  const log = o.log.child({ component: "cluster" });
  const api = new HttpKubeApi(await loadKubeConfig({ kubeconfig: o.kubeconfig, inCluster: o.inCluster }));
  const backend = new KubeMachineBackend({ api, site: o.site, stateDir: o.stateDir, log: o.log, metrics: o.metrics });
  await backend.start();
  const facts = new ClusterFactsWatcher({
    api,
    log,
    apiserverUrl: o.apiserverUrl,
    onFacts: (f) => backend.setFacts(f),
  });
  await facts.start();
  const leader = new LeaderElector({
    api,
    site: o.site,
    log,
    leaseDurationMs: o.leaseDurationMs,
    renewDeadlineMs: o.renewDeadlineMs,
    retryPeriodMs: o.retryPeriodMs,
  });
  leader.start();
  const sink = subscribeKubeEvents({
    api,
    bus: o.events,
    log,
    instance: leader.identity,
    flushMs: o.eventFlushMs,
    uidOf: (name) => backend.get(name)?.metadata.uid,
  });
  return {
    backend,
    api,
    leader,
    tokens: new TokenRequestSource({ api }),
    upstream: () => ({ ...backend.upstream(), leader: leader.status() }),
    flushEvents: () => sink.flush(),
    close: async () => {
      await sink.stop();
      await leader.stop();
      await facts.stop();
      await backend.close();
      api.close();
    },
  };
}
