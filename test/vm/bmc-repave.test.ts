/**
 * Issue 6 proof (e2e): bump repaveCounter on a Machine whose BMC is the emulator backed by a
 * qemu VM. The appliance power-cycles the VM through Redfish with a one-time PXE override;
 * the VM (SeaBIOS + iPXE; a bootable disk that only halts comes first, so only the override
 * can make it PXE-boot)
 * boots the lab payload from the appliance, whose /pxe/disable completes the repave; the
 * override is consumed; every step is on the Machine's event stream; no password in the log.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { repoRoot, sharedDir } from "../support/paths.js";
import { jsonLines, LoggedProcess, missingPrerequisites, run, waitUntil } from "./harness.js";

const NS = `m8a${process.pid}`;
const SERVER_IP = "10.78.0.1";
const BRIDGE = "br0";
const TAP = "m8atap0";
const HTTP_PORT = 8080;
const HEALTH_PORT = 8081;
const BMC_PORT = 8443;
const VM = { name: "bmc-vm-01", mac: "52:54:00:78:00:11", ipv4: "10.78.0.11" };
const PASSWORD = "e2e-Bmc-Pa55";

const root = repoRoot();
const lab = path.join(sharedDir(), "lab");
const helper = path.join(root, "dist", "test", "vm", "bmc-e2e-appliance.js");
const imageBuilder = path.join(root, "netboot-images", "lab-test", "build.sh");
const missing = missingPrerequisites(
  ["qemu-system-x86_64", "ip", "curl", "apt-get", "dpkg-deb", "cpio", "gzip"],
  [
    path.join(lab, "vm-netns.sh"),
    helper,
    path.join(root, "server", "native", "build", "Release", "metalman_dhcp_socket.node"),
  ],
);
const skipReason = process.env.CI !== "true" && missing.length > 0 ? `missing: ${missing.join(", ")}` : false;

/** 1 MiB raw disk whose boot sector is `hlt; jmp $-1` (sleeps, no CPU burnt) with the 55 AA signature. */
function haltDisk(): Buffer {
  const disk = Buffer.alloc(1024 * 1024);
  disk.set([0xf4, 0xeb, 0xfd], 0);
  disk.set([0x55, 0xaa], 510);
  return disk;
}

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

describe("repave through the VM-backed BMC emulator (QEMU TCG)", { skip: skipReason, timeout: 600_000 }, () => {
  let work = "";
  let netnsUp = false;
  let server: LoggedProcess | undefined;
  let imageDir = "";
  let inventory = "";

  before(async () => {
    assert.deepEqual(missing, [], `prerequisites missing (CI=true): ${missing.join(", ")}`);
    work = mkdtempSync(path.join(tmpdir(), "metalman-bmc-e2e-"));
    imageDir = path.join(work, "image");
    run(imageBuilder, [imageDir, "--http-port", String(HTTP_PORT)], { timeoutMs: 240_000 });
    inventory = path.join(work, "inventory");
    for (const dir of [inventory, path.join(work, "state"), path.join(work, "cache")]) mkdirSync(dir);
    writeFileSync(path.join(inventory, `${VM.name}.yaml`), machineYaml(imageDir, 0));
    run(path.join(lab, "vm-netns.sh"), ["up", NS, BRIDGE, `${SERVER_IP}/24`]);
    netnsUp = true;
    run("ip", ["netns", "exec", NS, "ip", "tuntap", "add", "dev", TAP, "mode", "tap"]);
    run("ip", ["netns", "exec", NS, "ip", "link", "set", TAP, "master", BRIDGE]);
    run("ip", ["netns", "exec", NS, "ip", "link", "set", TAP, "up"]);
    const disk = path.join(work, "halt.img");
    writeFileSync(disk, haltDisk());
    const qemuArgs = [
      ...["-machine", "q35", "-accel", "tcg", "-m", "512", "-smp", "1", "-nodefaults", "-display", "none"],
      ...["-monitor", "none", "-serial", `file:${path.join(work, "serial.log")}`],
      // A bootable disk that only halts, booted first: without the BMC's one-time override
      // this VM never reaches its NIC (SeaBIOS falls through to the NIC when no disk boots).
      ...["-drive", `file=${disk},format=raw,if=ide`, "-boot", "order=c"],
      ...[
        "-netdev",
        `tap,id=n0,ifname=${TAP},script=no,downscript=no`,
        "-device",
        `virtio-net-pci,netdev=n0,mac=${VM.mac}`,
      ],
    ];
    server = new LoggedProcess(
      "ip",
      [
        ...[
          "netns",
          "exec",
          NS,
          process.execPath,
          helper,
          SERVER_IP,
          String(BMC_PORT),
          work,
          JSON.stringify(qemuArgs),
          "--",
        ],
        ...["--inventory", inventory, "--state-dir", path.join(work, "state"), "--cache-dir", path.join(work, "cache")],
        ...[
          "--bind-address",
          SERVER_IP,
          "--serve-url",
          `http://${SERVER_IP}:${HTTP_PORT}`,
          "--http-port",
          String(HTTP_PORT),
        ],
        ...["--tftp-port", "69", "--health-port", String(HEALTH_PORT), "--dhcp-port", "67"],
        ...["--dhcp-interface", BRIDGE, "--log-level", "info", "--image-root", work],
      ],
      path.join(work, "server.log"),
      { ...process.env, METALMAN_E2E_BMC_PASSWORD: PASSWORD },
    );
    const ready = await waitUntil(
      () => !server?.running || server.lines.some((l) => l.includes("bmc-e2e-appliance: ready")),
      60_000,
    );
    assert.ok(ready && server.running, `helper did not start:\n${server.tail()}`);
  });

  after(async () => {
    await server?.stop();
    if (netnsUp) run(path.join(lab, "vm-netns.sh"), ["down", NS]);
    if (work !== "" && process.env.METALMAN_KEEP_VM_LOGS !== "1") rmSync(work, { recursive: true, force: true });
    else if (work !== "") console.log(`# logs kept in ${work}`);
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
    await server?.stop();
    const summary = jsonLines(server?.lines ?? []).find((r) => r.emulator) as
      | { emulator: { override: { enabled: string }; boots: string[] } }
      | undefined;
    assert.equal(summary?.emulator.override.enabled, "Disabled", "the one-time override was consumed");
    assert.deepEqual(summary?.emulator.boots.slice(0, 2), ["disk", "pxe"]);
  });
});
