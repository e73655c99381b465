/**
 * Issue 6 §5 + §9: the reconciler drives the emulated BMC over real HTTPS (Redfish), with a
 * real FileInventory: a repave request sets a one-time PXE override and power-cycles the
 * server; the next start boots PXE and consumes the override; every call is on the event
 * stream and the password never is. Also the Once-less BMC: Continuous, then restored.
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { selfSignedCertificate } from "../../../../server/bmc/emulator/certificate.js";
import { MemoryPower } from "../../../../server/bmc/emulator/power.js";
import { EmulatedBmc } from "../../../../server/bmc/emulator/redfish-service.js";
import { BmcReconciler } from "../../../../server/bmc/flows/reconciler.js";
import { BootEventBus, type StreamEvent } from "../../../../server/events/boot-events.js";
import { findCondition } from "../../../../server/inventory/conditions.js";
import { FileInventory } from "../../../../server/inventory/file-inventory.js";
import { silentLog, tempDir, waitFor } from "../../inventory/helpers.js";
import { machineYaml } from "../flows/setup.js";
import { MiniRedfishDriver } from "./mini-redfish-driver.js";

const PASSWORD = "emulator-Pa55word";

async function setup(t: { after(fn: () => Promise<void>): void }, onceAllowed: boolean) {
  const tls = await selfSignedCertificate();
  const power = new MemoryPower("On");
  const bmc = new EmulatedBmc({
    name: "node-01",
    username: "admin",
    password: PASSWORD,
    power,
    quirks: { onceAllowed },
  });
  const port = await bmc.listen(tls, "127.0.0.1", 0);
  const { dir: root, beforeRemove } = await tempDir(t);
  const dir = path.join(root, "machines");
  await mkdir(dir);
  const write = (counters: { reboot?: number; repave?: number }) =>
    writeFile(
      path.join(dir, "node-01.yaml"),
      machineYaml("node-01", counters).replace("https://127.0.0.1:8443/node-01", `https://127.0.0.1:${port}`),
    );
  await write({});
  const inv = new FileInventory({ dir, stateDir: path.join(root, "state"), log: silentLog, watch: false });
  await inv.load();
  const events = new BootEventBus({ startSeq: 1 });
  const seen: StreamEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const rec = new BmcReconciler({
    backend: inv,
    driverFor: (m) =>
      m.spec.pxe?.redfish
        ? new MiniRedfishDriver(m.spec.pxe.redfish.url, m.spec.pxe.redfish.username, PASSWORD)
        : undefined,
    events,
    log: silentLog,
    options: { pollMs: 20 },
  });
  beforeRemove(async () => {
    await rec.stop();
    await inv.close();
    await bmc.close();
  });
  rec.start();
  return { bmc, power, inv, rec, seen, write };
}

/** Bumps both counters (a repave) and waits until the flow has run: Repaved=False/Pending, reconciler idle. */
async function requestRepave({ inv, rec, write }: Pick<Awaited<ReturnType<typeof setup>>, "inv" | "rec" | "write">) {
  await write({ reboot: 1, repave: 1 });
  await inv.reload();
  await waitFor(
    "Repaved=False/Pending",
    () => (findCondition(inv.get("node-01")?.status?.conditions, "Repaved")?.reason === "Pending" ? true : undefined),
    20_000,
  );
  await rec.idle();
}

describe("BMC flows through the emulator (Redfish over HTTPS)", () => {
  it("a repave request: Pxe/Once, ForceOff, On; the start boots PXE and consumes the override", async (t) => {
    const { bmc, power, inv, rec, seen, write } = await setup(t, true);
    await requestRepave({ inv, rec, write });
    assert.deepEqual(power.boots, ["pxe"]);
    assert.equal(bmc.override.enabled, "Disabled", "Once consumed");
    assert.equal(inv.get("node-01")?.status?.operations?.rebootCounter, 1);
    const posts = bmc.requests.filter((r) => r.method !== "GET").map((r) => `${r.method} ${r.status}`);
    assert.deepEqual(posts, ["PATCH 204", "POST 204", "POST 204"]);
    const steps = seen.filter((e) => e.step.startsWith("bmc.")).map((e) => `${e.step} ${e.result}`);
    assert.ok(steps.includes("bmc.set-boot-override ok"));
    assert.equal(steps.filter((s) => s === "bmc.power ok").length, 2);
    assert.ok(steps.includes("bmc.power-cycle ok"));
    assert.ok(!JSON.stringify(seen).includes(PASSWORD));
    assert.ok(!JSON.stringify(inv.get("node-01")).includes(PASSWORD));
  });

  it("a BMC without Once: Pxe/Continuous with the BMC's message on the stream, restored after /pxe/disable", async (t) => {
    const { bmc, power, inv, rec, seen, write } = await setup(t, false);
    await requestRepave({ inv, rec, write });
    assert.deepEqual(power.boots, ["pxe"]);
    assert.equal(bmc.override.enabled, "Continuous");
    const refused = seen.find((e) => e.step === "bmc.set-boot-override" && e.result === "error");
    assert.equal(refused?.reason, "not-supported");
    assert.equal(refused?.detail?.bmcMessage, "Base.1.8.PropertyValueNotInList");
    // /pxe/disable (as server/http/pxe.ts writes it).
    await inv.updateStatus("node-01", (m) => ({
      ...m.status,
      operations: { ...m.status?.operations, repaveCounter: 1 },
      conditions: [
        ...(m.status?.conditions ?? []).filter((c) => c.type !== "Repaved"),
        {
          type: "Repaved",
          status: "True",
          reason: "Succeeded",
          message: "",
          lastTransitionTime: new Date().toISOString(),
        },
      ],
    }));
    for (let i = 0; i < 100 && (bmc.override.enabled as string) !== "Disabled"; i++) await sleep(20);
    await rec.idle();
    assert.equal(bmc.override.enabled, "Disabled");
    assert.equal(findCondition(inv.get("node-01")?.status?.conditions, "BootOverrideContinuous"), undefined);
  });
});
