/**
 * Issue 6 §6: the IPMI BmcDriver drives a real IPMI 2.0 BMC (OpenIPMI's ipmi_sim, VM-less:
 * its chassis_control program keeps power and boot device) through the real ipmitool
 * (lanplus): power status/on/off/cycle, a one-time PXE boot device with efiboot; the password
 * is never in argv, a message or an event; errors carry ipmitool's message; calls to one BMC
 * never overlap; a dead BMC fails within its bound and leaves the others alone; and the BMC
 * flows repave an IPMI Machine (FileInventory, createBmcDriver through the factory).
 */
import assert from "node:assert/strict";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { BmcError } from "../../../../server/bmc/driver.js";
import { bmcDriverFactory } from "../../../../server/bmc/driver-factory.js";
import { BmcReconciler } from "../../../../server/bmc/flows/reconciler.js";
import { IpmiDriver } from "../../../../server/bmc/ipmi/driver.js";
import { parseBootFlags } from "../../../../server/bmc/ipmi/parse.js";
import { BootEventBus, type StreamEvent } from "../../../../server/events/boot-events.js";
import { findCondition } from "../../../../server/inventory/conditions.js";
import { FileInventory } from "../../../../server/inventory/file-inventory.js";
import { IpmiSim } from "../../../support/ipmi-sim.js";
import { silentLog, tempDir, waitFor } from "../../inventory/helpers.js";
import { requireTool } from "../emulator/tools.js";

const PASSWORD = "ipmi-Sim-Pa55";
const BASE_PORT = 15410;

async function sim(t: { after(fn: () => Promise<void>): void }, port: number) {
  const { dir } = await tempDir(t);
  const s = await IpmiSim.start({
    dir,
    address: "127.0.0.1",
    port,
    username: "admin",
    password: PASSWORD,
    chassis: true,
  });
  t.after(() => s.stop());
  return { sim: s, dir };
}

function driver(port: number, extra: Partial<ConstructorParameters<typeof IpmiDriver>[0]> = {}) {
  return new IpmiDriver({
    host: "127.0.0.1",
    port,
    username: "admin",
    password: PASSWORD,
    cipherSuite: 3,
    privilege: "ADMINISTRATOR",
    tryTimeoutSeconds: 1,
    retries: 1,
    callTimeoutMs: 10_000,
    ...extra,
  });
}

describe("IPMI driver against ipmi_sim (ipmitool lanplus)", () => {
  it("power status, on, off, cycle and a one-time UEFI PXE boot device act on the BMC", async (t) => {
    if (!requireTool(t, "ipmi_sim") || !requireTool(t, "ipmitool")) return;
    const { sim: s } = await sim(t, BASE_PORT);
    const d = driver(BASE_PORT, { bootMode: "UEFI" });
    t.after(() => d.close());
    assert.equal(await d.powerState(), "Off");
    await d.power("On");
    assert.equal(s.chassis("power"), "1");
    assert.equal(await d.powerState(), "On");
    // Cross-check with the real client, as an operator would.
    assert.match(s.ipmitool(["chassis", "power", "status"]).stdout, /Chassis Power is on/);
    await d.power("ForceOff");
    assert.equal(await d.powerState(), "Off");
    // A cycle of a server that is off powers it on (as Redfish's PowerCycle does).
    await d.power("PowerCycle");
    assert.equal(await d.powerState(), "On");
    await d.power("ForceRestart");
    assert.match(s.chassis("log"), /reset/);
    const set = await d.setBootOverride({ target: "Pxe", enabled: "Once" });
    assert.deepEqual(set, { target: "Pxe", enabled: "Once", mode: "UEFI" });
    assert.equal(s.chassis("boot"), "pxe");
    assert.equal((await d.bootOverride()).target, "Pxe");
    await d.setBootOverride({ target: "None", enabled: "Disabled" });
    assert.equal(s.chassis("boot"), "none");
  });

  it("never puts the password in argv, and maps a wrong password to an auth error with ipmitool's message", async (t) => {
    if (!requireTool(t, "ipmi_sim") || !requireTool(t, "ipmitool")) return;
    const { dir } = await sim(t, BASE_PORT + 1);
    // A wrapper records the argv and whether the password came through the environment.
    const wrapper = path.join(dir, "ipmitool-wrapper.sh");
    const record = path.join(dir, "calls.log");
    await writeFile(
      wrapper,
      `#!/bin/sh\necho "argv: $*" >> "${record}"\n[ -n "$IPMI_PASSWORD" ] && echo "env: IPMI_PASSWORD set" >> "${record}"\nexec ipmitool "$@"\n`,
    );
    await chmod(wrapper, 0o700);
    const d = driver(BASE_PORT + 1, { binary: wrapper });
    t.after(() => d.close());
    assert.equal(await d.powerState(), "Off");
    const calls = await readFile(record, "utf8");
    assert.match(calls, /argv: .*-E .*chassis power status/);
    assert.match(calls, /env: IPMI_PASSWORD set/);
    assert.ok(!calls.includes(PASSWORD), "the password is never an argument");
    assert.ok(!d.argv().join(" ").includes(PASSWORD));

    const wrong = driver(BASE_PORT + 1, { password: "not-the-password" });
    t.after(() => wrong.close());
    const err = await wrong.powerState().then(
      () => assert.fail("a wrong password must fail"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof BmcError);
    assert.equal(err.code, "auth", err.message);
    assert.match(err.message, /ipmitool chassis power status: .*RAKP 2 HMAC is invalid/);
    assert.ok(!err.message.includes("not-the-password"));
  });

  it("serialises calls to one BMC, and a BMC that never answers fails within its bound without holding another", async (t) => {
    if (!requireTool(t, "ipmi_sim") || !requireTool(t, "ipmitool")) return;
    const { dir } = await sim(t, BASE_PORT + 2);
    const wrapper = path.join(dir, "overlap.sh");
    const marker = path.join(dir, "running");
    const record = path.join(dir, "overlap.log");
    await writeFile(
      wrapper,
      `#!/bin/sh\n[ -e "${marker}" ] && echo overlap >> "${record}"\ntouch "${marker}"\nipmitool "$@"; rc=$?\nrm -f "${marker}"\necho done >> "${record}"\nexit $rc\n`,
    );
    await chmod(wrapper, 0o700);
    const d = driver(BASE_PORT + 2, { binary: wrapper });
    const dead = driver(BASE_PORT + 3, { callTimeoutMs: 4000 }); // nothing listens there
    t.after(() => d.close());
    t.after(() => dead.close());
    const started = Date.now();
    const deadCall = dead.powerState().then(
      () => "answered",
      (e: BmcError) => e.code,
    );
    const states = await Promise.all([d.powerState(), d.power("On"), d.powerState(), d.powerState()]);
    const liveMs = Date.now() - started;
    assert.deepEqual([states[0], states[2], states[3]], ["Off", "On", "On"]);
    const log = await readFile(record, "utf8");
    assert.ok(!log.includes("overlap"), "two ipmitool runs overlapped on one BMC");
    assert.equal(log.trim().split("\n").length, 4);
    const code = await deadCall;
    assert.ok(code === "unreachable" || code === "timeout", code);
    assert.ok(Date.now() - started < 15_000, "the dead BMC's call is bounded");
    assert.ok(liveMs < 10_000, `the live BMC waited for the dead one (${liveMs} ms)`);
  });

  it("parses ipmitool's boot flags: valid/invalid, next boot vs persistent, EFI", () => {
    const text = (valid: boolean, persistent: boolean, device: string) =>
      ` Boot Flags :\n   - Boot Flag ${valid ? "Valid" : "Invalid"}\n   - Options apply to ${persistent ? "all future boots" : "only next boot"}\n   - BIOS EFI boot \n   - Boot Device Selector : ${device}\n`;
    assert.deepEqual(parseBootFlags(text(true, false, "Force PXE")), { target: "Pxe", enabled: "Once", mode: "UEFI" });
    assert.deepEqual(parseBootFlags(text(true, true, "Force Boot from default Hard-Drive")), {
      target: "Hdd",
      enabled: "Continuous",
      mode: "UEFI",
    });
    assert.equal(parseBootFlags(text(false, false, "Force PXE")).enabled, "Disabled");
    assert.deepEqual(parseBootFlags(text(true, false, "Force Boot from CD/DVD")), {
      target: "None",
      enabled: "Once",
      mode: "UEFI",
      reportedTarget: "Force Boot from CD/DVD",
    });
  });

  it("the BMC flows repave an IPMI Machine: one-time PXE, ForceOff, On; no password on the stream", async (t) => {
    if (!requireTool(t, "ipmi_sim") || !requireTool(t, "ipmitool")) return;
    const port = BASE_PORT + 4;
    const { sim: s } = await sim(t, port);
    s.ipmitool(["chassis", "power", "on"]);
    const { dir: root, beforeRemove } = await tempDir(t);
    const dir = path.join(root, "machines");
    await mkdir(dir);
    const machine = (repave: number) => `apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata: {name: ipmi-01}
spec:
  pxe:
    image: ghcr.io/azure/images/host-ubuntu2404:v1
    dhcpLeases:
    - {mac: "aa:bb:cc:dd:ee:41", ipv4: "10.0.0.41", subnetMask: "255.255.255.0", gateway: "10.0.0.1"}
    ipmi:
      host: 127.0.0.1
      port: ${port}
      username: admin
      cipherSuite: 3
      bootMode: UEFI
      passwordRef: {name: bmc-ipmi-01, namespace: default}
  operations: {rebootCounter: 0, repaveCounter: ${repave}}
`;
    await writeFile(path.join(dir, "ipmi-01.yaml"), machine(0));
    await writeFile(
      path.join(dir, "secret.yaml"),
      `apiVersion: v1\nkind: Secret\nmetadata: {name: bmc-ipmi-01, namespace: default}\nstringData: {password: "${PASSWORD}"}\n`,
      { mode: 0o600 },
    );
    const inv = new FileInventory({ dir, stateDir: path.join(root, "state"), log: silentLog, watch: false });
    await inv.load();
    assert.deepEqual(inv.problems(), []);
    const events = new BootEventBus({ startSeq: 1 });
    const seen: StreamEvent[] = [];
    events.subscribe((e) => seen.push(e));
    const rec = new BmcReconciler({
      backend: inv,
      driverFor: bmcDriverFactory({
        backend: inv,
        secrets: inv.secrets,
        ipmiTuning: { tryTimeoutSeconds: 1, retries: 1 },
      }),
      events,
      log: silentLog,
      options: { pollMs: 50 },
    });
    beforeRemove(async () => {
      await rec.stop();
      await inv.close();
    });
    rec.start();
    await writeFile(path.join(dir, "ipmi-01.yaml"), machine(1));
    await inv.reload();
    await waitFor(
      "Repaved=False/Pending",
      () => (findCondition(inv.get("ipmi-01")?.status?.conditions, "Repaved")?.reason === "Pending" ? true : undefined),
      30_000,
    );
    await rec.idle();
    assert.equal(s.chassis("boot"), "pxe");
    assert.equal(s.chassis("power"), "1");
    const log = s.chassis("log").split("\n");
    assert.ok(log.indexOf("boot pxe") < log.lastIndexOf("power 0"), log.join(","));
    assert.ok(log.lastIndexOf("power 0") < log.lastIndexOf("power 1"), log.join(","));
    const steps = seen.filter((e) => e.step.startsWith("bmc.")).map((e) => `${e.step} ${e.result}`);
    assert.ok(steps.includes("bmc.set-boot-override ok"), steps.join(", "));
    assert.ok(steps.includes("bmc.power-cycle ok"), steps.join(", "));
    assert.match(String(seen.find((e) => e.step === "bmc.power")?.detail?.driver), /^ipmi 127\.0\.0\.1:/);
    assert.ok(!JSON.stringify(seen).includes(PASSWORD));
    assert.ok(!JSON.stringify(inv.get("ipmi-01")).includes(PASSWORD));
  });
});
