/**
 * One Machine's page: its detail, its events (grouped into boot attempts), its YAML, and the
 * actions. Its live events come on the Machine's own stream (`/machines/NAME/events?follow=1`),
 * opened at the history's lastSeq, so nothing between the read and the stream is missed; a
 * reconnect resumes from the last seq shown, and "gone" re-reads the history.
 */
import { type ApiClient, describeError } from "../api/client";
import { type LiveStream, openLiveStream } from "../api/events";
import type { BootEvent, MachineDetail, PowerAction } from "../api/types";
import { type BootAttempt, groupAttempts } from "../util/timeline";
import type { LiveManager } from "./live.svelte";
import type { MachinesManager } from "./machines.svelte";

export type ActionKind = "repave" | "reboot" | "power-on" | "power-off" | "power-cycle" | "repin-bmc" | "delete";

export class MachineDetailManager {
  name = $state("");
  detail = $state.raw<MachineDetail | undefined>(undefined);
  events = $state.raw<BootEvent[]>([]);
  yaml = $state("");
  error = $state("");
  notice = $state("");
  actionError = $state("");
  busy = $state(false);
  readonly attempts: BootAttempt[] = $derived(groupAttempts(this.events));

  #stream: LiveStream | undefined;
  streamState = $state<"connecting" | "live" | "offline">("connecting");
  #seen = new Set<number>();
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly api: ApiClient,
    readonly live: LiveManager,
    private readonly machines: MachinesManager,
  ) {}

  async open(name: string): Promise<void> {
    this.close();
    this.name = name;
    this.detail = undefined;
    this.events = [];
    this.yaml = "";
    this.error = "";
    this.notice = "";
    this.actionError = "";
    this.#seen = new Set();
    await Promise.all([this.reload(), this.#follow()]);
  }

  close(): void {
    this.#stream?.close();
    this.#stream = undefined;
    if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
  }

  async reload(): Promise<void> {
    try {
      this.detail = await this.api.machine(this.name);
      this.error = "";
    } catch (error) {
      this.error = describeError(error);
    }
  }

  async loadYaml(): Promise<void> {
    try {
      this.yaml = (await this.api.machineYaml(this.name)).yaml;
    } catch (error) {
      this.yaml = `# ${describeError(error)}`;
    }
  }

  async #follow(): Promise<void> {
    const name = this.name;
    let since: number | undefined;
    try {
      const history = await this.api.machineEvents(name);
      if (name !== this.name) return;
      this.#add(history.events);
      since = history.lastSeq;
    } catch {
      // The detail's error says enough; follow live anyway.
    }
    this.#stream?.close();
    this.#stream = openLiveStream(
      (resume) => this.api.machineEventsUrl(name, resume),
      {
        onEvent: (event) => this.#add([event]),
        onGone: () => void this.#rereadHistory(name),
        onState: (state) => {
          this.streamState = state;
        },
      },
      since,
    );
  }

  async #rereadHistory(name: string): Promise<void> {
    try {
      const history = await this.api.machineEvents(name);
      if (name === this.name) this.#add(history.events);
    } catch {
      // The next reconnect tries again.
    }
  }

  #add(events: BootEvent[]): void {
    const fresh = events.filter((event) => !this.#seen.has(event.seq));
    if (fresh.length === 0) return;
    for (const event of fresh) this.#seen.add(event.seq);
    this.events = [...this.events, ...fresh].sort((a, b) => a.seq - b.seq);
    if (fresh.some((event) => /^(operation\.|bmc\.|pxe\.disable|cloudinit\.|dhcp\.ack)/.test(event.step))) {
      this.#scheduleRefresh();
    }
  }

  #scheduleRefresh(): void {
    if (this.#refreshTimer) return;
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = undefined;
      void this.reload();
    }, 300);
  }

  async act(kind: ActionKind): Promise<boolean> {
    this.busy = true;
    this.actionError = "";
    this.notice = "";
    try {
      switch (kind) {
        case "repave":
          await this.api.repave(this.name);
          this.notice = "Repave requested: the BMC sets a one-time network boot and power-cycles the server.";
          break;
        case "reboot":
          await this.api.reboot(this.name);
          this.notice = "Reboot requested.";
          break;
        case "repin-bmc":
          await this.api.repinBmc(this.name);
          this.notice = "BMC pin cleared: the next contact pins the certificate it sees.";
          break;
        case "delete":
          await this.api.deleteMachine(this.name);
          this.machines.remove(this.name);
          this.notice = "Machine deleted.";
          return true;
        default: {
          const action = kind.slice("power-".length) as PowerAction;
          await this.api.power(this.name, action);
          this.notice = `Power ${action} requested.`;
        }
      }
      await this.reload();
      return true;
    } catch (error) {
      this.actionError = describeError(error);
      return false;
    } finally {
      this.busy = false;
    }
  }

  /** Save the editable fields; the server merges them into the file and keeps its comments. */
  async save(changes: { image: string; leaseIpv4: string }): Promise<boolean> {
    const detail = this.detail;
    if (!detail) return false;
    this.busy = true;
    this.actionError = "";
    try {
      const spec = structuredClone(detail.spec) as { pxe?: { image?: string; dhcpLeases?: Array<{ ipv4?: string }> } };
      spec.pxe = { ...(spec.pxe ?? {}), image: changes.image };
      const lease = spec.pxe.dhcpLeases?.[0];
      if (lease && changes.leaseIpv4) lease.ipv4 = changes.leaseIpv4;
      const machine = {
        apiVersion: "unbounded-cloud.io/v1alpha3",
        kind: "Machine",
        metadata: { name: this.name, labels: detail.metadata.labels ?? {} },
        spec,
      };
      const summary = await this.api.updateMachine(this.name, machine);
      if (summary) this.machines.upsert(summary);
      this.notice = "Saved. The file keeps its comments and layout.";
      await Promise.all([this.reload(), this.loadYaml()]);
      return true;
    } catch (error) {
      this.actionError = describeError(error);
      return false;
    } finally {
      this.busy = false;
    }
  }
}
