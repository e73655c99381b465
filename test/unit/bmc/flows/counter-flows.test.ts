/**
 * Issue 6 §5: the counter-driven flows (spec §8.4-§8.7, §9.1) against an in-memory BMC and a
 * real FileInventory, on a manual clock: reboot, repave with a one-time PXE override, the
 * Continuous fallback and its restore, the bounded repave timeout, quarantine, the periodic
 * power state, BMC failures, and an event for every BMC call.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { BmcError } from "../../../../server/bmc/driver.js";
import { machineYaml, PASSWORD, rig } from "./setup.js";

const MIN = 60_000;

describe("BMC counter flows", { timeout: 60_000 }, () => {
  it("reboot: ForceOff, wait Off, On, wait On, with upstream's PoweredOff states; exactly once", async (t) => {
    const r = await rig(t);
    r.driver.lag = true;
    r.rec.start();
    await r.settle();
    assert.equal(r.condition("PoweredOn")?.status, "True");
    assert.deepEqual(r.driver.calls, ["state"]);

    await r.request({ reboot: 1 });
    assert.equal(r.driver.count("power:ForceOff"), 1);
    let off = r.condition("PoweredOff");
    assert.deepEqual([off?.status, off?.reason, off?.message], ["False", "PoweringOff", "target reboots: 1"]);
    // Still PoweringOff after a poll: no second ForceOff within the 5-minute resend window.
    await r.advance(3000);
    assert.equal(r.driver.count("power:ForceOff"), 1);
    r.driver.settle();
    await r.advance(1000);
    // Seen Off, then On sent.
    off = r.condition("PoweredOff");
    assert.deepEqual([off?.status, off?.reason], ["True", "PoweringOn"]);
    assert.equal(r.driver.count("power:On"), 1);
    assert.equal(r.condition("PoweredOn")?.status, "False");
    r.driver.settle();
    await r.advance(1000);
    assert.equal(r.condition("PoweredOff"), undefined);
    assert.equal(r.machine().status?.operations?.rebootCounter, 1);
    assert.equal(r.condition("PoweredOn")?.status, "True");
    // A reboot leaves the boot device alone and is not a repave.
    assert.equal(r.driver.calls.filter((c) => c.startsWith("set:")).length, 0);
    assert.equal(r.condition("Repaved"), undefined);
    assert.deepEqual(r.driver.boots, ["Hdd"]);
    // Counters equal: nothing more, however long we wait (only power refreshes).
    await r.advance(10 * MIN);
    assert.equal(r.driver.count("power:ForceOff"), 1);
    assert.equal(r.driver.count("power:On"), 1);
  });

  it("resends ForceOff after the 5-minute power timeout", async (t) => {
    const r = await rig(t, { counters: { reboot: 1 } });
    r.driver.lag = true;
    r.rec.start();
    await r.settle();
    assert.equal(r.driver.count("power:ForceOff"), 1);
    await r.advance(4 * MIN);
    assert.equal(r.driver.count("power:ForceOff"), 1);
    await r.advance(1 * MIN + 1000);
    assert.equal(r.driver.count("power:ForceOff"), 2);
  });

  it("repave: a one-time PXE override, then a power cycle; the next start boots PXE and the override is consumed", async (t) => {
    const r = await rig(t);
    r.rec.start();
    await r.settle();
    // Only the repave counter: upstream needed the reboot counter too; a repave request alone cycles here.
    await r.request({ repave: 1 });
    const order = r.driver.calls.filter((c) => c !== "state" && c !== "get-boot");
    assert.deepEqual(order, ["set:Pxe/Once", "power:ForceOff", "power:On"]);
    assert.deepEqual(r.driver.boots, ["Pxe"]);
    assert.deepEqual(r.driver.override, { target: "None", enabled: "Disabled" }, "Once consumed by the start");
    const repaved = r.condition("Repaved");
    assert.deepEqual(
      [repaved?.status, repaved?.reason, repaved?.message],
      ["False", "Pending", "image=ghcr.io/azure/images/host-ubuntu2404:v1"],
    );
    assert.equal(r.condition("RepaveAttempts")?.message, "repaveCounter=1 attempt=1 of 3");
    assert.equal(r.condition("BootOverrideContinuous"), undefined);
    // The installer finishes: /pxe/disable. Bookkeeping is tidied, no more BMC actions.
    await r.pxeDisable();
    assert.equal(r.condition("Repaved")?.status, "True");
    assert.equal(r.condition("RepaveAttempts"), undefined);
    await r.advance(60 * MIN);
    assert.equal(r.driver.count("power:ForceOff"), 1);
    assert.equal(r.driver.calls.filter((c) => c.startsWith("set:")).length, 1);
  });

  it("falls back to Pxe/Continuous only where Once is refused, and restores the override after the repave", async (t) => {
    const r = await rig(t);
    r.driver.allowOnce = false;
    r.driver.allowDisabled = false;
    r.rec.start();
    await r.settle();
    await r.request({ reboot: 1, repave: 1 });
    assert.deepEqual(
      r.driver.calls.filter((c) => c.startsWith("set:") || c.startsWith("power:")),
      ["set:Pxe/Once", "set:Pxe/Continuous", "power:ForceOff", "power:On"],
    );
    assert.equal(r.condition("BootOverrideContinuous")?.reason, "OnceNotSupported");
    assert.deepEqual(r.driver.boots, ["Pxe"]);
    await r.pxeDisable();
    // Disabled refused as well: upstream's Hdd/Continuous fallback.
    assert.deepEqual(r.driver.calls.filter((c) => c.startsWith("set:")).slice(2), [
      "set:None/Disabled",
      "set:Hdd/Continuous",
    ]);
    assert.deepEqual(r.driver.override, { target: "Hdd", enabled: "Continuous" });
    assert.equal(r.condition("BootOverrideContinuous"), undefined);
  });

  it("BootOrderConfigSupported=False/NotSupported when overrides are refused while On; the cycle still runs", async (t) => {
    const r = await rig(t);
    r.driver.allowOverride = false;
    r.rec.start();
    await r.settle();
    await r.request({ reboot: 1, repave: 1 });
    const c = r.condition("BootOrderConfigSupported");
    assert.deepEqual([c?.status, c?.reason, c?.message], ["False", "NotSupported", ""]);
    assert.equal(r.driver.count("power:ForceOff"), 1);
    assert.equal(r.driver.count("power:On"), 1);
    assert.equal(r.condition("Repaved")?.reason, "Pending");
    // Once False, boot handling is skipped (upstream): no more PATCH attempts.
    assert.equal(r.driver.calls.filter((x) => x.startsWith("set:")).length, 2);
  });

  it("a server that is Off, with a BMC refusing to set and to read the boot device (IPMI on ipmi_sim): NotSupported, then On", async (t) => {
    const r = await rig(t);
    r.driver.state = "Off";
    r.driver.allowOverride = false;
    r.driver.allowOverrideRead = false;
    r.rec.start();
    await r.settle();
    await r.request({ repave: 1 });
    const c = r.condition("BootOrderConfigSupported");
    assert.deepEqual([c?.status, c?.reason], ["False", "NotSupported"]);
    assert.equal(r.driver.count("power:On"), 1, r.driver.calls.join(","));
    assert.equal(r.driver.state, "On");
    assert.equal(r.condition("Repaved")?.reason, "Pending");
    assert.equal(r.condition("BmcReachable")?.status, "True");
  });

  it("retries a repave that times out after 30 minutes, bounded to 3 cycles (upstream: forever)", async (t) => {
    const r = await rig(t);
    r.rec.start();
    await r.settle();
    await r.request({ reboot: 1, repave: 1 });
    assert.equal(r.driver.count("power:ForceOff"), 1);
    await r.advance(29 * MIN);
    assert.equal(r.driver.count("power:ForceOff"), 1, "no retry before 30 minutes");
    await r.advance(1 * MIN + 1000);
    assert.equal(r.driver.count("power:ForceOff"), 2);
    assert.equal(r.condition("RepaveAttempts")?.message, "repaveCounter=1 attempt=2 of 3");
    assert.equal(r.machine().status?.operations?.rebootCounter, 1, "decremented to 0 and set again by the cycle");
    await r.advance(31 * MIN);
    assert.equal(r.driver.count("power:ForceOff"), 3);
    await r.advance(31 * MIN);
    const repaved = r.condition("Repaved");
    assert.deepEqual([repaved?.status, repaved?.reason], ["False", "Failed"]);
    assert.match(repaved!.message, /not completed after 3 attempt\(s\) of 30m0s/);
    await r.advance(240 * MIN);
    assert.equal(r.driver.count("power:ForceOff"), 3, "no fourth cycle");
    assert.deepEqual(r.driver.boots, ["Pxe", "Pxe", "Pxe"]);
    const timeouts = r.seen.filter((e) => e.step === "bmc.repave-timeout");
    assert.deepEqual(
      timeouts.map((e) => e.result),
      ["progress", "progress", "error"],
    );
    // A new repave request starts over.
    await r.request({ reboot: 1, repave: 2 });
    assert.equal(r.driver.count("power:ForceOff"), 4);
    assert.equal(r.condition("RepaveAttempts")?.message, "repaveCounter=2 attempt=1 of 3");
  });

  it("refuses a quarantined Machine: no BMC call at all, one refusal event", async (t) => {
    const r = await rig(t, {
      counters: { reboot: 3, repave: 3 },
      beforeLoad: async ({ stateDir }) => {
        const { mkdir } = await import("node:fs/promises");
        await mkdir(path.join(stateDir, "status"), { recursive: true });
        await writeFile(path.join(stateDir, "status", "node-01.json"), '{"name": "node-01", "status": {');
      },
    });
    assert.ok(r.inv.quarantine("node-01"));
    r.rec.start();
    await r.settle();
    await r.advance(60 * MIN);
    assert.deepEqual(r.driver.calls, []);
    const refused = r.events.history("node-01").filter((e) => e.step === "bmc.refused");
    assert.equal(refused.length, 1);
    assert.equal(refused[0]?.reason, "quarantined");
  });

  it("reads the power state into PoweredOn periodically, and records BMC failures with the BMC's messages", async (t) => {
    const r = await rig(t);
    r.rec.start();
    await r.settle();
    assert.equal(r.condition("PoweredOn")?.reason, "On");
    r.driver.state = "Off"; // someone pressed the button
    await r.advance(30_000);
    assert.equal(r.condition("PoweredOn")?.status, "True", "not yet refreshed");
    await r.advance(30_000);
    assert.deepEqual([r.condition("PoweredOn")?.status, r.condition("PoweredOn")?.reason], ["False", "Off"]);
    r.driver.failures.push(new BmcError("unreachable", "connect ECONNREFUSED 127.0.0.1:8443", ["iDRAC.2.8.RAC0508"]));
    await r.advance(60_000);
    const reach = r.condition("BmcReachable");
    assert.deepEqual([reach?.status, reach?.reason], ["False", "Unreachable"]);
    assert.match(reach!.message, /ECONNREFUSED.*RAC0508/);
    await r.advance(2000); // back-off, then a good reading
    assert.equal(r.condition("BmcReachable")?.status, "True");
  });

  it("every BMC call is an event: step bmc.<call>, result, BMC message, duration, never the password", async (t) => {
    const r = await rig(t);
    r.rec.start();
    await r.settle();
    r.driver.failures.push(new BmcError("bmc-error", "PATCH Boot failed with 500", ["Base.1.8.InternalError"]));
    await r.request({ reboot: 1, repave: 1 });
    await r.advance(2000);
    const calls = r.bmcEvents().filter((e) => e.step !== "bmc.power-cycle");
    // One event per driver call, in order.
    assert.equal(calls.length, r.driver.calls.length);
    for (const e of calls) {
      assert.match(e.step, /^bmc\.(power-state|power|set-boot-override|boot-override)$/);
      assert.equal(typeof e.detail?.durationMs, "number");
      assert.equal(e.detail?.driver, "memory bmc node-01");
    }
    const failed = calls.find((e) => e.result === "error");
    assert.equal(failed?.reason, "bmc-error");
    assert.equal(failed?.detail?.bmcMessage, "Base.1.8.InternalError");
    const powers = calls.filter((e) => e.step === "bmc.power").map((e) => e.detail?.action);
    assert.deepEqual(powers, ["ForceOff", "On"]);
    assert.ok(r.bmcEvents().some((e) => e.step === "bmc.power-cycle" && e.result === "ok"));
    const all = JSON.stringify(r.seen);
    assert.ok(!all.includes(PASSWORD));
    assert.ok(!all.toLowerCase().includes("password"));
  });

  it("two Machines are cycled independently; a BMC that fails does not hold the other", async (t) => {
    const r = await rig(t, { machines: ["node-01", "node-02"] });
    r.rec.start();
    await r.settle();
    const bad = r.drivers.get("node-01")!;
    for (let i = 0; i < 50; i++) bad.failures.push(new BmcError("timeout", "no answer within 30s"));
    await r.request({ reboot: 1 }, "node-01");
    await r.request({ reboot: 1 }, "node-02");
    assert.equal(r.machine("node-02").status?.operations?.rebootCounter, 1);
    assert.equal(r.machine("node-01").status?.operations?.rebootCounter ?? 0, 0);
    assert.equal(r.condition("BmcReachable", "node-01")?.reason, "Timeout");
    // Back-off: far fewer than one call per poll over 10 minutes.
    const before = bad.calls.length;
    await r.advance(10 * MIN);
    assert.ok(bad.calls.length - before < 12, `calls while failing: ${bad.calls.length - before}`);
  });

  it("ignores a Machine file without redfish", async (t) => {
    const r = await rig(t);
    await writeFile(
      path.join(r.dir, "node-01.yaml"),
      machineYaml("node-01", { reboot: 1 }).replace(/ {4}redfish:\n(?: {6}.*\n)+/, ""),
    );
    await r.inv.reload();
    r.rec.start();
    await r.settle();
    assert.deepEqual(r.driver.calls, []);
  });
});
