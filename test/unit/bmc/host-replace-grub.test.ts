/**
 * Issue 6 item (grub.cfg and HostReplace): a pending HostReplace MachineOperation is a repave
 * request for the netboot templates (the example image's grub.cfg offers the install although
 * the counters are equal), and the installer's /pxe/disable completes it: the operation's
 * BootImageWritten turns True/Succeeded, the Machine's Repaved True, and grub.cfg goes back to
 * the local disk. Without a pending operation nothing changes (counters decide, as upstream).
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { pino } from "pino";
import { startAppliance } from "../../../server/app/serve-pxe.js";
import { findCondition } from "../../../server/inventory/conditions.js";
import { repoRoot } from "../../support/paths.js";
import { loopbackConfig, loopbackProbes } from "../app/loopback-appliance.js";

describe("grub.cfg and a pending HostReplace operation", () => {
  it("installs while the HostReplace is pending; /pxe/disable writes BootImageWritten and ends it", async () => {
    const scratch = await mkdtemp(path.join(tmpdir(), "mm-replace-"));
    try {
      const inventory = path.join(scratch, "inventory");
      await mkdir(inventory);
      const example = await readFile(path.join(repoRoot(), "examples", "inventory", "node-01.yaml"), "utf8");
      await writeFile(
        path.join(inventory, "node-01.yaml"),
        example
          .replace(/dir:\S+/, `dir:${path.join(repoRoot(), "netboot-images", "host-ubuntu2404")}`)
          .replace(/repaveCounter: \d+/, "repaveCounter: 0"),
      );
      const config = await loopbackConfig({
        inventory,
        stateDir: scratch,
        cacheDir: path.join(scratch, "cache"),
        extraArgs: [`--image-root=${path.join(repoRoot(), "netboot-images")}`],
      });
      // Flows off: the operation stays as created (no BMC here); the template view alone is under test.
      const appliance = await startAppliance(config, {
        log: pino({ level: "silent" }),
        probes: loopbackProbes,
        bmcDrivers: false,
      });
      try {
        const grub = async () => (await fetch(`http://127.0.0.1:${config.httpPort}/grub/grub.cfg`)).text();
        assert.match(await grub(), /no repave pending/);
        await appliance.inventory.operations.create({
          metadata: { name: "replace-1" },
          spec: { machineRef: "node-01", operationKind: "HostReplace" },
        });
        const pending = await grub();
        assert.match(pending, /menuentry 'metalman install node-01'/);
        const res = await fetch(`http://127.0.0.1:${config.httpPort}/pxe/disable`);
        assert.equal(res.status, 200);
        const op = appliance.inventory.operations.get("replace-1");
        const written = findCondition(op?.status?.conditions, "BootImageWritten");
        assert.equal(written?.status, "True");
        assert.equal(written?.reason, "Succeeded");
        const machine = appliance.inventory.get("node-01");
        assert.equal(findCondition(machine?.status?.conditions, "Repaved")?.status, "True");
        assert.equal(machine?.status?.operations?.repaveCounter ?? 0, 0, "the counters are the operator's");
        assert.match(await grub(), /no repave pending/);
        const steps = appliance.events.history("node-01").map((e) => `${e.step} ${e.result}`);
        assert.ok(steps.includes("pxe.disable ok"), steps.join(", "));

        // A second HostReplace on a Machine already Repaved=True: the Machine's status does not
        // change, yet the operation is completed and /pxe/disable reports ok (not already-cleared).
        await appliance.inventory.operations.create({
          metadata: { name: "replace-2" },
          spec: { machineRef: "node-01", operationKind: "HostReplace" },
        });
        assert.match(await grub(), /menuentry 'metalman install node-01'/);
        assert.equal((await fetch(`http://127.0.0.1:${config.httpPort}/pxe/disable`)).status, 200);
        const second = appliance.inventory.operations.get("replace-2");
        assert.equal(findCondition(second?.status?.conditions, "BootImageWritten")?.status, "True");
        const last = appliance.events
          .history("node-01")
          .filter((e) => e.step === "pxe.disable")
          .at(-1);
        assert.equal(last?.result, "ok");
        assert.equal(last?.detail?.operation, "replace-2");
        assert.match(await grub(), /no repave pending/);
      } finally {
        await appliance.close({ graceMs: 0 });
      }
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
