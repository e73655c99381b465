import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createWriteStream, existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { repoRoot, sharedDir } from "../support/paths.js";

/**
 * Helpers for tests that drive real firmware in QEMU against metalman inside a private
 * network namespace. Every process started here is tracked by PID and stopped by PID.
 */

/** What a test run is missing to run at all (commands, files, root). Empty = ready. */
export function missingPrerequisites(commands: string[], files: string[]): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push("root (network namespaces, tap devices)");
  for (const command of commands) {
    const found = spawnSync("sh", ["-c", 'command -v "$1"', "sh", command], { stdio: "ignore" }).status === 0;
    if (!found) missing.push(`command ${command}`);
  }
  for (const file of files) if (!existsSync(file)) missing.push(`file ${file}`);
  return missing;
}

/** Run a command to completion; throws with its output when it fails. */
export function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) {
  const result = spawnSync(command, args, {
    env: options.env ?? process.env,
    timeout: options.timeoutMs ?? 120_000,
    encoding: "utf8",
    maxBuffer: 16 * 1024 * 1024,
  });
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} failed (status ${result.status}, signal ${result.signal}):\n` +
        `${result.stdout ?? ""}\n${result.stderr ?? ""}`.slice(-4000),
    );
  }
  return result.stdout;
}

/** A long-running child whose stdout/stderr are kept (in memory and in a file). */
export class LoggedProcess {
  readonly child: ChildProcess;
  readonly #lines: string[] = [];
  readonly #exited: Promise<number | null>;

  constructor(command: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env) {
    const sink = createWriteStream(logFile);
    this.child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let partial = "";
    const collect = (chunk: Buffer) => {
      sink.write(chunk);
      const text = partial + chunk.toString("utf8");
      const lines = text.split("\n");
      partial = lines.pop() ?? "";
      this.#lines.push(...lines);
    };
    this.child.stdout?.on("data", collect);
    this.child.stderr?.on("data", collect);
    this.#exited = new Promise((resolve) => {
      this.child.on("close", (code) => {
        if (partial !== "") this.#lines.push(partial);
        sink.end();
        resolve(code);
      });
      this.child.on("error", () => resolve(null));
    });
  }

  get lines(): readonly string[] {
    return this.#lines;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  exited(): Promise<number | null> {
    return this.#exited;
  }

  tail(count = 40): string {
    return this.#lines.slice(-count).join("\n");
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running || this.child.pid === undefined) return;
    this.child.kill("SIGTERM");
    const done = await Promise.race([this.#exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done && this.running) {
      this.child.kill("SIGKILL");
      await this.#exited;
    }
  }
}

/** Poll `probe` every intervalMs until it returns true or timeoutMs passes (bounded). */
export async function waitUntil(probe: () => boolean, timeoutMs: number, intervalMs = 200): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (probe()) return true;
    await sleep(intervalMs);
  }
  return probe();
}

/** The pino JSON lines of a log (non-JSON lines are skipped). */
export function jsonLines(lines: readonly string[]): Record<string, unknown>[] {
  const records: Record<string, unknown>[] = [];
  for (const line of lines) {
    if (!line.startsWith("{")) continue;
    try {
      records.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a torn or foreign line: not an event
    }
  }
  return records;
}

/** A boot event names a file when one of its string fields is that path (with or without a leading folder). */
export function mentionsFile(record: Record<string, unknown>, file: string): boolean {
  return Object.values(record).some(
    (value) => typeof value === "string" && (value === file || value.endsWith(`/${file}`) || value === `${file}.tmpl`),
  );
}

export interface NetnsApplianceOptions {
  /** The namespace (bridge already up) the appliance runs in. */
  ns: string;
  /** dist/server/main.js. */
  serverMain: string;
  /** The test's work folder: state/, cache/ and server.log go here, and it is the image root. */
  work: string;
  inventory: string;
  serverIp: string;
  serveUrl: string;
  httpPort: number;
  healthPort: number;
  /** The DHCP mode flags (`--dhcp-interface br0`, `--dhcp-mode proxy`, ...). */
  dhcpArgs: string[];
  logLevel: string;
}

/**
 * `serve-pxe` inside the namespace (TFTP on 69, DHCP on 67). `ip netns exec` execs node in
 * place, so the PID held is the server itself. Returned at once, so the caller can stop it
 * whatever happens next; see waitApplianceHealthy.
 */
export function startApplianceInNetns(o: NetnsApplianceOptions): LoggedProcess {
  return new LoggedProcess(
    "ip",
    [
      ...["netns", "exec", o.ns, process.execPath, o.serverMain, "serve-pxe"],
      ...[
        "--inventory",
        o.inventory,
        "--state-dir",
        path.join(o.work, "state"),
        "--cache-dir",
        path.join(o.work, "cache"),
      ],
      ...["--bind-address", o.serverIp, "--serve-url", o.serveUrl, "--http-port", String(o.httpPort)],
      ...["--tftp-port", "69", "--health-port", String(o.healthPort), "--dhcp-port", "67"],
      ...o.dhcpArgs,
      ...["--log-level", o.logLevel],
      // dir: images only under an image root (docs/security.md): the work folder holds the image.
      ...["--image-root", o.work],
    ],
    path.join(o.work, "server.log"),
  );
}

/** Bounded wait (30 s) for /healthz from inside the namespace; false when the server exited or never answered. */
export async function waitApplianceHealthy(
  server: LoggedProcess,
  o: Pick<NetnsApplianceOptions, "ns" | "serverIp" | "healthPort">,
): Promise<boolean> {
  const healthy = await waitUntil(() => {
    if (!server.running) return true;
    const probe = ["netns", "exec", o.ns, "curl", "-sf", "-m", "2", `http://${o.serverIp}:${o.healthPort}/healthz`];
    try {
      run("ip", probe, { timeoutMs: 5000 });
      return true;
    } catch {
      return false;
    }
  }, 30_000);
  return healthy && server.running;
}

export interface PxeVmRun {
  code: number | null;
  process: LoggedProcess;
  /** The VM's serial console. */
  serial: string;
  /** QEMU start to the wait pattern, as pxe-vm.sh reports it (NaN when it did not). */
  seconds: number;
}

/**
 * One firmware boot with the shared lab's pxe-vm.sh on the namespace's bridge, until `wait`
 * shows on the serial console (or its timeout). The process is in `running` while it runs, so
 * the suite's after() can stop it.
 */
export async function runPxeVm(o: {
  script: string;
  work: string;
  /** Names the serial and pxe-vm log files. */
  label: string;
  firmware: "uefi" | "bios";
  mac: string;
  serverIp: string;
  bridge: string;
  ns: string;
  wait: string;
  timeoutS: number;
  running: Set<LoggedProcess>;
}): Promise<PxeVmRun> {
  const serialLog = path.join(o.work, `serial-${o.label}.log`);
  const vmProcess = new LoggedProcess(
    o.script,
    [
      ...[o.firmware, o.serverIp, o.bridge, serialLog, "--netns", o.ns, "--mac", o.mac],
      ...["--wait", o.wait, "--timeout", String(o.timeoutS)],
    ],
    path.join(o.work, `pxe-vm-${o.label}.log`),
  );
  o.running.add(vmProcess);
  const code = await vmProcess.exited();
  o.running.delete(vmProcess);
  const serial = readFileSync(serialLog, "latin1");
  const elapsed = /RESULT=\S+ .*elapsed=([0-9.]+)s/.exec(vmProcess.lines.join("\n"));
  return { code, process: vmProcess, serial, seconds: elapsed ? Number(elapsed[1]) : Number.NaN };
}

/** A VM the firmware tests boot: its firmware, Machine name, MAC and lease address. */
export interface VmMachine {
  firmware: "uefi" | "bios";
  name: string;
  mac: string;
  ipv4: string;
}

/** Where the firmware tests find the shared lab scripts, the built server and the payload builder. */
export function vmLabPaths(): { root: string; lab: string; serverMain: string; imageBuilder: string } {
  const root = repoRoot();
  return {
    root,
    lab: path.join(sharedDir(), "lab"),
    serverMain: path.join(root, "dist", "server", "main.js"),
    imageBuilder: path.join(root, "netboot-images", "lab-test", "build.sh"),
  };
}

/**
 * What a firmware boot test is missing: QEMU, OVMF, the iPXE ROM, the lab scripts, the payload
 * builder's tools, the built server and the DHCP socket addon, plus `more` of its own.
 */
export function missingVmPrerequisites(more: { commands?: string[]; files?: string[] } = {}): string[] {
  const { root, lab, serverMain } = vmLabPaths();
  return missingPrerequisites(
    ["qemu-system-x86_64", "ip", "curl", "apt-get", "dpkg-deb", "cpio", "gzip", "strings", ...(more.commands ?? [])],
    [
      path.join(lab, "vm-netns.sh"),
      path.join(lab, "pxe-vm.sh"),
      ...(more.files ?? []),
      "/usr/share/OVMF/OVMF_CODE_4M.fd",
      "/usr/share/OVMF/OVMF_VARS_4M.fd",
      "/usr/lib/ipxe/qemu/efi-virtio.rom",
      serverMain,
      path.join(root, "server", "native", "build", "Release", "metalman_dhcp_socket.node"),
    ],
  );
}

/**
 * The Machine YAML for a VM: a `dir:` image, its lease (/24, `gateway`, `dns` when given) and a
 * pending repave (spec 1 > status 0) that the payload's /pxe/disable call completes.
 */
export function vmMachineYaml(vm: VmMachine, imageDir: string, lease: { gateway: string; dns?: string }): string {
  return [
    "apiVersion: unbounded-cloud.io/v1alpha3",
    "kind: Machine",
    "metadata:",
    `  name: ${vm.name}`,
    "spec:",
    "  pxe:",
    `    image: "dir:${imageDir}"`,
    "    dhcpLeases:",
    `      - mac: "${vm.mac}"`,
    `        ipv4: "${vm.ipv4}"`,
    '        subnetMask: "255.255.255.0"',
    `        gateway: "${lease.gateway}"`,
    ...(lease.dns !== undefined ? [`        dns: ["${lease.dns}"]`] : []),
    "  operations:",
    "    repaveCounter: 1",
    "",
  ].join("\n");
}
