/**
 * The composition root on loopback: every service starts, /healthz and /readyz answer, a
 * request from a Machine's lease IP gets its rendered template, events reach /metrics,
 * close() frees every port, and a bad inventory path stops the start with a clear error.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { type RunningAppliance, startAppliance } from "../../../server/app/serve-pxe.js";
import { repoRoot } from "../../support/paths.js";
import { loopbackConfig, loopbackProbes } from "./loopback-appliance.js";

function configFor(stateDir: string, inventory: string) {
  return loopbackConfig({
    inventory,
    stateDir,
    cacheDir: path.join(stateDir, "cache"),
    extraArgs: [`--image-root=${path.join(repoRoot(), "netboot-images")}`],
  });
}

describe("startAppliance (example inventory, loopback)", () => {
  let scratch: string;
  let appliance: RunningAppliance | undefined;
  let config: Awaited<ReturnType<typeof configFor>>;

  before(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), "mm-app-"));
    config = await configFor(scratch, path.join(repoRoot(), "examples", "inventory"));
    appliance = await startAppliance(config, { log: pino({ level: "silent" }), probes: loopbackProbes });
  });

  after(async () => {
    await appliance?.close();
    await rm(scratch, { recursive: true, force: true });
  });

  it("answers /healthz and reports every service ready on /readyz", async () => {
    const health = await fetch(`http://127.0.0.1:${config.healthPort}/healthz`);
    assert.equal(health.status, 200);
    const ready = await fetch(`http://127.0.0.1:${config.healthPort}/readyz`);
    assert.equal(ready.status, 200, await ready.text());
  });

  it("renders the example Machine's GRUB menu for a request from its lease IP (127.0.0.1)", async () => {
    const res = await fetch(`http://127.0.0.1:${config.httpPort}/grub/grub.cfg`);
    assert.equal(res.status, 200);
    const body = await res.text();
    assert.match(body, /menuentry 'metalman install node-01'/);
    assert.ok(body.includes(` 'unbounded.serve_url=http://127.0.0.1:${config.httpPort}' `), body);
  });

  it("counts the boot steps it served in /metrics", async () => {
    await fetch(`http://127.0.0.1:${config.httpPort}/does-not-exist`);
    const metrics = await (await fetch(`http://127.0.0.1:${config.httpPort}/metrics`)).text();
    assert.match(metrics, /metalman_boot_events_total\{step="http.template",result="ok"\} [1-9]/);
  });

  it("describes what it serves for the banner", () => {
    const lines = appliance!.describe().join("\n");
    assert.match(lines, /mode=relay server-ip=127\.0\.0\.1/);
    assert.match(lines, /1 machines, 0 invalid files/);
  });

  it("frees every port on close", async () => {
    await appliance!.close();
    appliance = undefined;
    await assert.rejects(fetch(`http://127.0.0.1:${config.httpPort}/healthz`));
    await assert.rejects(fetch(`http://127.0.0.1:${config.healthPort}/healthz`));
  });
});

describe("startAppliance start-up errors", () => {
  it("refuses an inventory path that is not a directory, naming the flag", async () => {
    const scratch = await mkdtemp(path.join(tmpdir(), "mm-app-"));
    try {
      const config = await configFor(scratch, path.join(scratch, "no-such-dir"));
      await assert.rejects(
        startAppliance(config, { log: pino({ level: "silent" }), probes: loopbackProbes }),
        /--inventory: .* is not a directory/,
      );
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
});

describe("startAppliance event stream wiring", () => {
  it("forgets a deleted Machine's history, so one created again starts a new timeline", async () => {
    const scratch = await mkdtemp(path.join(tmpdir(), "mm-app-"));
    const inventory = path.join(scratch, "inventory");
    await mkdir(inventory);
    const example = await readFile(path.join(repoRoot(), "examples", "inventory", "node-01.yaml"), "utf8");
    const file = path.join(inventory, "node-01.yaml");
    await writeFile(
      file,
      example.replace(/dir:\S+/, `dir:${path.join(repoRoot(), "netboot-images", "host-ubuntu2404")}`),
    );
    const config = await configFor(scratch, inventory);
    const appliance = await startAppliance(config, { log: pino({ level: "silent" }), probes: loopbackProbes });
    try {
      assert.equal((await fetch(`http://127.0.0.1:${config.httpPort}/grub/grub.cfg`)).status, 200);
      assert.ok(appliance.events.history("node-01").length > 0);
      await unlink(file);
      // The inventory watcher debounces; bounded wait for the DELETED to reach the bus.
      for (let i = 0; i < 100 && appliance.events.history("node-01").length > 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.deepEqual(appliance.events.history("node-01"), []);
      assert.equal(appliance.events.since(appliance.events.firstSeq - 1, { machine: "node-01" }).ok, false);
    } finally {
      await appliance.close({ graceMs: 0 });
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
