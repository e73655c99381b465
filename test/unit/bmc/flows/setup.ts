import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { BmcDriver } from "../../../../server/bmc/driver.js";
import type { BmcFlowOptions } from "../../../../server/bmc/flows/options.js";
import { BmcReconciler } from "../../../../server/bmc/flows/reconciler.js";
import { BootEventBus, type StreamEvent } from "../../../../server/events/boot-events.js";
import { UNCHANGED } from "../../../../server/inventory/backend.js";
import { findCondition, setCondition } from "../../../../server/inventory/conditions.js";
import { FileInventory } from "../../../../server/inventory/file-inventory.js";
import type { Condition, Machine } from "../../../../server/inventory/types.js";
import { silentLog, tempDir } from "../../inventory/helpers.js";
import { ManualClock } from "./manual-clock.js";
import { MemoryDriver } from "./memory-driver.js";

export const IMAGE = "ghcr.io/azure/images/host-ubuntu2404:v1";
export const PASSWORD = "hunter2-bmc-secret";

export function machineYaml(
  name: string,
  counters: { reboot?: number; repave?: number },
  mac = "aa:bb:cc:dd:ee:01",
  ip = "10.0.0.11",
): string {
  return `apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata:
  name: ${name}
  labels: {rack: a}
spec:
  pxe:
    image: ${IMAGE}
    dhcpLeases:
    - {mac: "${mac}", ipv4: "${ip}", subnetMask: "255.255.255.0", gateway: "10.0.0.1"}
    redfish:
      url: https://127.0.0.1:8443/${name}
      username: admin
      passwordRef: {name: bmc-${name}, namespace: default, key: password}
  operations: {rebootCounter: ${counters.reboot ?? 0}, repaveCounter: ${counters.repave ?? 0}}
`;
}

export interface Rig {
  inv: FileInventory;
  rec: BmcReconciler;
  driver: MemoryDriver;
  drivers: Map<string, MemoryDriver>;
  clock: ManualClock;
  events: BootEventBus;
  dir: string;
  stateDir: string;
  settle(): Promise<void>;
  advance(ms: number): Promise<void>;
  /** Rewrites the Machine file with new spec counters (the operator's edit) and reloads. */
  request(counters: { reboot?: number; repave?: number }, name?: string): Promise<void>;
  /** What `/pxe/disable` writes (server/http/pxe.ts): status.repaveCounter = spec, Repaved=True/Succeeded. */
  pxeDisable(name?: string): Promise<void>;
  machine(name?: string): Machine;
  condition(type: string, name?: string): Condition | undefined;
  bmcEvents(name?: string): StreamEvent[];
  /** Every event of the run (a Machine's history keeps only its last 128). */
  seen: StreamEvent[];
}

export async function rig(
  t: { after(fn: () => Promise<void>): void },
  opts: {
    counters?: { reboot?: number; repave?: number };
    machines?: string[];
    options?: Partial<BmcFlowOptions>;
    beforeLoad?: (paths: { dir: string; stateDir: string }) => Promise<void>;
  } = {},
): Promise<Rig> {
  const { dir: root, beforeRemove } = await tempDir(t);
  const dir = path.join(root, "machines");
  const stateDir = path.join(root, "state");
  await mkdir(dir);
  const names = opts.machines ?? ["node-01"];
  for (const [i, name] of names.entries()) {
    await writeFile(
      path.join(dir, `${name}.yaml`),
      machineYaml(name, opts.counters ?? {}, `aa:bb:cc:dd:ee:0${i + 1}`, `10.0.0.${11 + i}`),
    );
  }
  await opts.beforeLoad?.({ dir, stateDir });
  const clock = new ManualClock();
  const inv = new FileInventory({ dir, stateDir, log: silentLog, watch: false, now: () => new Date(clock.now()) });
  beforeRemove(() => inv.close());
  await inv.load();
  const events = new BootEventBus({ startSeq: 1 });
  const seen: StreamEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const drivers = new Map(names.map((n) => [n, new MemoryDriver(n)]));
  const rec = new BmcReconciler({
    backend: inv,
    driverFor: (m): BmcDriver | undefined => (m.spec.pxe?.redfish ? drivers.get(m.metadata.name) : undefined),
    events,
    log: silentLog,
    clock,
    options: opts.options,
  });
  beforeRemove(() => rec.stop());
  const settle = () => rec.idle();
  const r: Rig = {
    inv,
    rec,
    driver: drivers.get(names[0]!)!,
    drivers,
    clock,
    events,
    dir,
    stateDir,
    settle,
    advance: (ms) => clock.advance(ms, settle),
    async request(counters, name = names[0]!) {
      const i = names.indexOf(name);
      await writeFile(
        path.join(dir, `${name}.yaml`),
        machineYaml(name, counters, `aa:bb:cc:dd:ee:0${i + 1}`, `10.0.0.${11 + i}`),
      );
      await inv.reload();
      await settle();
    },
    async pxeDisable(name = names[0]!) {
      await inv.updateStatus(name, (current) => {
        const spec = current.spec.operations?.repaveCounter ?? 0;
        const status = current.status ?? {};
        if (spec <= (status.operations?.repaveCounter ?? 0)) return UNCHANGED;
        return {
          ...status,
          operations: { ...status.operations, repaveCounter: spec },
          conditions: setCondition(
            status.conditions,
            { type: "Repaved", status: "True", reason: "Succeeded", message: `image=${IMAGE}` },
            new Date(clock.now()),
          ),
        };
      });
      await settle();
    },
    machine: (name = names[0]!) => inv.get(name)!,
    condition: (type, name = names[0]!) => findCondition(inv.get(name)?.status?.conditions, type),
    bmcEvents: (name = names[0]!) => seen.filter((e) => e.machine === name && e.step.startsWith("bmc.")),
    seen,
  };
  return r;
}
