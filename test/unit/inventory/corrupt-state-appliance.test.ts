/**
 * Issue 5 §2.1 end to end: the appliance started over a corrupt state file answers /readyz
 * with 503 naming the file (readiness comes from the backend's problems()), and refuses the
 * installer's /pxe/disable for the quarantined Machine, over real loopback HTTP.
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { pino } from "pino";
import { startAppliance } from "../../../server/app/serve-pxe.js";
import { FileInventory } from "../../../server/inventory/file-inventory.js";
import { loopbackConfig, loopbackProbes } from "../app/loopback-appliance.js";
import { silentLog, tempDir } from "./helpers.js";

const LOOPBACK_MACHINE = `apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata: {name: node-01}
spec:
  pxe:
    image: dir:/nonexistent
    dhcpLeases:
    - {mac: "aa:bb:cc:dd:ee:01", ipv4: "127.0.0.1", subnetMask: "255.0.0.0", gateway: "127.0.0.1"}
  operations: {repaveCounter: 3}
`;

describe("appliance over a corrupt state file", () => {
  it("fails /readyz naming the file and refuses /pxe/disable for the Machine", async (t) => {
    const { dir: root, beforeRemove } = await tempDir(t);
    const inventory = path.join(root, "machines");
    const stateDir = path.join(root, "state");
    await mkdir(inventory);
    await writeFile(path.join(inventory, "node-01.yaml"), LOOPBACK_MACHINE);
    const seed = new FileInventory({ dir: inventory, stateDir, log: silentLog, watch: false });
    await seed.load();
    await seed.close();
    const stateFile = path.join(stateDir, "status", "node-01.json");
    await writeFile(stateFile, "\u0000\u0000\u0000");

    const config = await loopbackConfig({ inventory, stateDir, cacheDir: path.join(root, "cache") });
    const appliance = await startAppliance(config, { log: pino({ level: "silent" }), probes: loopbackProbes });
    beforeRemove(() => appliance.close());

    const ready = await fetch(`http://127.0.0.1:${config.healthPort}/readyz`);
    const body = await ready.text();
    assert.equal(ready.status, 503);
    assert.match(body, /\[-\]state failed: 1 untrusted state file/);
    assert.ok(body.includes(stateFile), body);

    const disable = await fetch(`http://127.0.0.1:${config.httpPort}/pxe/disable`, { method: "POST" });
    await disable.arrayBuffer();
    assert.equal(disable.status, 500);
    const machine = appliance.inventory.get("node-01")!;
    assert.equal(machine.status?.operations?.repaveCounter, undefined, "no repave recorded");
    const event = appliance.events.recent({ machine: "node-01" }).at(-1);
    assert.equal(event?.reason, "quarantined");
  });
});
