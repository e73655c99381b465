import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readFileSync } from "node:fs";
import { createConnection } from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * The appliance suite's plumbing: commands, a private network namespace with a management and a
 * provisioning bridge, the appliance disk booted by QEMU (OVMF, TCG) with one NIC on each, and
 * loop-device access to the disk's partitions. Every process is stopped by PID; names use the
 * suite's prefix "ap".
 */

export const NS = "ap-vm";
export const MGMT_BRIDGE = "apmgmt0";
export const PROV_BRIDGE = "approv0";
export const MGMT_HOST = "10.156.0.1";
export const MGMT_APPLIANCE = "10.156.0.10";
export const PROV_APPLIANCE = "10.157.0.1";
export const MGMT_MAC = "52:54:00:a1:56:0a";
export const PROV_MAC = "52:54:00:a1:57:0a";
/** The provisioning-side client (udhcpc + tftp) in the namespace, and the Machine it is. */
export const CLIENT_IF = "apcli0";
export const CLIENT_MAC = "52:54:00:a1:57:64";
export const CLIENT_IP = "10.157.0.100";

export function sh(command: string, args: string[], timeoutMs = 120_000): string {
  const r = spawnSync(command, args, { encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) {
    throw new Error(
      `${command} ${args.join(" ")}: status ${r.status} ${r.signal ?? ""}\n${r.stdout}\n${r.stderr}`.slice(-6000),
    );
  }
  return r.stdout;
}

export function shQuiet(command: string, args: string[], timeoutMs = 60_000): { status: number | null; out: string } {
  const r = spawnSync(command, args, { encoding: "utf8", timeout: timeoutMs });
  return { status: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

export function inNs(command: string, args: string[], timeoutMs = 60_000) {
  return shQuiet("ip", ["netns", "exec", NS, command, ...args], timeoutMs);
}

export function netnsUp(): void {
  netnsDown();
  sh("ip", ["netns", "add", NS]);
  const ipn = (...args: string[]) => sh("ip", ["-n", NS, ...args]);
  ipn("link", "set", "lo", "up");
  for (const br of [MGMT_BRIDGE, PROV_BRIDGE]) {
    ipn("link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0");
    ipn("link", "set", br, "up");
  }
  ipn("addr", "add", `${MGMT_HOST}/24`, "dev", MGMT_BRIDGE);
  // The provisioning client: a veth whose far end sits on the provisioning bridge.
  ipn("link", "add", CLIENT_IF, "address", CLIENT_MAC, "type", "veth", "peer", "name", "apcli0br");
  ipn("link", "set", "apcli0br", "master", PROV_BRIDGE, "up");
  ipn("link", "set", CLIENT_IF, "up");
  for (const [tap, br] of [
    ["aptap0", MGMT_BRIDGE],
    ["aptap1", PROV_BRIDGE],
  ] as const) {
    ipn("tuntap", "add", tap, "mode", "tap");
    ipn("link", "set", tap, "master", br, "up");
  }
}

export function netnsDown(): void {
  shQuiet("ip", ["netns", "del", NS]);
}

/** A partitioned disk image attached to a loop device (partitions as /dev/loopNpM). */
export class LoopDisk {
  readonly device: string;

  constructor(image: string) {
    this.device = sh("losetup", ["--find", "--show", "--partscan", image]).trim();
    // The kernel's partition scan may land late (or not at all in a container): add what is missing.
    shQuiet("partx", ["-a", this.device]);
  }

  /** Partition names from the GPT itself (no udev needed), mapped to the loop partition nodes. */
  labels(): string[] {
    return sh("partx", ["-g", "-o", "NAME", this.device])
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
  }

  partition(label: string): string {
    const out = sh("partx", ["-g", "-o", "NR,NAME", this.device]);
    for (const line of out.split("\n")) {
      const [nr, name] = line.trim().split(/\s+/);
      if (name === label && nr) {
        const dev = `${this.device}p${nr}`;
        for (let i = 0; i < 50 && !existsSync(dev); i++) spawnSync("sleep", ["0.1"]);
        return dev;
      }
    }
    throw new Error(`${this.device}: no partition ${label}\n${out}`);
  }

  /** Mount a partition (read-only unless asked), run body, unmount. */
  withMount<T>(label: string, dir: string, body: (dir: string) => T, readWrite = false): T {
    sh("mount", [...(readWrite ? [] : ["-o", "ro"]), this.partition(label), dir]);
    try {
      return body(dir);
    } finally {
      sh("umount", [dir]);
    }
  }

  close(): void {
    shQuiet("losetup", ["-d", this.device]);
  }
}

/** The appliance in QEMU: UEFI (OVMF), TCG, two virtio NICs on the namespace's taps, serial to a file. */
export class ApplianceVm {
  readonly #child: ChildProcess;
  readonly serialLog: string;
  readonly #qmp: string;
  #exit: Promise<number | null>;

  /**
   * `noReboot`: a reboot the guest asks for ends QEMU (-no-reboot) and the caller boots a fresh one:
   * a warm reboot under TCG hung the next kernel early now and then (seen after an upgrade's reboot).
   */
  constructor(disk: string, varsFile: string, dir: string, name: string, options: { noReboot?: boolean } = {}) {
    this.serialLog = path.join(dir, `${name}.serial.log`);
    this.#qmp = path.join(dir, `${name}.qmp`);
    if (!existsSync(varsFile)) copyFileSync("/usr/share/OVMF/OVMF_VARS_4M.fd", varsFile);
    const args = [
      "netns",
      "exec",
      NS,
      "qemu-system-x86_64",
      "-accel",
      "tcg",
      "-machine",
      "q35",
      "-m",
      "1024",
      "-smp",
      "2",
      "-nodefaults",
      "-display",
      "none",
      "-drive",
      "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
      "-drive",
      `if=pflash,format=raw,unit=1,file=${varsFile}`,
      "-drive",
      `file=${disk},format=raw,if=virtio,cache=writeback`,
      "-netdev",
      "tap,id=n0,ifname=aptap0,script=no,downscript=no",
      "-device",
      `virtio-net-pci,netdev=n0,mac=${MGMT_MAC},romfile=`,
      "-netdev",
      "tap,id=n1,ifname=aptap1,script=no,downscript=no",
      "-device",
      `virtio-net-pci,netdev=n1,mac=${PROV_MAC},romfile=`,
      "-serial",
      `file:${this.serialLog}`,
      "-qmp",
      `unix:${this.#qmp},server=on,wait=off`,
      "-monitor",
      "none",
      ...(options.noReboot ? ["-no-reboot"] : []),
    ];
    this.#child = spawn("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    this.#child.stderr?.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    this.#exit = new Promise((resolve) => {
      this.#child.on("close", (code) => {
        if (code !== 0 && stderr) process.stderr.write(`qemu: ${stderr.slice(-2000)}\n`);
        resolve(code);
      });
    });
  }

  serial(): string {
    try {
      return readFileSync(this.serialLog, "latin1");
    } catch {
      return "";
    }
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Wait (bounded) until the serial log matches `pattern` after `from` characters; the match. */
  async waitSerial(pattern: RegExp, timeoutMs: number, from = 0): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = this.serial().slice(from).match(pattern);
      if (m) return m;
      if (!this.running) break;
      await sleep(1000);
    }
    throw new Error(
      `serial log never matched ${pattern} within ${timeoutMs} ms; last lines:\n${this.serial().slice(-3000)}`,
    );
  }

  /** ACPI power button (systemd shuts down cleanly), bounded; then SIGKILL by PID. */
  async powerOff(timeoutMs = 120_000): Promise<void> {
    if (this.running) {
      await new Promise<void>((resolve) => {
        const sock = createConnection(this.#qmp);
        sock.on("error", () => resolve());
        sock.on("connect", () => {
          sock.write('{"execute":"qmp_capabilities"}\n{"execute":"system_powerdown"}\n');
          setTimeout(() => {
            sock.end();
            resolve();
          }, 1000);
        });
      });
    }
    const timer = new AbortController(); // cancelled at once: a pending timer would hold the test process
    const done = await Promise.race([
      this.#exit.then(() => true),
      sleep(timeoutMs, undefined, { signal: timer.signal }).then(
        () => false,
        () => false,
      ),
    ]);
    timer.abort();
    if (!done) this.kill();
    await this.#exit;
  }

  kill(): void {
    if (this.running && this.#child.pid) process.kill(this.#child.pid, "SIGKILL");
  }

  exited(): Promise<number | null> {
    return this.#exit;
  }
}
