/**
 * Issue 6 proof (e2e), one namespace, one image build, three phases:
 * 1. bump repaveCounter on a Machine whose BMC is the Redfish emulator backed by a qemu VM.
 *    The appliance power-cycles the VM through Redfish with a one-time PXE override; the VM
 *    (SeaBIOS + iPXE; a bootable disk that only halts comes first, so only the override can
 *    make it PXE-boot) boots the lab payload from the appliance, whose /pxe/disable completes
 *    the repave; every step is on the Machine's event stream; no password in the log.
 * 2. the same repave through the real CLI: `metalman machine repave NAME --wait` over the
 *    management socket (a HostReplace operation): its progress output, exit code 0, the
 *    override consumed (two PXE boots in all).
 * 3. IPMI (requested while phase 2 runs, so both VMs boot at once): OpenIPMI's ipmi_sim is
 *    the BMC of a second VM (qemu `ipmi-bmc-extern` + `isa-ipmi-kcs`; ipmi_sim's startcmd
 *    starts qemu at "power on", and "power off" ends it). A repave request makes the appliance
 *    drive it with ipmitool: boot device (ipmi_sim keeps no boot flags for a VM and refuses to
 *    report them; a refusal both ways would be BootOrderConfigSupported=False), ForceOff, On
 *    (qemu starts; its own boot order is the network), and /pxe/disable completes the repave.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { IpmiSim } from "../support/ipmi-sim.js";
import { repoRoot, sharedDir } from "../support/paths.js";
import {
  BMC_VM_COMMANDS,
  haltDiskVmArgs,
  netnsDown,
  netnsUp,
  prepareBmcVmWork,
  removeBmcVmWork,
  startBmcVmHelper,
} from "./bmc-vm.js";
import { jsonLines, type LoggedProcess, missingPrerequisites, run, waitUntil } from "./harness.js";
import { addTap } from "./repave-vm.js";

const NS = `bm${process.pid}`;
const SERVER_IP = "10.78.0.1";
const BRIDGE = "br0";
const TAP = "bmtap0";
const IPMI_TAP = "bmtap1";
/** ipmi_sim's LAN channel and the VM serial port qemu connects to (both on SERVER_IP, in the namespace). */
const IPMI_PORT = 15401;
const IPMI_SERIAL_PORT = 15402;
const HTTP_PORT = 8080;
const HEALTH_PORT = 8081;
const BMC_PORT = 8443;
const VM = { name: "bmc-vm-01", mac: "52:54:00:78:00:11", ipv4: "10.78.0.11" };
const PASSWORD = "e2e-Bmc-Pa55";
const IPMI_VM = { name: "ipmi-vm-01", mac: "52:54:00:78:00:12", ipv4: "10.78.0.12" };
const IPMI_PASSWORD = "e2e-Ipmi-Pa55";

const root = repoRoot();
const lab = path.join(sharedDir(), "lab");
const helper = path.join(root, "dist", "test", "vm", "bmc-e2e-appliance.js");
const missing = missingPrerequisites(
  [...BMC_VM_COMMANDS, "ipmitool", "ipmi_sim"],
  [
    path.join(lab, "vm-netns.sh"),
    helper,
    path.join(root, "server", "native", "build", "Release", "metalman_dhcp_socket.node"),
  ],
);
const skipReason = process.env.CI !== "true" && missing.length > 0 ? `missing: ${missing.join(", ")}` : false;

function machineYaml(imageDir: string, repave: number): string {
  return `apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata: {name: ${VM.name}}
spec:
  pxe:
    image: "dir:${imageDir}"
    dhcpLeases:
    - {mac: "${VM.mac}", ipv4: "${VM.ipv4}", subnetMask: "255.255.255.0", gateway: "${SERVER_IP}", dns: ["${SERVER_IP}"]}
    redfish:
      url: https://${SERVER_IP}:${BMC_PORT}
      username: admin
      passwordRef: {name: bmc-vm-01, namespace: default, key: password}
  operations: {rebootCounter: 0, repaveCounter: ${repave}}
`;
}

function ipmiMachineYaml(imageDir: string, repave: number): string {
  return `apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata: {name: ${IPMI_VM.name}}
spec:
  pxe:
    image: "dir:${imageDir}"
    dhcpLeases:
    - {mac: "${IPMI_VM.mac}", ipv4: "${IPMI_VM.ipv4}", subnetMask: "255.255.255.0", gateway: "${SERVER_IP}", dns: ["${SERVER_IP}"]}
    ipmi:
      host: ${SERVER_IP}
      port: ${IPMI_PORT}
      username: admin
      cipherSuite: 3
      passwordRef: {name: bmc-ipmi-vm-01, namespace: default}
  operations: {rebootCounter: 0, repaveCounter: ${repave}}
`;
}

/** The BMC passwords, as an operator keeps them: v1 Secrets in the inventory, 0600. */
function secretsYaml(): string {
  return [
    ["bmc-vm-01", PASSWORD],
    ["bmc-ipmi-vm-01", IPMI_PASSWORD],
  ]
    .map(
      ([name, pw]) =>
        `apiVersion: v1\nkind: Secret\nmetadata: {name: ${name}, namespace: default}\nstringData: {password: "${pw}"}\n`,
    )
    .join("---\n");
}

/** The real CLI over the management socket, asynchronously (the test keeps watching the log). */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(root, "dist", "server", "main.js"), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("repave through the VM-backed BMC emulator (QEMU TCG)", { skip: skipReason, timeout: 900_000 }, () => {
  let work = "";
  let nsUp = false;
  let server: LoggedProcess | undefined;
  let imageDir = "";
  let inventory = "";
  let ipmiSim: IpmiSim | undefined;

  before(async () => {
    assert.deepEqual(missing, [], `prerequisites missing (CI=true): ${missing.join(", ")}`);
    const prepared = prepareBmcVmWork("metalman-bmc-e2e-", HTTP_PORT);
    ({ work, imageDir, inventory } = prepared);
    writeFileSync(path.join(inventory, `${VM.name}.yaml`), machineYaml(imageDir, 0));
    writeFileSync(path.join(inventory, `${IPMI_VM.name}.yaml`), ipmiMachineYaml(imageDir, 0));
    writeFileSync(path.join(inventory, "bmc-secrets.yaml"), secretsYaml(), { mode: 0o600 });
    netnsUp(NS, BRIDGE, `${SERVER_IP}/24`);
    nsUp = true;
    addTap(NS, TAP, BRIDGE);
    addTap(NS, IPMI_TAP, BRIDGE);
    const qemuArgs = haltDiskVmArgs(work, TAP, VM.mac);
    // The IPMI VM: no disk, the NIC is its boot device; ipmi_sim starts it at "power on".
    const ipmiQemu = [
      ...["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "512", "-smp", "1", "-nodefaults"],
      ...["-display", "none", "-monitor", "none", "-serial", `file:${path.join(work, "ipmi-serial.log")}`],
      ...["-chardev", `socket,id=ipmi0,host=${SERVER_IP},port=${IPMI_SERIAL_PORT},reconnect=10`],
      ...["-device", "ipmi-bmc-extern,id=bmc0,chardev=ipmi0", "-device", "isa-ipmi-kcs,bmc=bmc0"],
      ...["-netdev", `tap,id=n0,ifname=${IPMI_TAP},script=no,downscript=no`],
      ...["-device", `virtio-net-pci,netdev=n0,mac=${IPMI_VM.mac}`, "-boot", "order=n"],
    ].join(" ");
    const ipmiDir = path.join(work, "ipmi");
    mkdirSync(ipmiDir);
    ipmiSim = await IpmiSim.start({
      dir: ipmiDir,
      address: SERVER_IP,
      port: IPMI_PORT,
      username: "admin",
      password: IPMI_PASSWORD,
      vm: { serialPort: IPMI_SERIAL_PORT, startcmd: ipmiQemu, poweroffWaitSeconds: 5, killWaitSeconds: 5 },
      prefix: ["ip", "netns", "exec", NS],
    });
    server = startBmcVmHelper({
      ns: NS,
      helper,
      serverIp: SERVER_IP,
      bridge: BRIDGE,
      ports: { bmc: BMC_PORT, http: HTTP_PORT, health: HEALTH_PORT },
      work: prepared,
      qemuArgs,
      password: PASSWORD,
    });
    const ready = await waitUntil(
      () => !server?.running || server.lines.some((l) => l.includes("bmc-e2e-appliance: ready")),
      60_000,
    );
    assert.ok(ready && server.running, `helper did not start:\n${server.tail()}`);
  });

  after(async () => {
    await server?.stop();
    // Power the IPMI VM off through its BMC (ipmi_sim ends the qemu it started), then stop ipmi_sim.
    ipmiSim?.ipmitool(["chassis", "power", "off"]);
    await ipmiSim?.stop();
    if (nsUp) netnsDown(NS);
    removeBmcVmWork(work);
  });

  it("bumping repaveCounter power-cycles the VM, which PXE-boots once and completes the repave", async () => {
    const events = () => jsonLines(server?.lines ?? []).filter((r) => r.machine === VM.name);
    // No repave pending yet: the VM idles without a network boot.
    await waitUntil(() => events().some((r) => r.step === "bmc.power-state"), 30_000);
    // SeaBIOS + iPXE would send its first DISCOVER within ~10 s: give it 25 s to not do so.
    await new Promise((resolve) => setTimeout(resolve, 25_000));
    assert.ok(
      !events().some((r) => typeof r.step === "string" && r.step.startsWith("dhcp.")),
      "the VM PXE-booted without the override",
    );
    writeFileSync(path.join(inventory, `${VM.name}.yaml`), machineYaml(imageDir, 1));
    const done = await waitUntil(
      () => events().some((r) => r.step === "pxe.disable" && r.result === "ok"),
      400_000,
      500,
    );
    const serial = readFileSync(path.join(work, "serial.log"), "latin1");
    assert.ok(done, `no /pxe/disable:\n${server?.tail(40)}\n--- serial ---\n${serial.slice(-2000)}`);
    const steps = events().map((r) => `${r.step} ${r.result}`);
    const order = ["bmc.set-boot-override ok", "bmc.power ok", "dhcp.offer ok", "pxe.disable ok"];
    let at = -1;
    for (const step of order) {
      const i = steps.indexOf(step, at + 1);
      assert.ok(i > at, `${step} missing or out of order in ${steps.join(", ")}`);
      at = i;
    }
    const state = JSON.parse(readFileSync(path.join(work, "state", "status", `${VM.name}.json`), "utf8"));
    assert.equal(state.status.operations.repaveCounter, 1);
    assert.ok(
      state.status.conditions.some(
        (c: { type: string; status: string }) => c.type === "Repaved" && c.status === "True",
      ),
    );
    assert.ok(!server!.lines.join("\n").includes(PASSWORD), "the password never reaches the log");
  });

  it("the same repave through the CLI: `metalman machine repave --wait` shows progress and exits 0", async () => {
    const events = () => jsonLines(server?.lines ?? []).filter((r) => r.machine === VM.name);
    const disablesBefore = events().filter((r) => r.step === "pxe.disable" && r.result === "ok").length;
    const state = path.join(work, "state");
    const repave = cli(["machine", "repave", VM.name, "--state-dir", state, "--wait", "--timeout", "7m"]);
    // Meanwhile the IPMI Machine's repave (asserted in the next test): both VMs boot at once, which
    // keeps CI short and shows that two BMCs of different kinds are driven side by side.
    // Off until its BMC powers it on: ipmi_sim runs qemu only at "power on".
    assert.match(ipmiSim!.ipmitool(["chassis", "power", "status"]).stdout, /Chassis Power is off/);
    writeFileSync(path.join(inventory, `${IPMI_VM.name}.yaml`), ipmiMachineYaml(imageDir, 1));
    // The installer's /pxe/disable writes BootImageWritten; the installed OS's cloud-init then
    // reports. There is no OS on the halt disk, so the test sends the "finish" of the last
    // stage as cloud-init's webhook reporter would, from the Machine's address (the VM is off:
    // the payload powers it off after its callback).
    const written = await waitUntil(
      () => events().filter((r) => r.step === "pxe.disable" && r.result === "ok").length > disablesBefore,
      400_000,
      500,
    );
    assert.ok(written, `no second /pxe/disable:\n${server?.tail(40)}`);
    run("ip", ["netns", "exec", NS, "ip", "addr", "add", `${VM.ipv4}/32`, "dev", "lo"]);
    const finish = JSON.stringify({
      name: "modules-final",
      description: "running modules for final",
      event_type: "finish",
      origin: "cloudinit",
      timestamp: Date.now() / 1000,
      result: "SUCCESS",
    });
    run("ip", [
      ...["netns", "exec", NS, "curl", "-sf", "--interface", VM.ipv4, "-H", "content-type: application/json"],
      ...["--data-binary", finish, `http://${SERVER_IP}:${HTTP_PORT}/cloudinit/log`],
    ]);
    const result = await repave;
    assert.equal(result.code, 0, `metalman machine repave: exit ${result.code}\n${result.stdout}\n${result.stderr}`);
    const out = result.stdout;
    assert.match(out, new RegExp(`operation ${VM.name}-repave-\\S+ \\(HostReplace on ${VM.name}\\) created`));
    for (const progress of [
      /event .* bmc\.set-boot-override ok .*wantTarget=Pxe wantEnabled=Once/,
      /bmc\.power ok .*action=On/,
    ]) {
      assert.match(out, progress);
    }
    assert.match(out, /phase {2}InProgress \(WaitingRepave\)/);
    assert.match(out, /phase {2}Complete .*HostReplace completed/);
    assert.ok(!out.includes(PASSWORD));
  });

  it("IPMI: ipmi_sim + qemu (ipmi-bmc-extern): a repave request power-cycles the VM with ipmitool, which PXE-boots", async () => {
    const events = () => jsonLines(server?.lines ?? []).filter((r) => r.machine === IPMI_VM.name);
    // The repave was requested by the previous test, while the CLI repave ran.
    const done = await waitUntil(
      () => events().some((r) => r.step === "pxe.disable" && r.result === "ok"),
      400_000,
      500,
    );
    const serial = (() => {
      try {
        return readFileSync(path.join(work, "ipmi-serial.log"), "latin1");
      } catch {
        return "(no serial log: qemu never started)";
      }
    })();
    assert.ok(
      done,
      `no /pxe/disable from the IPMI VM:\n${server?.tail(40)}\n--- serial ---\n${serial.slice(-2000)}\n--- ipmi_sim ---\n${ipmiSim?.output.join("")}`,
    );
    const steps = events().map((r) => `${r.step} ${r.result}`);
    const order = ["bmc.power ok", "bmc.power-cycle ok", "dhcp.offer ok", "pxe.disable ok"];
    let at = -1;
    for (const step of order) {
      const i = steps.indexOf(step, at + 1);
      assert.ok(i > at, `${step} missing or out of order in ${steps.join(", ")}`);
      at = i;
    }
    // The boot device went to ipmi_sim. With a VM attached it accepts "Set System Boot Options"
    // while the VM is off, but refuses to report them ("Invalid data field in request"): the
    // flow then sets it once more before On. Every refusal carries ipmitool's own message.
    const bootCalls = events().filter((r) => String(r.step).includes("boot-override"));
    assert.ok(bootCalls.length > 0, steps.join(", "));
    for (const refused of bootCalls.filter((r) => r.result === "error")) {
      assert.equal(refused.reason, "not-supported");
      assert.match(String(refused.bmcMessage), /Chassis Boot Parameter .* failed: Invalid data field in request/);
    }
    assert.match(String(bootCalls[0]?.driver), new RegExp(`^ipmi ${SERVER_IP.replace(/\./g, "\\.")}:${IPMI_PORT}$`));
    const state = JSON.parse(readFileSync(path.join(work, "state", "status", `${IPMI_VM.name}.json`), "utf8"));
    assert.equal(state.status.operations.repaveCounter, 1);
    const conditions = state.status.conditions as Array<{ type: string; status: string; reason: string }>;
    assert.ok(conditions.some((c) => c.type === "Repaved" && c.status === "True"));
    // BootOrderConfigSupported=False only if ipmi_sim refused the boot device both ways.
    const setOk = bootCalls.some((r) => r.step === "bmc.set-boot-override" && r.result === "ok");
    assert.equal(
      conditions.some((c) => c.type === "BootOrderConfigSupported" && c.status === "False"),
      !setOk,
    );
    assert.ok(!server!.lines.join("\n").includes(IPMI_PASSWORD), "the IPMI password never reaches the log");
  });

  it("the Redfish one-time overrides were consumed: the VM booted disk, then PXE twice", async () => {
    await server?.stop();
    const summary = jsonLines(server?.lines ?? []).find((r) => r.emulator) as
      | { emulator: { override: { enabled: string }; boots: string[] } }
      | undefined;
    assert.equal(summary?.emulator.override.enabled, "Disabled", "the one-time override was consumed");
    assert.deepEqual(summary?.emulator.boots, ["disk", "pxe", "pxe"]);
  });
});
