/**
 * Graceful stop of the real process (docs/events.md "Shutdown"): the built appliance on
 * loopback, unprivileged ports, a real `curl --limit-rate` download in flight. SIGTERM must
 * flush the pending discovered-MAC write first (long before its 5 s coalescing interval),
 * refuse new connections during the grace, let a short download finish, cut the slow one
 * after the grace, and exit 0 within the bound. A second SIGTERM cuts at once.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import dgram from "node:dgram";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, stat, truncate, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { encode } from "../../../server/dhcp/codec.js";
import { repoRoot } from "../../support/paths.js";
import { request } from "../dhcp/fakes.js";
import { freeTcpPort, freeUdpPort } from "./loopback-appliance.js";

const MACHINE_MAC = "52:54:00:aa:bb:01";
const STRANGER_MAC = "02:00:5e:00:00:42";
const GRACE_MS = 3_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves "refused" / "connected" for a TCP connect to 127.0.0.1:port. */
function tryConnect(port: number): Promise<"refused" | "connected" | string> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.setTimeout(2_000, () => {
      socket.destroy();
      resolve("timeout");
    });
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (err: NodeJS.ErrnoException) =>
      resolve(err.code === "ECONNREFUSED" ? "refused" : String(err.code)),
    );
  });
}

interface Download {
  child: ChildProcess;
  out: string;
  done: Promise<{ code: number | null; report: string }>;
}

function download(url: string, out: string, rate: string): Download {
  const child = spawn(
    "curl",
    ["-sS", "-o", out, "--limit-rate", rate, "-m", "60", "-w", "%{http_code} %{size_download}", url],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let report = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    report += chunk.toString();
  });
  const done = new Promise<{ code: number | null; report: string }>((resolve) =>
    child.once("exit", (code) => resolve({ code, report })),
  );
  return { child, out, done };
}

async function fileSize(file: string): Promise<number> {
  return (await stat(file).catch(() => ({ size: 0 }))).size;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
  return Date.now() - started;
}

class ApplianceProcess {
  readonly child: ChildProcess;
  readonly output: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(configFile: string) {
    const main = path.join(repoRoot(), "dist", "server", "main.js");
    this.child = spawn(process.execPath, [main, "serve-pxe", "--config", configFile], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      stream.on("data", (chunk: Buffer) => this.output.push(...chunk.toString().split("\n").filter(Boolean)));
    }
    this.exited = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve({ code, signal })));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  records(): Record<string, unknown>[] {
    return this.output.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** Kills by PID if a test left it running (never by name). */
  async dispose(): Promise<void> {
    if (this.running) {
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }
}

describe("graceful stop of the built appliance (SIGTERM with downloads in flight)", () => {
  let scratch: string;
  let ports: { http: number; health: number; tftp: number; dhcp: number };
  let configFile: string;
  let stateDir: string;
  const started: ApplianceProcess[] = [];
  const downloads: Download[] = [];

  before(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), "mm-stop-"));
    const disk = path.join(scratch, "image", "disk");
    await mkdir(disk, { recursive: true });
    await writeFile(path.join(disk, "metadata.yaml"), "dhcpBootImageName: shimx64.efi\n");
    await writeFile(path.join(disk, "shimx64.efi"), Buffer.alloc(4096, 1));
    // Sparse files: large downloads without writing them to disk.
    await writeFile(path.join(disk, "big.bin"), "");
    await truncate(path.join(disk, "big.bin"), 256 * 1024 * 1024);
    await writeFile(path.join(disk, "small.bin"), "");
    await truncate(path.join(disk, "small.bin"), 1024 * 1024);
    const inventory = path.join(scratch, "inventory");
    await mkdir(inventory);
    await writeFile(
      path.join(inventory, "node-01.yaml"),
      [
        "apiVersion: unbounded-cloud.io/v1alpha3",
        "kind: Machine",
        "metadata:",
        "  name: node-01",
        "spec:",
        "  pxe:",
        `    image: dir:${path.join(scratch, "image")}`,
        "    dhcpLeases:",
        `      - mac: "${MACHINE_MAC}"`,
        '        ipv4: "127.0.0.1"',
        '        subnetMask: "255.0.0.0"',
        '        gateway: "127.0.0.1"',
        "",
      ].join("\n"),
    );
    ports = {
      http: await freeTcpPort(),
      health: await freeTcpPort(),
      tftp: await freeUdpPort(),
      dhcp: await freeUdpPort(),
    };
    stateDir = path.join(scratch, "state");
    configFile = path.join(scratch, "metalman.yaml");
    await writeFile(
      configFile,
      [
        "inventory: inventory",
        "stateDir: state",
        "cacheDir: cache",
        "imageRoot: [image]",
        "bindAddress: 127.0.0.1",
        `serveUrl: http://127.0.0.1:${ports.http}`,
        `httpPort: ${ports.http}`,
        `healthPort: ${ports.health}`,
        `tftpPort: ${ports.tftp}`,
        `dhcpPort: ${ports.dhcp}`,
        `shutdownGrace: ${GRACE_MS}ms`,
        "logLevel: info",
        "consolePort: 0 # web console (issue 8): not under test here",
        "",
      ].join("\n"),
    );
  });

  after(async () => {
    for (const d of downloads) if (d.child.exitCode === null) d.child.kill("SIGKILL");
    for (const p of started) await p.dispose();
    await rm(scratch, { recursive: true, force: true });
  });

  async function startAppliance(): Promise<ApplianceProcess> {
    const appliance = new ApplianceProcess(configFile);
    started.push(appliance);
    await until(
      "/healthz",
      async () => {
        if (!appliance.running) throw new Error(`appliance exited:\n${appliance.output.join("\n")}`);
        return (await fetch(`http://127.0.0.1:${ports.health}/healthz`).catch(() => undefined))?.status === 200;
      },
      20_000,
    );
    return appliance;
  }

  it("flushes state first, refuses new connections, lets short downloads finish, cuts the rest after the grace, exits 0", async () => {
    const appliance = await startAppliance();
    // A stranger's DISCOVER (relayed: giaddr set) makes a discovered.json write pending (coalesced, 5 s).
    const udp = dgram.createSocket("udp4");
    const discover = encode(request({ type: 1, giaddr: "127.0.0.1", mac: STRANGER_MAC, xid: 0x42 }));
    await new Promise<void>((resolve, reject) =>
      udp.send(discover, ports.dhcp, "127.0.0.1", (err) => (err ? reject(err) : resolve())),
    );
    udp.close();
    const discovered = path.join(stateDir, "discovered.json");
    await until(
      "the DISCOVER to be handled",
      () => appliance.records().some((r) => r.step === "dhcp.discover" || r.strangers !== undefined),
      5_000,
    );
    assert.equal(existsSync(discovered), false, "the write is still pending (coalesced)");

    // A download that cannot finish within the grace (256 MiB at 2 MiB/s) and one that can (1 MiB at 1 MiB/s, ending about 1 s into the grace).
    const slow = download(`http://127.0.0.1:${ports.http}/big.bin`, path.join(scratch, "big.out"), "2M");
    downloads.push(slow);
    await until("the slow download to be in flight", async () => (await fileSize(slow.out)) > 0, 10_000);
    const short = download(`http://127.0.0.1:${ports.http}/small.bin`, path.join(scratch, "small.out"), "1M");
    downloads.push(short);
    await until("the short download to be in flight", async () => (await fileSize(short.out)) > 0, 10_000);

    const sigterm = Date.now();
    appliance.child.kill("SIGTERM");

    // State first: discovered.json appears at once, while the downloads are still running.
    const flushedAfter = await until("discovered.json", () => existsSync(discovered), 3_000);
    const entries = JSON.parse(readFileSync(discovered, "utf8")) as { mac: string }[];
    assert.ok(
      entries.some((e) => e.mac === STRANGER_MAC),
      `discovered.json lists the stranger: ${JSON.stringify(entries)}`,
    );
    assert.equal(slow.child.exitCode, null, `the flush (${flushedAfter} ms) came before the download ended`);

    // During the grace: the listeners refuse new connections, the process is still serving.
    // The listeners close right after the flush: on a loaded box that can take a few scheduler
    // turns, so wait (bounded) for the refusal instead of probing once.
    await until(
      "the HTTP port to refuse new connections during the grace",
      async () => (await tryConnect(ports.http)) === "refused",
      3_000,
    );
    await until("the health port to refuse too", async () => (await tryConnect(ports.health)) === "refused", 3_000);
    assert.ok(appliance.running, "still running during the grace");

    // The short download completes in full within the grace.
    const shortDone = await short.done;
    assert.equal(shortDone.code, 0, `short download: ${shortDone.report}`);
    assert.equal(shortDone.report, `200 ${1024 * 1024}`);

    // Exit 0, after the grace (the slow download was given its chance) and within the bound.
    const exit = await Promise.race([appliance.exited, sleep(GRACE_MS + 8_000).then(() => undefined)]);
    const elapsed = Date.now() - sigterm;
    assert.deepEqual(exit, { code: 0, signal: null }, appliance.output.slice(-20).join("\n"));
    assert.ok(elapsed >= GRACE_MS - 100, `waited for the grace (${elapsed} ms)`);
    assert.ok(elapsed < GRACE_MS + 5_000, `ended within the bound (${elapsed} ms)`);

    // The slow download was cut: curl reports a transfer error and has only part of the file.
    const slowDone = await slow.done;
    assert.notEqual(slowDone.code, 0, `slow download was cut: ${slowDone.report}`);
    assert.ok((await fileSize(slow.out)) < 256 * 1024 * 1024);
    const records = appliance.records();
    assert.ok(
      records.some((r) => r.msg === "shutdown: grace period over, cut HTTP downloads in flight" && r.connections === 1),
      "the cut is logged with the number of connections",
    );
    assert.ok(records.some((r) => r.msg === "stopped"));
  });

  it("a second SIGTERM cuts the downloads at once and still exits 0 with state flushed", async () => {
    // A grace long enough that only the second signal can explain a quick exit.
    await writeFile(configFile, readFileSync(configFile, "utf8").replace(/shutdownGrace: .*/, "shutdownGrace: 60s"));
    const appliance = await startAppliance();
    const slow = download(`http://127.0.0.1:${ports.http}/big.bin`, path.join(scratch, "big2.out"), "2M");
    downloads.push(slow);
    await until("the download to be in flight", async () => (await fileSize(slow.out)) > 0, 10_000);
    const sigterm = Date.now();
    appliance.child.kill("SIGTERM");
    await sleep(300);
    assert.ok(appliance.running, "the first signal waits for the download");
    appliance.child.kill("SIGTERM");
    const exit = await Promise.race([appliance.exited, sleep(8_000).then(() => undefined)]);
    assert.deepEqual(exit, { code: 0, signal: null }, appliance.output.slice(-20).join("\n"));
    assert.ok(Date.now() - sigterm < 5_000);
    assert.notEqual((await slow.done).code, 0);
  });
});
