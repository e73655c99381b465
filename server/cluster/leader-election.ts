/**
 * Leader election on a `coordination.k8s.io/v1` Lease (spec §1.2): `unbounded-kube/metalman`
 * or `metalman-<site>`, with client-go's timing rules. A candidate takes the Lease when it is
 * free or its holder has not renewed within `leaseDuration` (as observed on our own clock, never
 * by comparing another machine's timestamps); the leader renews every `retryPeriod` and steps
 * down when it could not renew for `renewDeadline`. Every write carries the resourceVersion
 * read, so two candidates never both win (409). `stop()` releases the Lease, so a successor
 * takes over at once instead of after a lease duration.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { KubeApi } from "./kube-api.js";
import { statusOf } from "./kube-api.js";
import type { LeaderStatus, LeadershipSignal } from "./upstream-status.js";

export const LEASE_NAMESPACE = "unbounded-kube";

export function leaseName(site: string): string {
  return site === "" ? "metalman" : `metalman-${site}`;
}

export interface LeaderElectorOptions {
  api: KubeApi;
  site: string;
  log: Pick<Logger, "info" | "warn" | "debug">;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  identity?: string;
  namespace?: string;
}

interface LeaseObject {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

const microTime = (d: Date) => d.toISOString().replace("Z", "000Z");

export class LeaderElector implements LeadershipSignal {
  readonly identity: string;
  readonly #o: LeaderElectorOptions;
  readonly #path: string;
  readonly #listeners = new Set<(leader: boolean) => void>();
  #leader = false;
  #holder: string | undefined;
  #since: string | undefined;
  #renewedAt: number | undefined;
  /** The last Lease record we saw and when (our clock) it last changed. */
  #observed: { key: string; at: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(options: LeaderElectorOptions) {
    this.#o = options;
    this.identity = options.identity ?? `${hostname()}_${randomUUID()}`;
    const ns = options.namespace ?? LEASE_NAMESPACE;
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${leaseName(options.site)}`;
  }

  isLeader(): boolean {
    return this.#leader;
  }

  /**
   * Broadcast DHCP (docs/cluster.md "Leader duties"): the leader; while the API server is down
   * (nobody can renew) the replica that held the Lease last; before any holder is seen, everyone.
   * Called per broadcast packet: reads two fields, allocates nothing.
   */
  answersBroadcast(): boolean {
    return this.#leader || this.#holder === undefined || this.#holder === this.identity;
  }

  onChange(listener: (isLeader: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  status(): LeaderStatus {
    return {
      lease: `${this.#o.namespace ?? LEASE_NAMESPACE}/${leaseName(this.#o.site)}`,
      identity: this.identity,
      isLeader: this.#leader,
      holder: this.#holder,
      since: this.#since,
      renewedAt: this.#renewedAt ? new Date(this.#renewedAt).toISOString() : undefined,
    };
  }

  start(): void {
    const tick = async () => {
      if (this.#stopped) return;
      this.#running = this.#tryAcquireOrRenew().catch((err: unknown) => {
        this.#o.log.debug({ err }, "leader election: lease update failed");
      });
      await this.#running;
      if (this.#leader && this.#renewedAt !== undefined && Date.now() - this.#renewedAt > this.#o.renewDeadlineMs) {
        this.#o.log.warn(
          { lease: this.#path },
          "leader election: could not renew within the renew deadline; stepping down",
        );
        this.#setLeader(false);
      }
      if (!this.#stopped) {
        // client-go: the leader renews every retry period; candidates retry with jitter.
        const wait = this.#leader ? this.#o.retryPeriodMs : this.#o.retryPeriodMs * (1 + Math.random() * 0.2);
        this.#timer = setTimeout(() => void tick(), wait);
      }
    };
    void tick();
  }

  /** Stops campaigning; a leader releases the Lease (holder cleared) so another replica takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
    if (!this.#leader) return;
    this.#setLeader(false);
    try {
      const lease = await this.#o.api.request<LeaseObject>("GET", this.#path);
      if (lease.spec?.holderIdentity !== this.identity) return;
      await this.#o.api.request("PUT", this.#path, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1, renewTime: microTime(new Date()) },
      });
    } catch (err) {
      this.#o.log.warn({ err }, "leader election: could not release the lease");
    }
  }

  async #tryAcquireOrRenew(): Promise<void> {
    const now = new Date();
    const spec = {
      holderIdentity: this.identity,
      leaseDurationSeconds: Math.max(1, Math.round(this.#o.leaseDurationMs / 1000)),
      renewTime: microTime(now),
    };
    let lease: LeaseObject;
    try {
      lease = await this.#o.api.request<LeaseObject>("GET", this.#path);
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      const ns = this.#o.namespace ?? LEASE_NAMESPACE;
      await this.#o.api.request("POST", `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`, {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: leaseName(this.#o.site), namespace: ns },
        spec: { ...spec, acquireTime: spec.renewTime, leaseTransitions: 0 },
      });
      this.#won(Date.now());
      return;
    }
    const holder = lease.spec?.holderIdentity ?? "";
    this.#holder = holder || undefined;
    const key = JSON.stringify(lease.spec ?? {});
    if (this.#observed?.key !== key) this.#observed = { key, at: Date.now() };
    const duration = (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
    const expired = holder === "" || Date.now() - this.#observed.at > duration;
    if (holder !== this.identity && !expired) {
      if (this.#leader) this.#setLeader(false);
      return;
    }
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === this.identity ? 0 : 1);
    await this.#o.api.request("PUT", this.#path, {
      ...lease,
      spec: {
        ...spec,
        acquireTime: holder === this.identity ? (lease.spec?.acquireTime ?? spec.renewTime) : spec.renewTime,
        leaseTransitions: transitions,
      },
    });
    this.#won(Date.now());
  }

  #won(at: number): void {
    this.#renewedAt = at;
    this.#holder = this.identity;
    if (!this.#leader) {
      this.#since = new Date(at).toISOString();
      this.#o.log.info({ lease: this.#path, identity: this.identity }, "leader election: became the leader");
      this.#setLeader(true);
    }
  }

  #setLeader(leader: boolean): void {
    if (this.#leader === leader) return;
    this.#leader = leader;
    if (!leader) this.#since = undefined;
    for (const l of [...this.#listeners]) {
      try {
        l(leader);
      } catch (err) {
        this.#o.log.warn({ err }, "leader election: a listener failed");
      }
    }
  }
}
