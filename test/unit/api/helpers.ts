import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { pino } from "pino";
import { unixSocketIdentity } from "../../../server/api/actor.js";
import { buildManagementApp } from "../../../server/api/app.js";
import { BootEventBus } from "../../../server/events/boot-events.js";
import { FileInventory } from "../../../server/inventory/file-inventory.js";

export const silentLog = pino({ level: "silent" });

/** A Redfish Machine whose URL carries credentials and whose agent URL carries a SAS-style token. */
export const REDFISH_MACHINE = `apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata:
  name: node-01
  labels: {rack: a}
spec:
  pxe:
    image: dir:/nonexistent
    dhcpLeases:
    - {mac: "aa:bb:cc:dd:ee:01", ipv4: "10.0.0.11", subnetMask: "255.255.255.0", gateway: "10.0.0.1"}
    redfish:
      url: https://admin:hunter2-url-secret@10.0.0.5
      username: admin
      passwordRef: {name: bmc-node-01, namespace: default, key: password}
  agent:
    url: https://blob.example/agent.tar.gz?sig=sas-token-secret
  operations: {repaveCounter: 2, rebootCounter: 1}
`;

export const PLAIN_MACHINE = `apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata: {name: node-02}
spec:
  pxe:
    image: dir:/nonexistent
    dhcpLeases:
    - {mac: "aa:bb:cc:dd:ee:02", ipv4: "10.0.0.12", subnetMask: "255.255.255.0", gateway: "10.0.0.1"}
`;

export const QUARANTINED_MACHINE = `apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata: {name: node-03}
spec:
  pxe:
    image: dir:/nonexistent
    dhcpLeases:
    - {mac: "aa:bb:cc:dd:ee:03", ipv4: "10.0.0.13", subnetMask: "255.255.255.0", gateway: "10.0.0.1"}
    redfish:
      url: https://10.0.0.6
      username: admin
      passwordRef: {name: bmc-node-03, namespace: default, key: password}
  operations: {repaveCounter: 1}
`;

export interface Scratch {
  root: string;
  inventoryDir: string;
  stateDir: string;
  cleanup(): Promise<void>;
}

/** An inventory folder with node-01 (Redfish), node-02 (no BMC) and node-03 (Redfish, state file corrupt). */
export async function scratchInventory(prefix = "mm-api-"): Promise<Scratch> {
  const root = await mkdtemp(path.join(tmpdir(), prefix));
  const inventoryDir = path.join(root, "machines");
  const stateDir = path.join(root, "state");
  await mkdir(inventoryDir);
  await writeFile(path.join(inventoryDir, "node-01.yaml"), REDFISH_MACHINE);
  await writeFile(path.join(inventoryDir, "node-02.yaml"), PLAIN_MACHINE);
  await writeFile(path.join(inventoryDir, "node-03.yaml"), QUARANTINED_MACHINE);
  // A first run writes node-03's state; then it is corrupted, so the next load quarantines it.
  const seed = new FileInventory({ dir: inventoryDir, stateDir, log: silentLog, watch: false });
  await seed.load();
  await seed.close();
  await writeFile(path.join(stateDir, "status", "node-03.json"), "\u0000\u0000not json");
  return { root, inventoryDir, stateDir, cleanup: () => rm(root, { recursive: true, force: true }) };
}

export interface ApiFixture {
  app: FastifyInstance;
  inventory: FileInventory;
  events: BootEventBus;
  scratch: Scratch;
  close(): Promise<void>;
}

export async function apiFixture(): Promise<ApiFixture> {
  const scratch = await scratchInventory();
  const inventory = new FileInventory({
    dir: scratch.inventoryDir,
    stateDir: scratch.stateDir,
    log: silentLog,
    watch: false,
  });
  await inventory.load();
  const events = new BootEventBus({ startSeq: 1000 });
  const app = buildManagementApp({ log: silentLog, backend: inventory, events, identify: unixSocketIdentity });
  await app.ready();
  return {
    app,
    inventory,
    events,
    scratch,
    async close() {
      await app.close();
      await inventory.close();
      await scratch.cleanup();
    },
  };
}
