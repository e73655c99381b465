import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  jsonLines,
  type LoggedProcess,
  mentionsFile,
  missingVmPrerequisites,
  run,
  runPxeVm,
  startApplianceInNetns,
  type VmMachine,
  vmLabPaths,
  vmMachineYaml,
  waitApplianceHealthy,
  waitUntil,
} from "./harness.js";

/**
 * Real firmware boots against metalman: OVMF's own UEFI PXE stack (shim -> GRUB over TFTP)
 * and SeaBIOS with the iPXE ROM (boot.ipxe + kernel over HTTP), each in QEMU (TCG) on a
 * bridge in a private network namespace, with metalman serving DHCP in interface mode.
 * The payload (netboot-images/lab-test) calls `/pxe/disable?machine=<name>` from its init,
 * with the URL rendered per machine from grub.cfg.tmpl / boot.ipxe.tmpl.
 *
 * Needs root, qemu-system-x86, ovmf, ipxe-qemu, apt lists (for the payload's .debs) and a
 * built tree (tsc + native addon). Outside CI a missing piece skips; with CI=true it fails.
 */

const SERVER_IP = "10.77.0.1";
const BRIDGE = "br0";
const HTTP_PORT = 8080;
const HEALTH_PORT = 8081;
const SERVE_URL = `http://${SERVER_IP}:${HTTP_PORT}`;
const VM_TIMEOUT_S = 240;

const UEFI_VM: VmMachine = { firmware: "uefi", name: "lab-vm-uefi", mac: "52:54:00:77:00:11", ipv4: "10.77.0.11" };
const BIOS_VM: VmMachine = { firmware: "bios", name: "lab-vm-bios", mac: "52:54:00:77:00:12", ipv4: "10.77.0.12" };

const { lab, serverMain, imageBuilder } = vmLabPaths();
const missing = missingVmPrerequisites({ files: [path.join(lab, "build-test-netboot.sh")] });
const inCi = process.env.CI === "true";
const skipReason = !inCi && missing.length > 0 ? `missing: ${missing.join(", ")}` : false;

describe("PXE boot of real firmware against metalman (QEMU TCG)", { skip: skipReason, timeout: 600_000 }, () => {
  const ns = `mmvm${process.pid}`;
  let work = "";
  let netnsUp = false;
  let server: LoggedProcess | undefined;
  const vms = new Set<LoggedProcess>();

  before(async () => {
    assert.deepEqual(missing, [], `prerequisites missing (CI=true): ${missing.join(", ")}`);
    work = mkdtempSync(path.join(tmpdir(), "metalman-vm-"));
    const imageDir = path.join(work, "image");
    // .debs are cached by the lab builder ($LAB_DEB_CACHE or ~/.cache/lab-netboot-debs).
    run(imageBuilder, [imageDir, "--http-port", String(HTTP_PORT)], { timeoutMs: 240_000 });

    const inventory = path.join(work, "inventory");
    mkdirSync(inventory);
    for (const vm of [UEFI_VM, BIOS_VM])
      writeFileSync(
        path.join(inventory, `${vm.name}.yaml`),
        vmMachineYaml(vm, imageDir, { gateway: SERVER_IP, dns: SERVER_IP }),
      );
    for (const dir of ["state", "cache"]) mkdirSync(path.join(work, dir));

    run(path.join(lab, "vm-netns.sh"), ["up", ns, BRIDGE, `${SERVER_IP}/24`]);
    netnsUp = true;

    server = startApplianceInNetns({
      ...{ ns, serverMain, work, inventory, serverIp: SERVER_IP, serveUrl: SERVE_URL },
      httpPort: HTTP_PORT,
      healthPort: HEALTH_PORT,
      dhcpArgs: ["--dhcp-interface", BRIDGE],
      logLevel: "info",
    });
    const healthy = await waitApplianceHealthy(server, { ns, serverIp: SERVER_IP, healthPort: HEALTH_PORT });
    assert.ok(healthy, `metalman did not become healthy:\n${server.tail()}`);
  });

  after(async () => {
    for (const vm of vms) await vm.stop();
    await server?.stop();
    if (netnsUp) run(path.join(lab, "vm-netns.sh"), ["down", ns]);
    if (work !== "" && process.env.METALMAN_KEEP_VM_LOGS !== "1") rmSync(work, { recursive: true, force: true });
    else if (work !== "") console.log(`# logs kept in ${work}`);
  });

  async function boot(vm: VmMachine): Promise<{ serial: string; seconds: number; events: Record<string, unknown>[] }> {
    const {
      code,
      process: vmProcess,
      serial,
      seconds,
    } = await runPxeVm({
      script: path.join(lab, "pxe-vm.sh"),
      work,
      label: vm.firmware,
      firmware: vm.firmware,
      mac: vm.mac,
      serverIp: SERVER_IP,
      bridge: BRIDGE,
      ns,
      wait: "LAB-PXE-MARKER (done|no-nic)",
      timeoutS: VM_TIMEOUT_S,
      running: vms,
    });
    assert.equal(
      code,
      0,
      `pxe-vm.sh ${vm.firmware} failed:\n${vmProcess.tail()}\n--- serial ---\n${serial.slice(-3000)}`,
    );
    // The callback is logged by the server after the payload got its answer: give the pipe a moment.
    const forMachine = () =>
      jsonLines(server?.lines ?? []).filter(
        (r) => typeof r.step === "string" && (r.machine === vm.name || r.mac === vm.mac),
      );
    await waitUntil(() => forMachine().some((r) => r.step === "pxe.disable"), 5000);
    return { serial, seconds, events: forMachine() };
  }

  function assertCommon(vm: VmMachine, serial: string, events: Record<string, unknown>[]) {
    const context = `\n--- serial ---\n${serial.slice(-2000)}\n--- server ---\n${server?.tail(30)}`;
    assert.match(serial, /LAB-PXE-MARKER callback-ok url=\S+/, `no callback-ok on the console${context}`);
    assert.match(serial, /LAB-PXE-MARKER done/, `payload did not finish${context}`);
    const callbackUrl = /LAB-PXE-MARKER callback-ok url=(\S+)/.exec(serial)?.[1] ?? "";
    // Rendered per machine: the URL comes from the machine's own template output.
    assert.ok(
      callbackUrl.startsWith(`${SERVE_URL}/pxe/disable?machine=${vm.name}&`),
      `callback URL ${callbackUrl} not rendered for ${vm.name}${context}`,
    );
    for (const step of ["dhcp.offer", "dhcp.ack", "pxe.disable"]) {
      assert.ok(
        events.some((r) => r.step === step && r.result === "ok"),
        `no ${step} ok event for ${vm.name}${context}`,
      );
    }
    assert.ok(
      events.some((r) => r.step === "pxe.disable" && r.machine === vm.name),
      `pxe.disable not attributed to ${vm.name}${context}`,
    );
    // The pending repave (spec 1) is recorded as done in the Machine's status.
    const stored = JSON.parse(readFileSync(path.join(work, "state", "status", `${vm.name}.json`), "utf8")) as {
      status?: { operations?: { repaveCounter?: number }; conditions?: { type: string; status: string }[] };
    };
    assert.equal(stored.status?.operations?.repaveCounter, 1, `repave not recorded for ${vm.name}`);
    assert.ok(stored.status?.conditions?.some((c) => c.type === "Repaved" && c.status === "True"));
  }

  it("UEFI: OVMF PXE -> shimx64.efi -> grubx64.efi -> kernel, all over TFTP", { timeout: 300_000 }, async (t) => {
    const { serial, seconds, events } = await boot(UEFI_VM);
    t.diagnostic(`uefi: ${seconds} s from QEMU start to LAB-PXE-MARKER done`);
    assertCommon(UEFI_VM, serial, events);
    for (const file of ["shimx64.efi", "grubx64.efi", "grub/grub.cfg", "vmlinuz", "initrd.img"]) {
      assert.ok(
        events.some((r) => r.step === "tftp.transfer" && r.result === "ok" && mentionsFile(r, file)),
        `no successful TFTP transfer of ${file} for ${UEFI_VM.name}\n${server?.tail(30)}`,
      );
    }
  });

  it("BIOS: SeaBIOS + iPXE ROM -> boot.ipxe -> kernel, over HTTP", { timeout: 300_000 }, async (t) => {
    const { serial, seconds, events } = await boot(BIOS_VM);
    t.diagnostic(`bios: ${seconds} s from QEMU start to LAB-PXE-MARKER done`);
    assertCommon(BIOS_VM, serial, events);
    for (const file of ["boot.ipxe", "vmlinuz", "initrd.img"]) {
      assert.ok(
        events.some((r) => String(r.step).startsWith("http.") && r.result === "ok" && mentionsFile(r, file)),
        `no successful HTTP fetch of ${file} for ${BIOS_VM.name}\n${server?.tail(30)}`,
      );
    }
  });
});
