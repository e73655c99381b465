/**
 * Issue 6 §9 (last sentence): `npm start` starts VM-less emulated BMCs with the appliance, so a
 * newcomer's `metalman machine power cycle node-01` works. The launcher (dist/server/dev.js, what
 * `npm start` runs) is driven as `npm start` drives it, on a copy of the example inventory and
 * ports of this suite: the CLI's power cycle completes; the Secret it writes is 0600 and git
 * ignores it; and after a restart the emulator presents the same certificate, so the pin taken
 * at first contact still holds and a second power cycle works (no tls-pin mismatch).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { DEV_SECRET_FILE } from "../../../server/app/dev-launcher.js";
import { repoRoot } from "../../support/paths.js";

const BMC_PORT = 15450;
const root = repoRoot();
const dist = path.join(root, "dist", "server");

function start(config: string): { child: ChildProcess; out: string[] } {
  const out: string[] = [];
  const child = spawn(
    process.execPath,
    [path.join(dist, "dev.js"), "--config", config, "--bmc-port", String(BMC_PORT)],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  child.stdout?.on("data", (b: Buffer) => out.push(b.toString()));
  child.stderr?.on("data", (b: Buffer) => out.push(b.toString()));
  return { child, out };
}

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.kill("SIGTERM");
  const code = await Promise.race([exited, sleep(30_000, undefined, { ref: false }).then(() => "timeout" as const)]);
  if (code === "timeout") {
    child.kill("SIGKILL");
    return null;
  }
  return code;
}

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(dist, "main.js"), ...args], { encoding: "utf8", timeout: 90_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("npm start: the appliance with emulated BMCs", { timeout: 240_000 }, () => {
  it("the example Machine's BMC works from the CLI, and its pin survives a restart", async () => {
    const example = await readFile(path.join(root, "examples", "inventory", "node-01.yaml"), "utf8");
    assert.match(
      example,
      /url: https:\/\/127\.0\.0\.1:8643\n/,
      "the example points at npm start's BMC (default --bmc-port)",
    );
    const ignored = spawnSync("git", ["check-ignore", "-q", `examples/inventory/${DEV_SECRET_FILE}`], { cwd: root });
    assert.equal(ignored.status, 0, "the generated Secret is git-ignored");

    const scratch = await mkdtemp(path.join(tmpdir(), "mm-dev-"));
    const running: ChildProcess[] = [];
    try {
      const inventory = path.join(scratch, "inventory");
      await mkdir(inventory);
      await writeFile(
        path.join(inventory, "node-01.yaml"),
        example
          .replace(/dir:\S+/, `dir:${path.join(root, "netboot-images", "host-ubuntu2404")}`)
          .replace("https://127.0.0.1:8643", `https://127.0.0.1:${BMC_PORT}`)
          // No repave at start-up: the power cycle is what is under test (and CI time is short).
          .replace(/repaveCounter: \d+/, "repaveCounter: 0"),
      );
      const config = path.join(scratch, "dev.yaml");
      await writeFile(
        config,
        [
          "inventory: inventory",
          "stateDir: dev/state",
          "cacheDir: dev/cache",
          "bindAddress: 127.0.0.1",
          "serveUrl: http://127.0.0.1:15451",
          "httpPort: 15451",
          "healthPort: 15452",
          "tftpPort: 15453",
          "dhcpPort: 15454",
          "healthBindAddress: 127.0.0.1",
          "logLevel: info",
          `imageRoot: ${path.join(root, "netboot-images")}`,
          "",
        ].join("\n"),
      );
      const stateDir = path.join(scratch, "dev", "state");
      const powerCycle = () =>
        cli(["machine", "power", "cycle", "node-01", "--state-dir", stateDir, "--wait", "--timeout", "80s"]);

      let run = start(config);
      running.push(run.child);
      await until("serve-pxe", () => run.out.join("").includes("metalman serve-pxe is serving"), 60_000);
      assert.match(run.out.join(""), new RegExp(`bmc-emulator  node-01 → https://127\\.0\\.0\\.1:${BMC_PORT}`));
      const secret = await stat(path.join(inventory, DEV_SECRET_FILE));
      assert.equal(secret.mode & 0o777, 0o600);
      const password = (await readFile(path.join(scratch, "dev", "bmc", "password"), "utf8")).trim();
      assert.ok(password.length >= 16);
      assert.equal((await stat(path.join(scratch, "dev", "bmc", "tls", "key.pem"))).mode & 0o777, 0o600);

      const first = powerCycle();
      assert.equal(first.status, 0, `${first.stdout}\n${first.stderr}`);
      assert.match(first.stdout, /HostReboot completed/);
      const pinned = JSON.parse(cli(["machine", "show", "node-01", "--state-dir", stateDir, "-o", "json"]).stdout);
      const pin = JSON.stringify(pinned).match(/"certFingerprint":"([0-9a-f:]{95})"/)?.[1];
      assert.ok(pin, "the BMC certificate was pinned at first contact");
      assert.equal(await stop(run.child), 0);

      // Again: same certificate, same pin, the BMC still answers.
      run = start(config);
      running.push(run.child);
      await until("serve-pxe again", () => run.out.join("").includes("metalman serve-pxe is serving"), 60_000);
      const second = powerCycle();
      assert.equal(second.status, 0, `${second.stdout}\n${second.stderr}`);
      const again = JSON.stringify(
        JSON.parse(cli(["machine", "show", "node-01", "--state-dir", stateDir, "-o", "json"]).stdout),
      );
      assert.ok(again.includes(pin), "the pin is unchanged");
      const all = run.out.join("") + first.stdout + second.stdout;
      assert.ok(!all.includes("mismatch"), "no tls-pin mismatch after the restart");
      assert.ok(!all.includes(password), "the password never reaches the output");
      assert.equal(await stop(run.child), 0);
    } finally {
      for (const child of running) await stop(child);
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
