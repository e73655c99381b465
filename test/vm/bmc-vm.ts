/**
 * The set-up the VM-backed BMC proofs share (test/vm/bmc-repave.test.ts and
 * test/browser/console-vm.test.ts): a work folder with the lab payload image and an inventory, a
 * namespace with a bridge and the VM's tap, the QEMU arguments of a VM whose first boot device
 * is a disk that only halts (so only the BMC's one-time PXE override makes it netboot), and the
 * helper process (appliance + emulated Redfish BMC in one process) started inside the namespace.
 * The helper side (bmc-e2e-appliance.ts, vm-console-appliance.ts) is `startVmBmc`.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { selfSignedCertificate } from "../../server/bmc/emulator/certificate.js";
import { QemuPower } from "../../server/bmc/emulator/qemu-power.js";
import { EmulatedBmc } from "../../server/bmc/emulator/redfish-service.js";
import { LoggedProcess, run, vmLabPaths } from "./harness.js";

/** What both proofs need on the host, besides their own. */
export const BMC_VM_COMMANDS = ["qemu-system-x86_64", "ip", "curl", "apt-get", "dpkg-deb", "cpio", "gzip"];

export interface BmcVmWork {
  work: string;
  imageDir: string;
  inventory: string;
}

/**
 * A fresh work folder (`prefix` + random) holding the lab payload image (built for `httpPort`),
 * an empty `inventory/`, `state/` and `cache/`.
 */
export function prepareBmcVmWork(prefix: string, httpPort: number): BmcVmWork {
  const work = mkdtempSync(path.join(tmpdir(), prefix));
  const imageDir = path.join(work, "image");
  run(vmLabPaths().imageBuilder, [imageDir, "--http-port", String(httpPort)], { timeoutMs: 240_000 });
  const inventory = path.join(work, "inventory");
  for (const dir of [inventory, path.join(work, "state"), path.join(work, "cache")]) mkdirSync(dir);
  return { work, imageDir, inventory };
}

/** Removes the work folder, or keeps it (and says where) with METALMAN_KEEP_VM_LOGS=1. */
export function removeBmcVmWork(work: string): void {
  if (work !== "" && process.env.METALMAN_KEEP_VM_LOGS !== "1") rmSync(work, { recursive: true, force: true });
  else if (work !== "") console.log(`# logs kept in ${work}`);
}

/** The namespace `ns` with `bridge` at `cidr` (the shared lab's vm-netns.sh). */
export function netnsUp(ns: string, bridge: string, cidr: string): void {
  run(path.join(vmLabPaths().lab, "vm-netns.sh"), ["up", ns, bridge, cidr]);
}

export function netnsDown(ns: string): void {
  run(path.join(vmLabPaths().lab, "vm-netns.sh"), ["down", ns]);
}

/** 1 MiB raw disk whose boot sector is `hlt; jmp $-1` (sleeps, no CPU burnt) with the 55 AA signature. */
export function haltDisk(): Buffer {
  const disk = Buffer.alloc(1024 * 1024);
  disk.set([0xf4, 0xeb, 0xfd], 0);
  disk.set([0x55, 0xaa], 510);
  return disk;
}

/**
 * The QEMU arguments of the emulated BMC's VM (SeaBIOS + iPXE, TCG): `work/halt.img` (written
 * here) booted first, the NIC on `tap`, the serial console in `work/serial.log`.
 */
export function haltDiskVmArgs(work: string, tap: string, mac: string): string[] {
  const disk = path.join(work, "halt.img");
  writeFileSync(disk, haltDisk());
  return [
    ...["-machine", "q35", "-accel", "tcg", "-m", "512", "-smp", "1", "-nodefaults", "-display", "none"],
    ...["-monitor", "none", "-serial", `file:${path.join(work, "serial.log")}`],
    // A bootable disk that only halts, booted first: without the BMC's one-time override
    // this VM never reaches its NIC (SeaBIOS falls through to the NIC when no disk boots).
    ...["-drive", `file=${disk},format=raw,if=ide`, "-boot", "order=c"],
    ...["-netdev", `tap,id=n0,ifname=${tap},script=no,downscript=no`, "-device", `virtio-net-pci,netdev=n0,mac=${mac}`],
  ];
}

/**
 * Starts `helper` (BMC_ADDR BMC_PORT WORK QEMU_ARGS_JSON -- serve-pxe flags) inside `ns`: the
 * appliance serving `inventory` on `serverIp` (DHCP on `bridge`, TFTP 69, DHCP 67) plus `extra`
 * serve-pxe flags; the BMC password in the environment, never in argv.
 */
export function startBmcVmHelper(o: {
  ns: string;
  helper: string;
  serverIp: string;
  bridge: string;
  ports: { bmc: number; http: number; health: number };
  work: BmcVmWork;
  qemuArgs: string[];
  password: string;
  extra?: string[];
}): LoggedProcess {
  const { work, inventory } = o.work;
  return new LoggedProcess(
    "ip",
    [
      ...["netns", "exec", o.ns, process.execPath, o.helper, o.serverIp, String(o.ports.bmc), work],
      ...[JSON.stringify(o.qemuArgs), "--"],
      ...["--inventory", inventory, "--state-dir", path.join(work, "state"), "--cache-dir", path.join(work, "cache")],
      ...["--bind-address", o.serverIp, "--serve-url", `http://${o.serverIp}:${o.ports.http}`],
      ...["--http-port", String(o.ports.http), "--tftp-port", "69", "--health-port", String(o.ports.health)],
      ...["--dhcp-port", "67", "--dhcp-interface", o.bridge, "--log-level", "info", "--image-root", work],
      ...(o.extra ?? []),
    ],
    path.join(work, "server.log"),
    { ...process.env, METALMAN_E2E_BMC_PASSWORD: o.password },
  );
}

/**
 * The helper side: reads `BMC_ADDR BMC_PORT WORK QEMU_ARGS_JSON -- serve-pxe flags...` from
 * argv (exits 2 with `usage` otherwise) and starts one emulated Redfish BMC whose server is a
 * qemu VM, powered on (no override: its halt disk boots). The password comes from
 * $METALMAN_E2E_BMC_PASSWORD.
 */
export async function startVmBmc(
  name: string,
  usage: string,
): Promise<{ bmc: EmulatedBmc; power: QemuPower; password: string; serveArgs: string[] }> {
  const [bmcAddr, bmcPort, work, qemuArgs, dashes, ...serveArgs] = process.argv.slice(2);
  if (!bmcAddr || !bmcPort || !work || !qemuArgs || dashes !== "--") {
    process.stderr.write(`usage: ${usage}\n`);
    process.exit(2);
  }
  const password = process.env.METALMAN_E2E_BMC_PASSWORD ?? "";
  const power = new QemuPower({ qmpSocket: path.join(work, "qmp.sock"), args: JSON.parse(qemuArgs) as string[] });
  const bmc = new EmulatedBmc({ name, username: "admin", password, power });
  await bmc.listen(await selfSignedCertificate([bmcAddr]), bmcAddr, Number(bmcPort));
  // The server runs before the repave request (its halt disk boots; nothing netboots).
  await power.on(false);
  return { bmc, power, password, serveArgs };
}
