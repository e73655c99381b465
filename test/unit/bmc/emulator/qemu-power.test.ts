/**
 * Issue 6 §9: a VM-backed emulated BMC. redfishtool's power actions act on a real qemu
 * process over QMP, and a one-time PXE override makes exactly the next start a network boot
 * (`-boot once=n`). The qemu process is tracked by PID and stopped at the end.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { selfSignedCertificate } from "../../../../server/bmc/emulator/certificate.js";
import { QemuPower } from "../../../../server/bmc/emulator/qemu-power.js";
import { EmulatedBmc } from "../../../../server/bmc/emulator/redfish-service.js";
import { json, redfishtool, requireTool } from "./tools.js";

function cmdline(pid: number | undefined): string {
  assert.ok(pid, "qemu is running");
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
}

describe("BMC emulator backed by qemu over QMP", () => {
  it("On starts qemu, a Once Pxe override restarts it with -boot once=n, ForceOff quits it", async (t) => {
    if (!requireTool(t, "redfishtool") || !requireTool(t, "qemu-system-x86_64")) return;
    const dir = await mkdtemp(path.join(tmpdir(), "metalman-bmc-qemu-"));
    // No disk, no NIC: firmware only, started paused and resumed over QMP.
    const power = new QemuPower({
      qmpSocket: path.join(dir, "qmp.sock"),
      args: [
        "-machine",
        "pc",
        "-accel",
        "tcg",
        "-m",
        "32",
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "none",
        "-net",
        "none",
      ],
    });
    const bmc = new EmulatedBmc({ name: "vm-01", username: "admin", password: "pw-emulated", power });
    const port = await bmc.listen(await selfSignedCertificate(), "127.0.0.1", 0);
    t.after(async () => {
      const pid = power.pid;
      await bmc.close(); // quits qemu
      if (pid && existsSync(`/proc/${pid}`)) process.kill(pid, "SIGKILL");
      await rm(dir, { recursive: true, force: true });
    });
    const rhost = `127.0.0.1:${port}`;
    const state = async () =>
      json(await redfishtool(rhost, ["Systems", "-I", "1", "get", "-P", "PowerState"])).PowerState;
    assert.equal(await state(), "Off");
    assert.equal((await redfishtool(rhost, ["Systems", "-I", "1", "reset", "On"])).code, 0);
    assert.equal(await state(), "On");
    const first = power.pid;
    assert.doesNotMatch(cmdline(first), /once=n/);

    assert.equal((await redfishtool(rhost, ["Systems", "-I", "1", "setBootOverride", "Once", "Pxe"])).code, 0);
    assert.equal((await redfishtool(rhost, ["Systems", "-I", "1", "reset", "ForceRestart"])).code, 0);
    const second = power.pid;
    assert.notEqual(second, first, "qemu was started again for the network boot");
    assert.ok(
      !existsSync(`/proc/${first}/cmdline`) || !readFileSync(`/proc/${first}/cmdline`, "utf8").includes("qemu"),
      "the old qemu is gone",
    );
    assert.match(cmdline(second), /-boot once=n/);
    assert.deepEqual(power.boots, ["disk", "pxe"]);
    const boot = json(await redfishtool(rhost, ["Systems", "-I", "1", "get", "-P", "Boot"])).Boot as Record<
      string,
      unknown
    >;
    assert.equal(boot.BootSourceOverrideEnabled, "Disabled");

    // Without an override a restart is a QMP system_reset of the same process.
    assert.equal((await redfishtool(rhost, ["Systems", "-I", "1", "reset", "ForceRestart"])).code, 0);
    assert.equal(power.pid, second);
    assert.equal((await redfishtool(rhost, ["Systems", "-I", "1", "reset", "ForceOff"])).code, 0);
    assert.equal(await state(), "Off");
    assert.equal(power.pid, undefined);
    assert.ok(
      !existsSync(`/proc/${second}/cmdline`) || !readFileSync(`/proc/${second}/cmdline`, "utf8").includes("qemu"),
    );
  });
});
