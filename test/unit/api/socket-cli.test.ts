/**
 * The management API end to end on its unix socket: the appliance (startAppliance, loopback
 * ports) serves it at <stateDir>/metalman.sock with mode 0600, and the REAL built CLI
 * (`node dist/server/main.js machine ...`) runs as a child process against it: list, show,
 * refusals with their exit codes, `repave --wait` following the operation and the Machine's
 * event stream while a stand-in flow advances the operation through the real store. Then the
 * socket's life: a second appliance on the same state dir is refused before it reads state, a
 * dead process's socket is replaced, a non-socket is never removed, and with no daemon the CLI
 * says so with exit code 3.
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { lstat, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { SocketInUseError } from "../../../server/api/unix-socket.js";
import { type RunningAppliance, startAppliance } from "../../../server/app/serve-pxe.js";
import type { MachineOperation } from "../../../server/inventory/backend.js";
import { repoRoot } from "../../support/paths.js";
import { loopbackConfig, loopbackProbes } from "../app/loopback-appliance.js";
import { type Scratch, scratchInventory } from "./helpers.js";

async function configFor(scratch: Scratch) {
  return loopbackConfig({
    inventory: scratch.inventoryDir,
    stateDir: scratch.stateDir,
    cacheDir: path.join(scratch.root, "cache"),
    extraArgs: [`--image-root=${path.join(repoRoot(), "netboot-images")}`],
  });
}

const start = async (scratch: Scratch) =>
  startAppliance(await configFor(scratch), {
    log: pino({ level: "silent" }),
    probes: loopbackProbes,
    // A stand-in flow below advances the operations: the real BMC flows stay off.
    bmcDrivers: false,
  });

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The real CLI, as an operator runs it (bounded). */
function cli(args: string[], timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(repoRoot(), "dist", "server", "main.js"), ...args],
      { timeout: timeoutMs, env: { ...process.env, USER: "operator-test" } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe("management API on the unix socket, driven by the real CLI", () => {
  let scratch: Scratch;
  let appliance: RunningAppliance | undefined;
  let stateFlag: string;

  before(async () => {
    scratch = await scratchInventory("mm-apisock-");
    appliance = await start(scratch);
    stateFlag = `--state-dir=${scratch.stateDir}`;
  });
  after(async () => {
    await appliance?.close({ graceMs: 0 });
    await scratch.cleanup();
  });

  it("serves <stateDir>/metalman.sock, a socket of mode 0600", async () => {
    assert.equal(appliance!.apiSocket, path.join(scratch.stateDir, "metalman.sock"));
    const info = await lstat(appliance!.apiSocket);
    assert.ok(info.isSocket());
    assert.equal(info.mode & 0o777, 0o600);
    assert.ok(appliance!.describe().some((line) => line.includes("metalman.sock")));
  });

  it("machine list -o json prints the Machines", async () => {
    const run = await cli(["machine", "list", "-o", "json", stateFlag]);
    assert.equal(run.code, 0, run.stderr);
    const body = JSON.parse(run.stdout) as { items: Array<{ name: string; quarantined: boolean }> };
    assert.deepEqual(
      body.items.map((m) => [m.name, m.quarantined]),
      [
        ["node-01", false],
        ["node-02", false],
        ["node-03", true],
      ],
    );
  });

  it("machine list prints a table; machine show prints the Machine without its secrets", async () => {
    const list = await cli(["machine", "list", stateFlag]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^NAME +PHASE +BMC +POWER +REPAVE +QUARANTINED +OPERATION\n/);
    assert.match(list.stdout, /\nnode-03 +- +redfish +Unknown +- +yes +-/);
    const show = await cli(["machine", "show", "node-01", stateFlag]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /BMC: +redfish https:\/\/10\.0\.0\.5\//);
    const json = await cli(["machine", "show", "node-01", "-o", "json", stateFlag]);
    for (const text of [show.stdout, json.stdout]) {
      assert.ok(!text.includes("hunter2") && !text.includes("sas-token-secret"), text);
    }
  });

  it("refusals exit 1 with the catalogue's message; usage errors exit 2", async () => {
    const quarantined = await cli(["machine", "power", "on", "node-03", stateFlag]);
    assert.equal(quarantined.code, 1);
    assert.match(quarantined.stderr, /quarantined.*\[MACHINE_QUARANTINED\]/);
    const missing = await cli(["machine", "reboot", "ghost", stateFlag]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /machine not found: ghost \[MACHINE_NOT_FOUND\]/);
    const usage = await cli(["machine", "power", "sideways", "node-01", stateFlag]);
    assert.equal(usage.code, 2);
    const flag = await cli(["machine", "list", "--bogus", stateFlag]);
    assert.equal(flag.code, 2);
  });

  it("machine power cycle creates the operation, recording the OS user", async () => {
    const run = await cli(["machine", "power", "cycle", "node-01", "-o", "json", stateFlag]);
    assert.equal(run.code, 0, run.stderr);
    const { operation } = JSON.parse(run.stdout) as { operation: MachineOperation };
    const stored = appliance!.inventory.operations.get(operation.metadata.name)!;
    assert.equal(stored.spec.operationKind, "HostReboot");
    assert.equal(stored.metadata.annotations?.["metalman.io/requested-via"], "unix-socket");
    assert.ok(stored.metadata.annotations?.["metalman.io/requested-by"]);
    await appliance!.inventory.operations.updateStatus(operation.metadata.name, () => ({ phase: "Complete" }));
    const listed = await cli(["operation", "list", "--machine", "node-01", stateFlag]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`${operation.metadata.name} +HostReboot +node-01 +Complete`));
  });

  it("machine repave --wait follows the operation's phases and the Machine's events to Complete", async () => {
    const ops = appliance!.inventory.operations;
    const events = appliance!.events;
    // A stand-in for the BMC flow: it advances the HostReplace operation through the real store
    // and emits on the real bus, as the Redfish room does.
    const flow = new Promise<void>((resolve, reject) => {
      const stop = ops.watch((change) => {
        if (change.type !== "ADDED" || change.operation.spec.operationKind !== "HostReplace") return;
        stop();
        const name = change.operation.metadata.name;
        const step = (stage: "PoweringOff" | "WaitingRepave", message: string) =>
          ops.updateStatus(name, () => ({
            phase: "InProgress",
            targets: [{ machineRef: "node-01", phase: "InProgress", stage, message }],
          }));
        (async () => {
          await sleep(300);
          await step("PoweringOff", "sent ForceOff");
          events.emit({ step: "bmc.power", result: "ok", machine: "node-01", detail: { action: "ForceOff" } });
          await sleep(1200);
          await step("WaitingRepave", "PXE override set, powered on");
          events.emit({ step: "dhcp.discover", result: "ok", machine: "node-01" });
          await sleep(1200);
          await ops.updateStatus(name, () => ({
            phase: "Complete",
            message: "targets complete=1 failed=0 inProgress=0 pending=0",
            targets: [{ machineRef: "node-01", phase: "Complete", message: "HostReplace completed" }],
          }));
        })().then(resolve, reject);
      });
    });
    const run = await cli(["machine", "repave", "node-01", "--wait", "--timeout=30s", stateFlag]);
    await flow;
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    const out = run.stdout;
    assert.match(out, /operation node-01-repave-\S+ \(HostReplace on node-01\) created/);
    assert.match(out, /phase +InProgress \(PoweringOff\): sent ForceOff/);
    assert.match(out, /phase +InProgress \(WaitingRepave\): PXE override set/);
    assert.match(out, /phase +Complete: HostReplace completed/);
    // Events from the Machine's stream, in order, including the one the action itself recorded.
    const requested = out.indexOf("operation.requested ok");
    const power = out.indexOf("bmc.power ok");
    const discover = out.indexOf("dhcp.discover ok");
    assert.ok(requested >= 0 && power > requested && discover > power, out);
  });

  it("--wait exits 4 when the timeout runs out, 5 when the operation fails", async () => {
    const slow = await cli(["machine", "power", "off", "node-01", "--wait", "--timeout=1500ms", stateFlag]);
    assert.equal(slow.code, 4, `${slow.stdout}\n${slow.stderr}`);
    assert.match(slow.stdout, /not waiting any longer/);
    const ops = appliance!.inventory.operations;
    const stop = ops.watch((change) => {
      if (change.type === "ADDED" && change.operation.spec.operationKind === "HostPowerOn") {
        stop();
        setTimeout(() => {
          void ops.updateStatus(change.operation.metadata.name, () => ({
            phase: "Failed",
            message: "BMC unreachable",
          }));
        }, 200);
      }
    });
    const failed = await cli(["machine", "power", "on", "node-01", "--wait", "--timeout=20s", stateFlag]);
    assert.equal(failed.code, 5, `${failed.stdout}\n${failed.stderr}`);
    assert.match(failed.stdout, /phase +Failed: BMC unreachable/);
  });

  it("operation create/show and machine events work through the CLI", async () => {
    const created = await cli([
      "operation",
      "create",
      "--kind=HostPowerOff",
      "--machine=node-01",
      "--name=manual-off",
      "--ttl=60",
      stateFlag,
    ]);
    assert.equal(created.code, 0, created.stderr);
    const show = await cli(["operation", "show", "manual-off", stateFlag]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /Kind: +HostPowerOff/);
    assert.match(show.stdout, /Requested by: +\S+ \(unix-socket\)/);
    const file = path.join(scratch.root, "op.yaml");
    await writeFile(
      file,
      "apiVersion: unbounded-cloud.io/v1alpha3\nkind: MachineOperation\nmetadata: {name: from-file}\nspec: {machineRef: node-01, operationKind: HostReboot}\n",
    );
    const fromFile = await cli(["operation", "create", "-f", file, "-o", "json", stateFlag]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(appliance!.inventory.operations.get("from-file")?.spec.operationKind, "HostReboot");
    const events = await cli(["machine", "events", "node-01", "-o", "json", stateFlag]);
    assert.equal(events.code, 0, events.stderr);
    const steps = events.stdout
      .trim()
      .split("\n")
      .map((line) => (JSON.parse(line) as { step: string }).step);
    assert.ok(steps.includes("operation.requested") && steps.includes("bmc.power"), steps.join(","));
  });

  it("refuses a second appliance on the same state dir before it reads any state", async () => {
    const before = await readFile(path.join(scratch.stateDir, "resource-version.json"), "utf8");
    await assert.rejects(start(scratch), (err: unknown) => {
      assert.ok(err instanceof SocketInUseError, String(err));
      assert.match((err as Error).message, /another metalman serves .*metalman\.sock/);
      return true;
    });
    assert.equal(await readFile(path.join(scratch.stateDir, "resource-version.json"), "utf8"), before);
    // The first one still answers.
    const run = await cli(["machine", "list", "-o", "json", stateFlag]);
    assert.equal(run.code, 0, run.stderr);
  });

  it("removes the socket on close; then the CLI says metalman is not running (exit 3)", async () => {
    await appliance!.close({ graceMs: 0 });
    appliance = undefined;
    await assert.rejects(stat(path.join(scratch.stateDir, "metalman.sock")), /ENOENT/);
    const run = await cli(["machine", "list", stateFlag]);
    assert.equal(run.code, 3);
    assert.match(run.stderr, /cannot reach metalman at .*metalman\.sock: no socket \(is metalman serve-pxe running/);
  });
});

describe("management socket: stale and foreign files", () => {
  it("replaces the socket a killed process left behind", async () => {
    const scratch = await scratchInventory("mm-apistale-");
    let appliance: RunningAppliance | undefined;
    try {
      const socketPath = path.join(scratch.stateDir, "metalman.sock");
      // A process that listens on the socket and dies by SIGKILL: the file stays, nobody answers.
      const child = spawn(process.execPath, [
        "-e",
        `require("net").createServer().listen(${JSON.stringify(socketPath)}, () => process.kill(process.pid, "SIGKILL"))`,
      ]);
      await new Promise<void>((resolve) => child.once("exit", () => resolve()));
      const stale = await lstat(socketPath);
      assert.ok(stale.isSocket());
      const refused = await cli(["machine", "list", `--state-dir=${scratch.stateDir}`]);
      assert.equal(refused.code, 3);
      assert.match(refused.stderr, /nobody listening/);

      appliance = await start(scratch);
      const fresh = await lstat(socketPath);
      assert.notEqual(fresh.ino, stale.ino);
      assert.equal(fresh.mode & 0o777, 0o600);
      const run = await cli(["machine", "list", "-o", "json", `--state-dir=${scratch.stateDir}`]);
      assert.equal(run.code, 0, run.stderr);
    } finally {
      await appliance?.close({ graceMs: 0 });
      await scratch.cleanup();
    }
  });

  it("never removes a file that is not a socket", async () => {
    const scratch = await scratchInventory("mm-apifile-");
    try {
      const socketPath = path.join(scratch.stateDir, "metalman.sock");
      await writeFile(socketPath, "operator notes\n");
      await assert.rejects(start(scratch), /metalman\.sock exists and is not a socket/);
      assert.equal(await readFile(socketPath, "utf8"), "operator notes\n");
    } finally {
      await rm(scratch.root, { recursive: true, force: true });
    }
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
