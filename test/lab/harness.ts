/**
 * Harness for the real-client lab tests (test/lab/*.test.ts): network namespaces built with the
 * shared lab's netns.sh (or by hand for the relay topology), the metalman appliance spawned
 * inside the server namespace, real clients (udhcpc, dhclient, dhcrelay, tftp-hpa, atftp, curl)
 * run inside the client namespaces, and a temporary inventory + netboot image.
 *
 * Every process started here is tracked by PID and stopped by PID; every namespace created here
 * is deleted again (after killing what still runs inside it). Waits are bounded.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { stringify as toYaml } from "yaml";
import { repoRoot, sharedDir } from "../support/paths.js";

// ---------------------------------------------------------------- prerequisites

/** True when running in CI: there every prerequisite is installed, so a missing one is a failure. */
export function inCi(): boolean {
  return process.env.CI === "true" || process.env.CI === "1";
}

export function labDir(): string {
  return path.join(sharedDir(), "lab");
}

function haveCommand(name: string): boolean {
  if (name.startsWith("/")) return existsSync(name);
  return spawnSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" }).status === 0;
}

/** Why the lab cannot run here (not root, a tool or file missing), or undefined when it can. */
export function missingPrerequisite(tools: readonly string[]): string | undefined {
  if (process.platform !== "linux") return "lab tests need Linux network namespaces";
  if (process.getuid?.() !== 0) return "lab tests need root (network namespaces)";
  const netns = path.join(labDir(), "netns.sh");
  if (!existsSync(netns)) return `lab script ${netns} not found (set METALMAN_SHARED)`;
  const main = appliancePath();
  if (!existsSync(main)) return `appliance ${main} not built (npx tsc -p tsconfig.json)`;
  const missing = ["ip", "curl", "timeout", ...tools].filter((tool) => !haveCommand(tool));
  if (missing.length > 0) return `missing tools: ${missing.join(", ")} (see test/lab/README.md)`;
  return undefined;
}

/**
 * `describe()` that skips with a reason when the lab cannot run here; in CI it instead registers
 * one failing test, because CI installs every prerequisite and a silent skip would hide that.
 */
export function labSuite(name: string, tools: readonly string[], body: () => void): void {
  const reason = missingPrerequisite(tools);
  if (reason === undefined) {
    describe(name, body);
  } else if (inCi()) {
    describe(name, () => {
      it("lab prerequisites are installed", () => {
        throw new Error(reason);
      });
    });
  } else {
    describe(name, { skip: reason }, () => {
      it("skipped: " + reason, () => {});
    });
  }
}

// ---------------------------------------------------------------- commands

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Run argv to completion (bounded: SIGKILL after timeoutMs) and collect its output. */
export function run(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      stdio: ["ignore", "pipe", "pipe"],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Like run(), but throws (with the output) unless the command exits 0. */
export async function runOk(argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  const result = await run(argv, options);
  if (result.code !== 0) {
    throw new Error(
      `command failed (code ${result.code}${result.timedOut ? ", timed out" : ""}): ${argv.join(" ")}\n` +
        `stdout: ${result.stdout}\nstderr: ${result.stderr}`,
    );
  }
  return result;
}

/**
 * Run argv inside network namespace ns. `ip netns exec` execs, and coreutils `timeout` bounds the
 * command from inside too, so a stuck client is killed even if it forked.
 */
export function runInNs(ns: string, argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  return run(["ip", "netns", "exec", ns, "timeout", "-k", "2", String(seconds), ...argv], {
    ...options,
    timeoutMs: timeoutMs + 5_000,
  });
}

// ---------------------------------------------------------------- namespaces

export interface VethLab {
  prefix: string;
  serverNs: string;
  clientNs: string;
  serverIf: string;
  clientIf: string;
  serverIp: string;
  /** Static client address (10.213.0.10) when the lab was built with static clients. */
  clientIp: string | undefined;
  stateDir: string;
}

function labEnv(prefix: string, stateDir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, LAB_PREFIX: prefix, LAB_STATE: stateDir, ...extra };
}

/**
 * The lab's veth topology (`netns.sh up veth`): [<prefix>-srv] srv0 10.213.0.1/16 <=> cli0 [<prefix>-cli].
 * With staticClient the client gets 10.213.0.10/16, otherwise it stays unnumbered (DHCP tests).
 * Use a prefix of its own per test file so files can even run in parallel.
 */
export async function vethLabUp(prefix: string, opts: { staticClient: boolean }): Promise<VethLab> {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), `${prefix}-state-`));
  const env = labEnv(prefix, stateDir, { LAB_CLIENT_STATIC: opts.staticClient ? "1" : "0" });
  const netns = path.join(labDir(), "netns.sh");
  await run([netns, "down"], { env, timeoutMs: 60_000 });
  await runOk([netns, "up", "veth"], { env, timeoutMs: 60_000 });
  return {
    prefix,
    serverNs: `${prefix}-srv`,
    clientNs: `${prefix}-cli`,
    serverIf: "srv0",
    clientIf: "cli0",
    serverIp: "10.213.0.1",
    clientIp: opts.staticClient ? "10.213.0.10" : undefined,
    stateDir,
  };
}

/** `netns.sh down` for that prefix (kills what runs inside by PID, deletes the namespaces). */
export async function vethLabDown(lab: VethLab | undefined): Promise<void> {
  if (lab === undefined) return;
  await run([path.join(labDir(), "netns.sh"), "down"], { env: labEnv(lab.prefix, lab.stateDir), timeoutMs: 60_000 });
  await rm(lab.stateDir, { recursive: true, force: true });
}

export async function namespaceExists(ns: string): Promise<boolean> {
  const result = await run(["ip", "netns", "list"], { timeoutMs: 10_000 });
  return result.stdout.split("\n").some((line) => line.split(" ")[0] === ns);
}

/** Kill every process in the namespaces (TERM, then KILL) and delete them; missing ones are ignored. */
export async function destroyNamespaces(names: readonly string[]): Promise<void> {
  for (const ns of names) {
    if (!(await namespaceExists(ns))) continue;
    const pids = (await run(["ip", "netns", "pids", ns], { timeoutMs: 10_000 })).stdout
      .split(/\s+/)
      .filter((pid) => /^\d+$/.test(pid))
      .map(Number);
    for (const pid of pids) await killPid(pid);
    await run(["ip", "netns", "del", ns], { timeoutMs: 10_000 });
  }
}

async function killPid(pid: number): Promise<void> {
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  for (let i = 0; i < 50 && alive(); i++) await sleep(100);
  if (alive()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** Create an empty namespace with lo up and IPv6 off (no DAD/RS chatter), like netns.sh does. */
export async function addNamespace(ns: string): Promise<void> {
  await runOk(["ip", "netns", "add", ns]);
  await runOk(["ip", "-n", ns, "link", "set", "lo", "up"]);
  await run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
  await run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
}

export interface RelayLab {
  serverNs: string;
  relayNs: string;
  clientNs: string;
  serverIf: string;
  relayServerIf: string;
  relayClientIf: string;
  clientIf: string;
  serverIp: string;
  relayServerIp: string;
  /** The relay's address on the client subnet: giaddr of relayed packets. */
  relayClientIp: string;
  clientSubnetPrefix: string;
}

/**
 * server ns (srv0 10.214.1.1/24) <=> relay ns (r-srv 10.214.1.2/24, r-cli 10.214.2.1/24) <=> client
 * ns (cli0, unnumbered). The server routes 10.214.2.0/24 back via the relay. netns.sh only knows
 * single-segment topologies, so this one is built here with plain `ip`.
 */
export async function relayLabUp(prefix: string): Promise<RelayLab> {
  const lab: RelayLab = {
    serverNs: `${prefix}-srv`,
    relayNs: `${prefix}-rly`,
    clientNs: `${prefix}-cli`,
    serverIf: "srv0",
    relayServerIf: "r-srv",
    relayClientIf: "r-cli",
    clientIf: "cli0",
    serverIp: "10.214.1.1",
    relayServerIp: "10.214.1.2",
    relayClientIp: "10.214.2.1",
    clientSubnetPrefix: "10.214.2.",
  };
  await relayLabDown(lab);
  try {
    for (const ns of [lab.serverNs, lab.relayNs, lab.clientNs]) await addNamespace(ns);
    await runOk([
      "ip",
      "link",
      "add",
      `${prefix}-a`,
      "netns",
      lab.serverNs,
      "type",
      "veth",
      "peer",
      "name",
      `${prefix}-b`,
      "netns",
      lab.relayNs,
    ]);
    await runOk([
      "ip",
      "link",
      "add",
      `${prefix}-c`,
      "netns",
      lab.relayNs,
      "type",
      "veth",
      "peer",
      "name",
      `${prefix}-d`,
      "netns",
      lab.clientNs,
    ]);
    await runOk(["ip", "-n", lab.serverNs, "link", "set", `${prefix}-a`, "name", lab.serverIf]);
    await runOk(["ip", "-n", lab.relayNs, "link", "set", `${prefix}-b`, "name", lab.relayServerIf]);
    await runOk(["ip", "-n", lab.relayNs, "link", "set", `${prefix}-c`, "name", lab.relayClientIf]);
    await runOk(["ip", "-n", lab.clientNs, "link", "set", `${prefix}-d`, "name", lab.clientIf]);
    await runOk(["ip", "-n", lab.serverNs, "addr", "add", `${lab.serverIp}/24`, "dev", lab.serverIf]);
    await runOk(["ip", "-n", lab.relayNs, "addr", "add", `${lab.relayServerIp}/24`, "dev", lab.relayServerIf]);
    await runOk(["ip", "-n", lab.relayNs, "addr", "add", `${lab.relayClientIp}/24`, "dev", lab.relayClientIf]);
    await runOk(["ip", "-n", lab.serverNs, "link", "set", lab.serverIf, "up"]);
    await runOk(["ip", "-n", lab.relayNs, "link", "set", lab.relayServerIf, "up"]);
    await runOk(["ip", "-n", lab.relayNs, "link", "set", lab.relayClientIf, "up"]);
    await runOk(["ip", "-n", lab.clientNs, "link", "set", lab.clientIf, "up"]);
    await runOk(["ip", "-n", lab.serverNs, "route", "add", "10.214.2.0/24", "via", lab.relayServerIp]);
    await runOk(["ip", "netns", "exec", lab.relayNs, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  } catch (error) {
    await relayLabDown(lab);
    throw error;
  }
  return lab;
}

export async function relayLabDown(lab: RelayLab | undefined): Promise<void> {
  if (lab === undefined) return;
  await destroyNamespaces([lab.clientNs, lab.relayNs, lab.serverNs]);
}

/** Set an interface's MAC inside a namespace (DHCP clients then send it as chaddr). */
export async function setMac(ns: string, dev: string, mac: string): Promise<void> {
  await runOk(["ip", "-n", ns, "link", "set", "dev", dev, "address", mac]);
}

export async function addAddress(ns: string, dev: string, cidr: string): Promise<void> {
  await runOk(["ip", "-n", ns, "addr", "add", cidr, "dev", dev]);
}

// ---------------------------------------------------------------- background processes

/** A long-running process inside a namespace, with its output lines collected. */
export class NsProcess {
  readonly lines: string[] = [];
  readonly child: ChildProcess;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exited: Promise<void>;

  constructor(ns: string, argv: readonly string[], env: NodeJS.ProcessEnv = process.env) {
    // `ip netns exec` execs the command, so child.pid is the command's own PID.
    this.child = spawn("ip", ["netns", "exec", ns, ...argv], { stdio: ["ignore", "pipe", "pipe"], env });
    this.exited = new Promise((resolve) => {
      this.child.on("close", (code, signal) => {
        this.exitInfo = { code, signal };
        resolve();
      });
      this.child.on("error", (error) => {
        this.lines.push(`spawn error: ${error.message}`);
        this.exitInfo = { code: null, signal: null };
        resolve();
      });
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let partial = "";
      stream?.setEncoding("utf8").on("data", (chunk: string) => {
        const parts = (partial + chunk).split("\n");
        partial = parts.pop() ?? "";
        for (const line of parts) this.lines.push(line);
        // bound memory: a chatty server must not grow the test process without limit
        if (this.lines.length > 20_000) this.lines.splice(0, this.lines.length - 10_000);
      });
    }
  }

  get exitStatus(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
    return this.exitInfo;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** Last n output lines, for assertion messages. */
  tail(n = 40): string {
    return this.lines.slice(-n).join("\n");
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves when the process is gone. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.running) return;
    this.child.kill("SIGTERM");
    const killed = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!killed) {
      this.child.kill("SIGKILL");
      await Promise.race([this.exited, sleep(5_000)]);
    }
  }

  /** Wait (bounded) until an output line matches; false when it did not happen in time or the process ended. */
  async waitForLine(pattern: RegExp, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.lines.some((line) => pattern.test(line))) return true;
      if (!this.running) return false;
      await sleep(100);
    }
    return false;
  }

  async waitExit(timeoutMs: number): Promise<boolean> {
    return Promise.race([this.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
  }
}

// ---------------------------------------------------------------- the appliance

export function appliancePath(): string {
  return path.join(repoRoot(), "dist", "server", "main.js");
}

export interface ApplianceOptions {
  ns: string;
  bindAddress: string;
  inventoryDir: string;
  /** Interface mode when set; relay mode (giaddr-only) otherwise. */
  dhcpInterface?: string;
  /** `--dhcp-mode` (relay, interface, proxy); unset: derived from dhcpInterface. */
  dhcpMode?: string;
  httpPort?: number;
  tftpPort?: number;
  healthPort?: number;
  dhcpPort?: number;
  logLevel?: string;
  /** `--image-root` folders; default the inventory's parent (writeImage/writeInventory share one scratch root). */
  imageRoots?: string[];
  /** `--health-bind-address`; default the appliance's (0.0.0.0). */
  healthBindAddress?: string;
  /** More serve-pxe flags, appended. */
  extraArgs?: string[];
}

export class Appliance {
  readonly process: NsProcess;
  readonly stateDir: string;
  readonly cacheDir: string;
  readonly httpPort: number;
  readonly tftpPort: number;
  readonly healthPort: number;
  readonly options: ApplianceOptions;

  private constructor(options: ApplianceOptions, stateDir: string, cacheDir: string) {
    this.options = options;
    this.stateDir = stateDir;
    this.cacheDir = cacheDir;
    this.httpPort = options.httpPort ?? 8880;
    this.tftpPort = options.tftpPort ?? 69;
    this.healthPort = options.healthPort ?? 8081;
    const argv = [
      process.execPath,
      appliancePath(),
      "serve-pxe",
      "--inventory",
      options.inventoryDir,
      "--state-dir",
      stateDir,
      "--cache-dir",
      cacheDir,
      "--bind-address",
      options.bindAddress,
      "--serve-url",
      `http://${options.bindAddress}:${this.httpPort}`,
      "--http-port",
      String(this.httpPort),
      "--tftp-port",
      String(this.tftpPort),
      "--health-port",
      String(this.healthPort),
      "--dhcp-port",
      String(options.dhcpPort ?? 67),
      ...(options.dhcpInterface ? ["--dhcp-interface", options.dhcpInterface] : []),
      ...(options.imageRoots ?? [path.dirname(options.inventoryDir)]).flatMap((root) => ["--image-root", root]),
      ...(options.healthBindAddress ? ["--health-bind-address", options.healthBindAddress] : []),
      ...(options.dhcpMode ? ["--dhcp-mode", options.dhcpMode] : []),
      "--log-level",
      options.logLevel ?? "info",
      ...(options.extraArgs ?? []),
    ];
    this.process = new NsProcess(options.ns, argv);
  }

  /** Spawn metalman in options.ns and wait (bounded) until /healthz answers 200. */
  static async start(options: ApplianceOptions, scratchDir: string): Promise<Appliance> {
    const stateDir = path.join(scratchDir, "state");
    const cacheDir = path.join(scratchDir, "cache");
    await mkdir(stateDir, { recursive: true });
    await mkdir(cacheDir, { recursive: true });
    const appliance = new Appliance(options, stateDir, cacheDir);
    try {
      await appliance.waitHealthy(30_000);
    } catch (error) {
      await appliance.stop();
      throw error;
    }
    return appliance;
  }

  async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.process.running) {
        throw new Error(
          `metalman exited before it was healthy (${JSON.stringify(this.process.exitStatus)}):\n${this.process.tail()}`,
        );
      }
      const probe = await run(
        [
          "ip",
          "netns",
          "exec",
          this.options.ns,
          "curl",
          "-sf",
          "-o",
          "/dev/null",
          "-m",
          "2",
          `http://127.0.0.1:${this.healthPort}/healthz`,
        ],
        { timeoutMs: 5_000 },
      );
      if (probe.code === 0) return;
      await sleep(250);
    }
    throw new Error(`metalman not healthy after ${timeoutMs} ms:\n${this.process.tail()}`);
  }

  /**
   * Sum of a Prometheus metric's samples whose labels include all of `labels` (from /metrics on
   * the HTTP port, fetched inside the server namespace); 0 when there is no such sample.
   */
  async metricValue(name: string, labels: Record<string, string> = {}): Promise<number> {
    const result = await runInNs(
      this.options.ns,
      ["curl", "-sf", "-m", "5", `http://${this.options.bindAddress}:${this.httpPort}/metrics`],
      { timeoutMs: 10_000 },
    );
    if (result.code !== 0) throw new Error(`GET /metrics failed (code ${result.code}): ${result.stderr}`);
    let sum = 0;
    for (const line of result.stdout.split("\n")) {
      const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (match === null || match[1] !== name) continue;
      const sample = match[2] ?? "";
      if (Object.entries(labels).every(([key, value]) => sample.includes(`${key}="${value}"`))) sum += Number(match[3]);
    }
    return sum;
  }

  /** Parsed pino lines (non-JSON lines are skipped). */
  logRecords(): Record<string, unknown>[] {
    const records: Record<string, unknown>[] = [];
    for (const line of this.process.lines) {
      if (!line.startsWith("{")) continue;
      try {
        records.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a partial or foreign line
      }
    }
    return records;
  }

  get discoveredPath(): string {
    return path.join(this.stateDir, "discovered.json");
  }

  async readDiscovered(): Promise<DiscoveredEntry[]> {
    try {
      const parsed: unknown = JSON.parse(await readFile(this.discoveredPath, "utf8"));
      return Array.isArray(parsed) ? (parsed as DiscoveredEntry[]) : [];
    } catch {
      return [];
    }
  }

  /** Poll discovered.json until an entry for mac shows up (bounded); undefined if it never does. */
  async waitDiscovered(mac: string, timeoutMs: number): Promise<DiscoveredEntry | undefined> {
    const deadline = Date.now() + timeoutMs;
    const wanted = mac.toLowerCase();
    for (;;) {
      const entry = (await this.readDiscovered()).find((e) => String(e.mac).toLowerCase() === wanted);
      if (entry !== undefined || Date.now() >= deadline) return entry;
      await sleep(500);
    }
  }

  async stop(): Promise<void> {
    await this.process.stop(5_000);
  }
}

export interface DiscoveredEntry {
  mac: string;
  arch?: unknown;
  vendorClass?: unknown;
  [key: string]: unknown;
}

// ---------------------------------------------------------------- inventory and image

export interface LeaseSpec {
  mac: string;
  ipv4: string;
  subnetMask: string;
  gateway: string;
  dns?: string[];
}

export interface MachineSpecInput {
  name: string;
  leases: LeaseSpec[];
}

export interface LabImage {
  /** Image folder (holds disk/); Machines reference it as `dir:<dir>`. */
  dir: string;
  diskDir: string;
  bootFile: string;
  /** Path (relative to disk/) of the large random file and its SHA-256 (hex). */
  bigFile: string;
  bigSha256: string;
  bigSize: number;
  bigBytes: Buffer;
  /** Path of the template (served without `.tmpl`). */
  templatePath: string;
}

export const GRUB_TEMPLATE = "set hostname={{ .Machine.Name }} ip={{ (index .Machine.Spec.PXE.DHCPLeases 0).IPv4 }}\n";

/** Write an image folder: disk/metadata.yaml, a boot file, a 32 MiB random file, a grub.cfg template. */
export async function writeImage(root: string, bigSizeBytes = 32 * 1024 * 1024): Promise<LabImage> {
  const dir = path.join(root, "image");
  const diskDir = path.join(dir, "disk");
  await mkdir(path.join(diskDir, "grub"), { recursive: true });
  await writeFile(path.join(diskDir, "metadata.yaml"), "dhcpBootImageName: shimx64.efi\n");
  await writeFile(path.join(diskDir, "shimx64.efi"), randomBytes(64 * 1024));
  await writeFile(path.join(diskDir, "grub", "grub.cfg.tmpl"), GRUB_TEMPLATE);
  const bigBytes = randomBytes(bigSizeBytes);
  await writeFile(path.join(diskDir, "big.bin"), bigBytes);
  return {
    dir,
    diskDir,
    bootFile: "shimx64.efi",
    bigFile: "big.bin",
    bigSha256: sha256(bigBytes),
    bigSize: bigBytes.length,
    bigBytes,
    templatePath: "grub/grub.cfg",
  };
}

/** Write one Machine YAML per machine into a fresh inventory folder; returns that folder. */
export async function writeInventory(root: string, image: LabImage, machines: MachineSpecInput[]): Promise<string> {
  const dir = path.join(root, "inventory");
  await mkdir(dir, { recursive: true });
  for (const machine of machines) {
    const doc = {
      apiVersion: "unbounded-cloud.io/v1alpha3",
      kind: "Machine",
      metadata: { name: machine.name },
      spec: {
        pxe: {
          image: `dir:${image.dir}`,
          dhcpLeases: machine.leases.map((lease) => ({ ...lease, dns: lease.dns ?? [] })),
        },
      },
    };
    await writeFile(path.join(dir, `${machine.name}.yaml`), toYaml(doc));
  }
  return dir;
}

export function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

export async function sha256File(file: string): Promise<string> {
  return sha256(await readFile(file));
}

export async function makeScratchDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------- RESULT lines

/** Parse the lab clients' `RESULT key=value ...` lines (last one wins per key). */
export function parseResultLines(output: string): Record<string, string>[] {
  const results: Record<string, string>[] = [];
  for (const line of output.split("\n")) {
    const match = /^RESULT\s+(.*)$/.exec(line.trim());
    if (match === null) continue;
    const fields: Record<string, string> = {};
    for (const token of match[1].split(/\s+/)) {
      const eq = token.indexOf("=");
      if (eq > 0) fields[token.slice(0, eq)] = token.slice(eq + 1);
    }
    results.push(fields);
  }
  return results;
}

// ---------------------------------------------------------------- DHCP clients

/** What a real DHCP client bound to (normalised across udhcpc and dhclient). */
export interface DhcpLeaseSeen {
  ok: boolean;
  ip?: string;
  mask?: string;
  routers?: string[];
  dns?: string[];
  serverId?: string;
  siaddr?: string;
  /** BOOTP `file` field. */
  file?: string;
  /** Option 67. */
  bootfileName?: string;
  /** Option 66. */
  tftpServerName?: string;
  /** Option 12, when the client asked for it (udhcpc `requestHostname`). */
  hostname?: string;
  raw: Record<string, string>;
  output: string;
}

/** A hook script's `env` dump (`NAME=value` lines, values possibly single-quoted). */
export function parseEnvDump(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    env[line.slice(0, eq)] = line.slice(eq + 1).replace(/^'(.*)'$/, "$1");
  }
  return env;
}

export const words = (value: string | undefined): string[] | undefined =>
  value === undefined || value.trim() === "" ? undefined : value.trim().split(/\s+/);

export interface DhcpClientOptions {
  ns: string;
  dev: string;
  scratchDir: string;
  timeoutMs?: number;
  /** Option 60. */
  vendorClass?: string;
  /** Option 93 client architecture (udhcpc only). */
  arch?: number;
}

export interface UdhcpcOptions extends DhcpClientOptions {
  tries?: number;
  /** More `-x OPT:VALUE` arguments (e.g. `0x4d:69505845` for user class "iPXE"). */
  extraOptions?: string[];
  /** Also ask for option 12 (`-O hostname`) and report it. */
  requestHostname?: boolean;
}

/**
 * busybox udhcpc: one lease attempt (-n: give up instead of backgrounding), the hook script only
 * dumps what it was given (the address is not configured on the interface). In its INIT state
 * udhcpc reads replies on a raw socket into a 576-byte IP datagram buffer and ignores anything
 * larger ("oversized packet"): a real client with the RFC 2131 minimum buffer.
 */
export async function runUdhcpc(opts: UdhcpcOptions): Promise<DhcpLeaseSeen> {
  const dir = await mkdtemp(path.join(opts.scratchDir, "udhcpc-"));
  const script = path.join(dir, "hook.sh");
  const dump = path.join(dir, "env.bound");
  await writeFile(
    script,
    `#!/bin/sh\n[ "$1" = bound ] || [ "$1" = renew ] || exit 0\nenv > "${dump}.tmp" && mv "${dump}.tmp" "${dump}"\nexit 0\n`,
    { mode: 0o755 },
  );
  const argv = ["busybox", "udhcpc", "-i", opts.dev, "-f", "-q", "-n", "-t", String(opts.tries ?? 4), "-T", "2"];
  argv.push("-A", "1", "-s", script, "-O", "tftp", "-O", "bootfile", "-O", "router", "-O", "dns", "-O", "subnet");
  if (opts.requestHostname) argv.push("-O", "hostname");
  if (opts.vendorClass !== undefined) argv.push("-V", opts.vendorClass);
  if (opts.arch !== undefined) argv.push("-x", `0x5d:${opts.arch.toString(16).padStart(4, "0")}`);
  for (const extra of opts.extraOptions ?? []) argv.push("-x", extra);
  const result = await runInNs(opts.ns, argv, { timeoutMs: opts.timeoutMs ?? 30_000 });
  const output = result.stdout + result.stderr;
  if (!existsSync(dump)) return { ok: false, raw: {}, output };
  const env = parseEnvDump(await readFile(dump, "utf8"));
  return {
    ok: true,
    ip: env.ip,
    mask: env.subnet,
    routers: words(env.router),
    dns: words(env.dns),
    serverId: env.serverid,
    siaddr: env.siaddr,
    file: env.boot_file,
    bootfileName: env.bootfile,
    tftpServerName: env.tftp,
    ...(opts.requestHostname ? { hostname: env.hostname } : {}),
    raw: env,
    output,
  };
}

/**
 * ISC dhclient: `-1` (one attempt), a config that requests the boot options, and a hook script
 * that dumps the environment on BOUND. dhclient daemonises once bound; it is killed via its
 * pid file before returning.
 */
export async function runDhclient(opts: DhcpClientOptions): Promise<DhcpLeaseSeen> {
  const dir = await mkdtemp(path.join(opts.scratchDir, "dhclient-"));
  const script = path.join(dir, "hook.sh");
  const conf = path.join(dir, "dhclient.conf");
  const pidFile = path.join(dir, "dhclient.pid");
  await writeFile(
    script,
    `#!/bin/sh\ncase "$reason" in BOUND|REBOOT|RENEW) env > "${dir}/env.tmp" && mv "${dir}/env.tmp" "${dir}/env.bound";; esac\nexit 0\n`,
    { mode: 0o755 },
  );
  const confLines = [
    "timeout 20; retry 1; initial-interval 1; backoff-cutoff 2;",
    "request subnet-mask, broadcast-address, routers, domain-name-servers, host-name, tftp-server-name, bootfile-name;",
  ];
  if (opts.vendorClass !== undefined) confLines.push(`send vendor-class-identifier "${opts.vendorClass}";`);
  await writeFile(conf, confLines.join("\n") + "\n");
  const argv = ["dhclient", "-4", "-1", "-v", "-cf", conf, "-sf", script, "-lf", path.join(dir, "leases")];
  argv.push("-pf", pidFile, opts.dev);
  const result = await runInNs(opts.ns, argv, { timeoutMs: opts.timeoutMs ?? 40_000 });
  if (existsSync(pidFile)) {
    const pid = Number((await readFile(pidFile, "utf8")).trim());
    if (Number.isInteger(pid) && pid > 1) await killPid(pid);
  }
  const output = result.stdout + result.stderr;
  const dump = path.join(dir, "env.bound");
  if (!existsSync(dump)) return { ok: false, raw: {}, output };
  const env = parseEnvDump(await readFile(dump, "utf8"));
  return {
    ok: true,
    ip: env.new_ip_address,
    mask: env.new_subnet_mask,
    routers: words(env.new_routers),
    dns: words(env.new_domain_name_servers),
    serverId: env.new_dhcp_server_identifier,
    siaddr: env.new_next_server,
    file: env.new_filename,
    bootfileName: env.new_bootfile_name,
    tftpServerName: env.new_tftp_server_name,
    raw: env,
    output,
  };
}

/** dhcrelay (isc-dhcp-relay) in the foreground in the relay namespace. */
export function startDhcrelay(lab: RelayLab, scratchDir: string): NsProcess {
  return new NsProcess(lab.relayNs, [
    "dhcrelay",
    "-4",
    "-d",
    "-pf",
    path.join(scratchDir, "dhcrelay.pid"),
    "-id",
    lab.relayClientIf,
    "-iu",
    lab.relayServerIf,
    lab.serverIp,
  ]);
}

/** What the file-serving lab tests share: one client whose address is a Machine's lease IP. */
export interface OneMachineLab {
  lab: VethLab;
  scratch: string;
  image: LabImage;
  appliance: Appliance;
}

/**
 * veth lab, a second (stranger) address on the client, the generated image (32 MiB file and a
 * template), one Machine leased to the client's address, and the appliance serving it. Cleans up
 * what it started when a step fails.
 */
export async function startOneMachineLab(
  prefix: string,
  machine: { name: string; mac: string },
  strangerIp: string,
): Promise<OneMachineLab> {
  const scratch = await makeScratchDir(prefix);
  let lab: VethLab | undefined;
  try {
    lab = await vethLabUp(prefix, { staticClient: true });
    await addAddress(lab.clientNs, lab.clientIf, `${strangerIp}/16`);
    const image = await writeImage(scratch);
    const inventoryDir = await writeInventory(scratch, image, [
      {
        name: machine.name,
        leases: [{ mac: machine.mac, ipv4: lab.clientIp!, subnetMask: "255.255.0.0", gateway: "10.213.0.1" }],
      },
    ]);
    const appliance = await Appliance.start({ ns: lab.serverNs, bindAddress: lab.serverIp, inventoryDir }, scratch);
    return { lab, scratch, image, appliance };
  } catch (error) {
    await stopOneMachineLab({ lab, scratch });
    throw error;
  }
}

/**
 * Interface-mode DHCP with a real client: veth lab (the client gets its address by DHCP), a
 * small image (`metadataYaml` replaces its metadata.yaml when given), one Machine whose lease
 * is for the client's MAC, the appliance on the server's veth, and the client's MAC set.
 * Cleans up what it started when a step fails; stop with stopOneMachineLab.
 */
export async function startDhcpMachineLab(
  prefix: string,
  machine: { name: string; lease: LeaseSpec },
  options: { metadataYaml?: string; logLevel?: string } = {},
): Promise<OneMachineLab> {
  const scratch = await makeScratchDir(prefix);
  let lab: VethLab | undefined;
  let appliance: Appliance | undefined;
  try {
    lab = await vethLabUp(prefix, { staticClient: false });
    const image = await writeImage(scratch, 1024 * 1024);
    if (options.metadataYaml !== undefined) {
      await writeFile(path.join(image.diskDir, "metadata.yaml"), options.metadataYaml);
    }
    const inventoryDir = await writeInventory(scratch, image, [{ name: machine.name, leases: [machine.lease] }]);
    appliance = await Appliance.start(
      {
        ns: lab.serverNs,
        bindAddress: lab.serverIp,
        inventoryDir,
        dhcpInterface: lab.serverIf,
        ...(options.logLevel !== undefined ? { logLevel: options.logLevel } : {}),
      },
      scratch,
    );
    await setMac(lab.clientNs, lab.clientIf, machine.lease.mac);
    return { lab, scratch, image, appliance };
  } catch (error) {
    await stopOneMachineLab({ lab, scratch, appliance });
    throw error;
  }
}

export async function stopOneMachineLab(fixture: Partial<OneMachineLab>): Promise<void> {
  await fixture.appliance?.stop();
  await vethLabDown(fixture.lab);
  await removeDir(fixture.scratch);
}
