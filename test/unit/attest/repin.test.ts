/**
 * The operator action after a board swap: repinTpm clears (or replaces) the pin and reports it;
 * `metalman tpm repin` reaches a serve-pxe through request files and gets the answer.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { runManagementCli } from "../../../server/app/machine-cli.js";
import { repinTpm } from "../../../server/attest/repin.js";
import { pollRepinRequests } from "../../../server/attest/repin-requests.js";
import { runTpmCli } from "../../../server/attest/tpm-cli.js";
import { BootEventBus } from "../../../server/events/boot-events.js";
import { FakeBackend } from "../http/fake-backend.js";
import { makeMachine } from "../http/support.js";

const pem = () =>
  generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "pem" }).toString();

function pinned() {
  const machine = makeMachine("node-a", "10.0.0.11", "dir:/x");
  machine.status = {
    tpm: { ekPublicKey: pem() },
    conditions: [
      {
        type: "EKCertificate",
        status: "True",
        reason: "Verified",
        message: "",
        lastTransitionTime: "2026-01-01T00:00:00Z",
      },
    ],
  };
  return { backend: new FakeBackend([machine]), events: new BootEventBus() };
}

describe("repinTpm", () => {
  it("clears the pin and the EK certificate result, and records who did it", async () => {
    const { backend, events } = pinned();
    const { previous } = await repinTpm(backend, events, "node-a", { by: "test" });
    assert.equal(previous?.length, 64);
    const status = backend.get("node-a")?.status;
    assert.equal(status?.tpm, undefined);
    assert.equal(
      status?.conditions?.find((c) => c.type === "EKCertificate"),
      undefined,
    );
    assert.equal(status?.conditions?.find((c) => c.type === "Attested")?.reason, "Repinned");
    const event = events.history("node-a").at(-1);
    assert.deepEqual([event?.step, event?.result, event?.detail?.by], ["attest.repin", "ok", "test"]);
  });

  it("pins a given EK at once, and refuses a quarantined Machine", async () => {
    const { backend, events } = pinned();
    const next = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey;
    await repinTpm(backend, events, "node-a", { ek: next });
    assert.match(backend.get("node-a")?.status?.tpm?.ekPublicKey ?? "", /BEGIN PUBLIC KEY/);
    backend.quarantineMachine("node-a", {
      machine: "node-a",
      reason: "CorruptStateFile",
      file: "/x",
      message: "corrupt",
      since: "now",
    });
    await assert.rejects(repinTpm(backend, events, "node-a"), /quarantined/);
  });
});

describe("metalman tpm repin", () => {
  it("is applied by a running serve-pxe (request file) and prints its answer; unknown Machines fail", async () => {
    const stateDir = await mkdtemp(path.join(tmpdir(), "m9a-repin-"));
    const { backend, events } = pinned();
    const stop = pollRepinRequests(stateDir, backend, events, () => {}, 50);
    try {
      const out: string[] = [];
      const io = { stdout: (s: string) => out.push(s), stderr: (s: string) => out.push(s) };
      assert.equal(
        await runTpmCli(["repin", "node-a", "--state-dir", stateDir, "--wait", "5"], {}, io),
        0,
        out.join(""),
      );
      assert.match(out.join(""), /EK pin was sha256:[0-9a-f]{16}, now cleared/);
      assert.equal(backend.get("node-a")?.status?.tpm, undefined);
      const ekFile = path.join(stateDir, "ek.pem");
      await writeFile(ekFile, pem());
      assert.equal(
        await runTpmCli(["repin", "node-a", "--ek", ekFile, "--state-dir", stateDir, "--wait", "5"], {}, io),
        0,
        out.join(""),
      );
      assert.match(out.join(""), /now pinned sha256:/);
      assert.equal(await runTpmCli(["repin", "node-z", "--state-dir", stateDir, "--wait", "5"], {}, io), 1);
      assert.match(out.join(""), /node-z: machine node-z not found/);
      assert.equal(await runTpmCli(["repin"], {}, io), 2);
      // The same action where operators look for it, beside repin-bmc.
      const before = out.length;
      assert.equal(
        await runManagementCli("machine", ["repin-tpm", "node-a", "--state-dir", stateDir, "--wait", "5"], {}, io),
        0,
        out.join(""),
      );
      assert.match(out.slice(before).join(""), /EK pin was sha256:[0-9a-f]{16}, now cleared/);
    } finally {
      stop();
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
