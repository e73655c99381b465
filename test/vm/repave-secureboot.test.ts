/**
 * Issue 7 proof (e2e): a whole repave with our debian-12 netboot image, built here from Debian
 * packages (netboot-images/debian-12/build/build.sh). The UEFI Machine names the image in a local
 * docker-registry (pushed by skopeo, pulled and cached by the appliance), the BIOS Machine the same
 * build as a `dir:` image.
 *
 *   1. A Machine has repaveCounter 1 and no status; its VM has a blank disk.
 *   2. The VM PXE-boots from the appliance: UEFI with Secure Boot enforced (OVMF, Microsoft +
 *      Debian keys) through shim -> GRUB -> signed kernel over TFTP, or SeaBIOS + iPXE through
 *      boot.ipxe over HTTP.
 *   3. The installer fetches disk.img.gz, verifies it and writes it to the disk.
 *   4. It calls /pxe/disable: status.operations.repaveCounter = 1 and Repaved=True.
 *   5. The VM reboots and PXE-boots again; grub.cfg / boot.ipxe now boot the local disk, whose
 *      own chain (shim -> GRUB -> kernel under Secure Boot; syslinux on BIOS) starts the installed
 *      system, which prints its marker and posts cloud-init events.
 * Each step is asserted in order from the Machine's event stream (the management API) and from
 * the serial log, so a skipped step fails the test. The image is built once and shared.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type LoggedProcess,
  missingVmPrerequisites,
  run,
  startApplianceInNetns,
  vmLabPaths,
  waitApplianceHealthy,
  waitUntil,
} from "./harness.js";
import {
  addTap,
  diskMismatch,
  firstMissingStep,
  type RepaveVm,
  repaveMachineYaml,
  repaveQemuArgs,
  startQemu,
  startRegistryInNetns,
} from "./repave-vm.js";

const SERVER_IP = "10.151.0.1";
const BRIDGE = "br0";
const HTTP_PORT = 15100;
const HEALTH_PORT = 15101;
/** docker-registry on the namespace's loopback (plain HTTP, as for any loopback registry). */
const REGISTRY = "127.0.0.1:15120";
const IMAGE_REF = `${REGISTRY}/netboot/debian-12:v1`;
const SERVE_URL = `http://${SERVER_IP}:${HTTP_PORT}`;
/** First sector of the image's seed partition (build.sh: 2048 + the 40960-sector ESP). */
const SEED_LBA = 2048 + 40960;
/** QEMU start to the installed system's poweroff: two firmware boots, two kernels, the disk write. */
const VM_TIMEOUT_MS = 480_000;

/** The UEFI VM names its disk (a blank decoy comes first, as /dev/vda); the BIOS VM uses the first disk. */
const UEFI_VM: RepaveVm = {
  firmware: "uefi-sb",
  name: "repave-uefi-sb",
  mac: "52:54:00:51:00:11",
  ipv4: "10.151.0.11",
  targetDisk: "/dev/vdb",
};
const BIOS_VM: RepaveVm = { firmware: "bios", name: "repave-bios", mac: "52:54:00:51:00:12", ipv4: "10.151.0.12" };

const { root, lab, serverMain } = vmLabPaths();
const builder = path.join(root, "netboot-images", "debian-12", "build", "build.sh");
const missing = missingVmPrerequisites({
  commands: ["mformat", "mcopy", "mmd", "sha256sum", "tar", "docker-registry", "skopeo"],
  files: [builder, "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"],
});
const skipReason = process.env.CI !== "true" && missing.length > 0 ? `missing: ${missing.join(", ")}` : false;

interface StreamEvent {
  seq: number;
  step: string;
  result: string;
  machine?: string;
  reason?: string;
  detail?: Record<string, unknown>;
}

describe("repave e2e with the debian-12 image (QEMU TCG)", { skip: skipReason, timeout: 1_200_000 }, () => {
  const ns = `ni${process.pid}`;
  let work = "";
  let imageDir = "";
  let netnsUp = false;
  let server: LoggedProcess | undefined;
  let registry: LoggedProcess | undefined;
  const vms = new Set<LoggedProcess>();

  before(async () => {
    assert.deepEqual(missing, [], `prerequisites missing (CI=true): ${missing.join(", ")}`);
    work = mkdtempSync(path.join(tmpdir(), "metalman-repave-"));
    imageDir = path.join(work, "image");
    const started = Date.now();
    run(builder, [imageDir, "--tag", "v1"], { timeoutMs: 300_000 });
    console.log(`# debian-12 image built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const inventory = path.join(work, "inventory");
    for (const dir of [inventory, path.join(work, "state"), path.join(work, "cache")]) mkdirSync(dir);
    writeFileSync(path.join(inventory, `${UEFI_VM.name}.yaml`), repaveMachineYaml(UEFI_VM, IMAGE_REF, SERVER_IP));
    writeFileSync(
      path.join(inventory, `${BIOS_VM.name}.yaml`),
      repaveMachineYaml(BIOS_VM, `dir:${imageDir}`, SERVER_IP),
    );
    run(path.join(lab, "vm-netns.sh"), ["up", ns, BRIDGE, `${SERVER_IP}/24`]);
    netnsUp = true;
    registry = startRegistryInNetns(ns, path.join(work, "registry"), REGISTRY);
    const registryUp = await waitUntil(() => {
      if (!registry?.running) return true;
      try {
        run("ip", ["netns", "exec", ns, "curl", "-sf", "-m", "2", `http://${REGISTRY}/v2/`], { timeoutMs: 5000 });
        return true;
      } catch {
        return false;
      }
    }, 30_000);
    assert.ok(registryUp && registry.running, `docker-registry did not start:\n${registry.tail()}`);
    // The builder's own publish step (skopeo copy of the OCI layout it wrote).
    run("ip", ["netns", "exec", ns, builder, imageDir, "--push-only", IMAGE_REF, "--insecure"], { timeoutMs: 120_000 });
    server = startApplianceInNetns({
      ...{ ns, serverMain, work, inventory, serverIp: SERVER_IP, serveUrl: SERVE_URL },
      ...{ httpPort: HTTP_PORT, healthPort: HEALTH_PORT },
      dhcpArgs: ["--dhcp-interface", BRIDGE],
      logLevel: "info",
    });
    const healthy = await waitApplianceHealthy(server, { ns, serverIp: SERVER_IP, healthPort: HEALTH_PORT });
    assert.ok(healthy, `metalman did not become healthy:\n${server.tail()}`);
    // The pull is started by the appliance's reconciler (not by a request): wait until it is served.
    let images: { ref: string; state: string; manifestDigest?: string; reason?: string }[] = [];
    const pulled = await waitUntil(
      () => {
        images = (JSON.parse(api("/api/v1/images")) as { items: typeof images }).items;
        return images.some((i) => i.ref === IMAGE_REF && i.state === "ready");
      },
      180_000,
      1000,
    );
    assert.ok(pulled, `${IMAGE_REF} not pulled: ${JSON.stringify(images)}\n${server.tail()}`);
    const digest = readFileSync(path.join(imageDir, "DIGEST"), "utf8").trim();
    assert.equal(images.find((i) => i.ref === IMAGE_REF)?.manifestDigest, digest, "the pushed manifest is served");
  });

  after(async () => {
    for (const vm of vms) await vm.stop();
    await server?.stop();
    await registry?.stop();
    if (netnsUp) run(path.join(lab, "vm-netns.sh"), ["down", ns]);
    if (work !== "" && process.env.METALMAN_KEEP_VM_LOGS !== "1") rmSync(work, { recursive: true, force: true });
    else if (work !== "") console.log(`# logs kept in ${work}`);
  });

  /** GET from the management API (the unix socket in the state folder). */
  function api(route: string): string {
    const socket = path.join(work, "state", "metalman.sock");
    return run("curl", ["-sf", "--unix-socket", socket, `http://metalman${route}`]);
  }

  /** The Machine's events from the management API (its history: the whole repave fits). */
  function machineEvents(name: string): StreamEvent[] {
    return (JSON.parse(api(`/api/v1/machines/${name}/events`)) as { events: StreamEvent[] }).events;
  }

  function status(name: string) {
    return JSON.parse(readFileSync(path.join(work, "state", "status", `${name}.json`), "utf8")) as {
      status?: { operations?: { repaveCounter?: number }; conditions?: { type: string; status: string }[] };
    };
  }

  async function repave(vm: RepaveVm): Promise<{ serial: string; events: StreamEvent[]; seconds: number }> {
    const tap = `${ns}t${vm.firmware === "bios" ? 1 : 0}`.slice(0, 15);
    addTap(ns, tap, BRIDGE);
    const disk = path.join(work, `disk-${vm.firmware}.img`);
    writeFileSync(disk, "");
    run("truncate", ["-s", "64M", disk]);
    const decoy = vm.targetDisk === undefined ? undefined : path.join(work, `decoy-${vm.firmware}.img`);
    if (decoy !== undefined) {
      writeFileSync(decoy, "");
      run("truncate", ["-s", "32M", decoy]);
    }
    const vars = path.join(work, `vars-${vm.firmware}.fd`);
    copyFileSync("/usr/share/OVMF/OVMF_VARS_4M.ms.fd", vars);
    const serialFile = path.join(work, `serial-${vm.firmware}.log`);
    const started = Date.now();
    const qemu = startQemu(
      ns,
      repaveQemuArgs(vm, { tap, disk, vars, serial: serialFile, decoy }),
      path.join(work, `qemu-${vm.firmware}.log`),
    );
    vms.add(qemu);
    const exited = await Promise.race([
      qemu.exited().then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), VM_TIMEOUT_MS).unref()),
    ]);
    await qemu.stop();
    vms.delete(qemu);
    const seconds = (Date.now() - started) / 1000;
    const serial = readFileSync(serialFile, "latin1");
    const events = machineEvents(vm.name);
    const context = `\n--- serial ---\n${serial.slice(-3000)}\n--- events ---\n${events
      .map((e) => `${e.step} ${e.result} ${e.reason ?? ""} ${String(e.detail?.path ?? e.detail?.stage ?? "")}`)
      .join("\n")}\n--- qemu ---\n${qemu.tail(10)}`;
    assert.ok(exited, `the VM did not power off within ${VM_TIMEOUT_MS / 1000} s${context}`);
    const mismatch = diskMismatch(disk, imageDir, SEED_LBA, SERVE_URL);
    assert.equal(mismatch, undefined, `the VM's disk is not the image's disk.img: ${mismatch}${context}`);
    if (decoy !== undefined) {
      const untouched = readFileSync(decoy).every((byte) => byte === 0);
      assert.ok(untouched, `the installer wrote to the first disk instead of spec.pxe.targetDisk${context}`);
    }
    return { serial: `${serial}${context}`, events, seconds };
  }

  const ok = (step: string, file?: string) => (e: StreamEvent) =>
    e.step === step && e.result === "ok" && (file === undefined || e.detail?.path === file);
  const line = (pattern: RegExp) => (l: string) => pattern.test(l);

  function assertRepaveRecorded(vm: RepaveVm, events: StreamEvent[], serial: string) {
    const stored = status(vm.name);
    assert.equal(stored.status?.operations?.repaveCounter, 1, `repave not recorded for ${vm.name}`);
    for (const type of ["Repaved", "CloudInitDone"])
      assert.ok(
        stored.status?.conditions?.some((c) => c.type === type && c.status === "True"),
        `${type} is not True for ${vm.name}: ${JSON.stringify(stored.status?.conditions)}${serial}`,
      );
    // After /pxe/disable nothing of the installer is fetched again: the kernel came from the disk.
    const disabledAt = events.findIndex(ok("pxe.disable"));
    const later = events.slice(disabledAt + 1);
    for (const file of ["vmlinuz", "initrd.img", "disk.img.gz"])
      assert.ok(
        !later.some((e) => e.detail?.path === file && e.result === "ok"),
        `${file} was served again after /pxe/disable${serial}`,
      );
  }

  it("UEFI Secure Boot: shim -> GRUB -> kernel over TFTP installs the disk, which then boots under Secure Boot", async (t) => {
    const { serial, events, seconds } = await repave(UEFI_VM);
    t.diagnostic(`uefi-sb: ${seconds.toFixed(1)} s from QEMU start to the installed system's poweroff`);
    const n = UEFI_VM.name;
    const missingEvent = firstMissingStep(events, [
      ["image.pull from the registry", (e) => ok("image.pull")(e) && e.detail?.ref === IMAGE_REF],
      ["dhcp.ack (firmware)", ok("dhcp.ack")],
      ["tftp shimx64.efi", ok("tftp.transfer", "shimx64.efi")],
      ["tftp grubx64.efi", ok("tftp.transfer", "grubx64.efi")],
      ["tftp grub/grub.cfg (install)", ok("tftp.transfer", "grub/grub.cfg")],
      ["tftp vmlinuz", ok("tftp.transfer", "vmlinuz")],
      ["tftp initrd.img", ok("tftp.transfer", "initrd.img")],
      ["http disk.img.gz.sha256", ok("http.artifact", "disk.img.gz.sha256")],
      ["http disk.img.gz", ok("http.artifact", "disk.img.gz")],
      ["pxe.disable", ok("pxe.disable")],
      ["dhcp.ack (after the reboot)", ok("dhcp.ack")],
      ["tftp shimx64.efi (after the reboot)", ok("tftp.transfer", "shimx64.efi")],
      ["tftp grub/grub.cfg (chainload)", ok("tftp.transfer", "grub/grub.cfg")],
      ["cloudinit modules-final", (e) => ok("cloudinit.event")(e) && e.detail?.stage === "modules-final"],
    ]);
    assert.equal(missingEvent, undefined, `event step missing or out of order: ${missingEvent}${serial}`);
    const missingLine = firstMissingStep(serial.split("\n"), [
      ["grub: install entry", line(new RegExp(`metalman: repave 1 requested for ${n}`))],
      ["installer start", line(/metalman-image: installer-start/)],
      ["installer under Secure Boot", line(/metalman-image: installer-firmware firmware=efi secureboot=enabled/)],
      [
        "installer lease",
        line(new RegExp(`metalman-image: installer-dhcp .* ip=${UEFI_VM.ipv4.replaceAll(".", "\\.")} `)),
      ],
      ["target disk", line(/metalman-image: installer-target disk=\/dev\/vdb\r?$/)],
      ["verified", line(/metalman-image: installer-verified sha256=[0-9a-f]{64}/)],
      ["written", line(/metalman-image: installer-written disk=\/dev\/vdb/)],
      ["pxe disabled", line(/metalman-image: installer-pxe-disabled/)],
      ["reboot", line(/metalman-image: installer-reboot/)],
      ["grub: chainload", line(new RegExp(`metalman: no repave pending for ${n} \\(requested 1, completed 1\\)`))],
      ["disk GRUB", line(/metalman-image: grub on the installed disk/)],
      ["system start", line(/metalman-image: system-start/)],
      ["system under Secure Boot", line(/metalman-image: system-firmware firmware=efi secureboot=enabled/)],
      ["system marker", line(/metalman-image: system-booted-from-disk/)],
      ["meta-data", line(new RegExp(`metalman-image: system-meta-data instance-id: "${n}"`))],
      ["cloud-init events", line(/metalman-image: system-event name=modules-final type=finish result=SUCCESS/)],
      ["system done", line(/metalman-image: system-done/)],
    ]);
    assert.equal(missingLine, undefined, `serial step missing or out of order: ${missingLine}${serial}`);
    assertRepaveRecorded(UEFI_VM, events, serial);
  });

  it("BIOS: SeaBIOS + iPXE -> boot.ipxe -> kernel over HTTP installs the disk, which then boots through syslinux", async (t) => {
    const { serial, events, seconds } = await repave(BIOS_VM);
    t.diagnostic(`bios: ${seconds.toFixed(1)} s from QEMU start to the installed system's poweroff`);
    const n = BIOS_VM.name;
    const missingEvent = firstMissingStep(events, [
      ["dhcp.ack (iPXE)", ok("dhcp.ack")],
      ["http boot.ipxe (install)", ok("http.template", "boot.ipxe")],
      ["http vmlinuz", ok("http.artifact", "vmlinuz")],
      ["http initrd.img", ok("http.artifact", "initrd.img")],
      ["http disk.img.gz.sha256", ok("http.artifact", "disk.img.gz.sha256")],
      ["http disk.img.gz", ok("http.artifact", "disk.img.gz")],
      ["pxe.disable", ok("pxe.disable")],
      ["dhcp.ack (after the reboot)", ok("dhcp.ack")],
      ["http boot.ipxe (sanboot)", ok("http.template", "boot.ipxe")],
      ["cloudinit modules-final", (e) => ok("cloudinit.event")(e) && e.detail?.stage === "modules-final"],
    ]);
    assert.equal(missingEvent, undefined, `event step missing or out of order: ${missingEvent}${serial}`);
    const missingLine = firstMissingStep(serial.split("\n"), [
      ["installer start", line(/metalman-image: installer-start/)],
      ["installer on BIOS", line(/metalman-image: installer-firmware firmware=bios/)],
      ["verified", line(/metalman-image: installer-verified sha256=[0-9a-f]{64}/)],
      ["written", line(/metalman-image: installer-written disk=\/dev\/vda/)],
      ["pxe disabled", line(/metalman-image: installer-pxe-disabled/)],
      ["reboot", line(/metalman-image: installer-reboot/)],
      ["syslinux", line(/SYSLINUX/)],
      ["system start", line(/metalman-image: system-start/)],
      ["system marker", line(/metalman-image: system-booted-from-disk firmware=bios/)],
      ["meta-data", line(new RegExp(`metalman-image: system-meta-data instance-id: "${n}"`))],
      ["cloud-init events", line(/metalman-image: system-event name=modules-final type=finish result=SUCCESS/)],
      ["system done", line(/metalman-image: system-done/)],
    ]);
    assert.equal(missingLine, undefined, `serial step missing or out of order: ${missingLine}${serial}`);
    assertRepaveRecorded(BIOS_VM, events, serial);
  });
});
