import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { LoggedProcess, run } from "./harness.js";

/**
 * A qemu VM for the repave e2e: a blank virtio disk and a NIC booted first on every start, no
 * `-no-reboot`, so the VM runs the whole repave (PXE install, reboot, PXE again, boot of the
 * installed disk) and QEMU exits when the installed system powers off.
 */
export type RepaveFirmware = "uefi-sb" | "bios";

export interface RepaveVm {
  firmware: RepaveFirmware;
  name: string;
  mac: string;
  ipv4: string;
  /** spec.pxe.targetDisk; the VM then also gets a blank decoy disk in front (it becomes /dev/vda). */
  targetDisk?: string;
}

/** The QEMU arguments (run inside the namespace) for one VM with its tap, disk and OVMF vars copy. */
export function repaveQemuArgs(
  vm: RepaveVm,
  o: { tap: string; disk: string; vars: string; serial: string; decoy?: string },
): string[] {
  const decoy =
    o.decoy === undefined
      ? []
      : [
          ...["-drive", `file=${o.decoy},format=raw,if=none,id=d9,cache=unsafe`],
          ...["-device", "virtio-blk-pci,drive=d9"],
        ];
  const common = [
    ...decoy,
    ...["-name", `repave-${vm.firmware}`, "-accel", "tcg", "-m", "512", "-smp", "1"],
    ...["-nodefaults", "-display", "none", "-monitor", "none", "-serial", `file:${o.serial}`],
    ...["-netdev", `tap,id=n0,ifname=${o.tap},script=no,downscript=no`],
    ...["-drive", `file=${o.disk},format=raw,if=none,id=d0,cache=unsafe`],
    ...["-device", "virtio-blk-pci,drive=d0,bootindex=2"],
  ];
  if (vm.firmware === "bios") {
    // SeaBIOS with QEMU's iPXE ROM on the NIC (the default romfile): iPXE asks for boot.ipxe.
    return [...common, "-machine", "q35", "-device", `virtio-net-pci,netdev=n0,mac=${vm.mac},bootindex=1`];
  }
  // OVMF with Secure Boot enforced, Microsoft + Debian keys enrolled; no NIC ROM, so OVMF's
  // own PXE stack boots (DHCP arch 7, TFTP), as on real UEFI machines.
  return [
    ...common,
    ...["-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"],
    ...["-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"],
    ...["-drive", `if=pflash,format=raw,unit=1,file=${o.vars}`],
    ...["-device", `virtio-net-pci,netdev=n0,mac=${vm.mac},bootindex=1,romfile=`],
  ];
}

/** Creates `tap` on `bridge` inside `ns` (removed with the namespace). */
export function addTap(ns: string, tap: string, bridge: string): void {
  run("ip", ["netns", "exec", ns, "ip", "tuntap", "add", "dev", tap, "mode", "tap"]);
  run("ip", ["netns", "exec", ns, "ip", "link", "set", tap, "master", bridge]);
  run("ip", ["netns", "exec", ns, "ip", "link", "set", tap, "up"]);
}

/** QEMU inside the namespace (`ip netns exec` execs it: the PID held is QEMU's). */
export function startQemu(ns: string, args: string[], logFile: string): LoggedProcess {
  return new LoggedProcess("ip", ["netns", "exec", ns, "qemu-system-x86_64", ...args], logFile);
}

/** The Machine YAML for a repave VM: a pending repave (spec 1, no status yet) and its lease. */
export function repaveMachineYaml(vm: RepaveVm, image: string, gateway: string): string {
  return [
    "apiVersion: unbounded-cloud.io/v1alpha3",
    "kind: Machine",
    "metadata:",
    `  name: ${vm.name}`,
    "spec:",
    "  pxe:",
    `    image: ${JSON.stringify(image)}`,
    ...(vm.targetDisk === undefined ? [] : [`    targetDisk: ${JSON.stringify(vm.targetDisk)}`]),
    "    dhcpLeases:",
    `      - {mac: "${vm.mac}", ipv4: "${vm.ipv4}", subnetMask: "255.255.255.0", gateway: "${gateway}"}`,
    "  operations:",
    "    repaveCounter: 1",
    "",
  ].join("\n");
}

/**
 * Where `steps` occur in order in `items`: each predicate must match an item after the previous
 * match. Returns the label of the first step that is missing (or out of order), else undefined.
 */
export function firstMissingStep<T>(items: readonly T[], steps: [string, (item: T) => boolean][]): string | undefined {
  let at = -1;
  for (const [label, matches] of steps) {
    let found = -1;
    for (let i = at + 1; i < items.length; i++) {
      if (matches(items[i] as T)) {
        found = i;
        break;
      }
    }
    if (found < 0) return label;
    at = found;
  }
  return undefined;
}

/**
 * The VM's disk holds exactly the image's disk.img (gunzipped), except its seed sector, which holds
 * the installer's `METALMAN-SEED <serve-url>`. Returns a description of the first difference.
 */
export function diskMismatch(
  diskFile: string,
  imageDir: string,
  seedLba: number,
  serveUrl: string,
): string | undefined {
  const want = gunzipSync(readFileSync(path.join(imageDir, "disk", "disk.img.gz")));
  const disk = readFileSync(diskFile);
  if (disk.length < want.length) return `disk ${disk.length} bytes < image ${want.length}`;
  const seedStart = seedLba * 512;
  const seed = disk.subarray(seedStart, seedStart + 512).toString("latin1");
  if (!seed.startsWith(`METALMAN-SEED ${serveUrl}\n`)) return `seed sector holds ${JSON.stringify(seed.slice(0, 80))}`;
  if (!disk.subarray(0, seedStart).equals(want.subarray(0, seedStart))) return "disk differs before the seed sector";
  if (!disk.subarray(seedStart + 512, want.length).equals(want.subarray(seedStart + 512))) {
    return "disk differs after the seed sector";
  }
  return undefined;
}

/** Debian's docker-registry inside the namespace on `addr` (its loopback), storage in `dir`. */
export function startRegistryInNetns(ns: string, dir: string, addr: string): LoggedProcess {
  mkdirSync(path.join(dir, "storage"), { recursive: true });
  const config = path.join(dir, "config.yml");
  writeFileSync(
    config,
    [
      "version: 0.1",
      "log: {level: error, accesslog: {disabled: true}}",
      `storage: {filesystem: {rootdirectory: ${dir}/storage}}`,
      `http: {addr: "${addr}"}`,
      "",
    ].join("\n"),
  );
  return new LoggedProcess(
    "ip",
    ["netns", "exec", ns, "docker-registry", "serve", config],
    path.join(dir, "registry.log"),
  );
}
