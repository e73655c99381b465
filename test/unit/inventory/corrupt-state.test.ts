/**
 * Issue 5 §2.1: a corrupt status file must never turn into a reinstall. Before, it was ignored
 * and overwritten: the Machine got a new uid and an empty status, and grub.cfg offered the
 * install entry again, so the next PXE boot would wipe the disk.
 */
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { runStateCli } from "../../../server/app/state-cli.js";
import { isQuarantined, QuarantinedError } from "../../../server/inventory/backend.js";
import { FileInventory, type FileInventoryOptions } from "../../../server/inventory/file-inventory.js";
import type { Machine } from "../../../server/inventory/types.js";
import { TemplateRenderer } from "../../../server/template/render.js";
import { repoRoot } from "../../support/paths.js";
import { silentLog, tempDir } from "./helpers.js";

const INSTALLED_YAML = `apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata:
  name: node-01
spec:
  pxe:
    image: ghcr.io/azure/images/host-ubuntu2404:v1
    dhcpLeases:
    - {mac: "aa:bb:cc:dd:ee:01", ipv4: "10.0.0.11", subnetMask: "255.255.255.0", gateway: "10.0.0.1"}
  operations: {rebootCounter: 2, repaveCounter: 2}
`;
export const GARBAGE = '{"name": "node-01", "status": {"operations": {"repaveCounter": 2';

export async function corruptSetup(t: { after(fn: () => Promise<void>): void }) {
  const { dir: root, beforeRemove } = await tempDir(t);
  const dir = path.join(root, "machines");
  const stateDir = path.join(root, "state");
  await mkdir(dir);
  await writeFile(path.join(dir, "node-01.yaml"), INSTALLED_YAML);
  const open = async (more: Partial<FileInventoryOptions> = {}) => {
    const inv = new FileInventory({ dir, stateDir, log: silentLog, watch: false, ...more });
    beforeRemove(() => inv.close());
    await inv.load();
    return inv;
  };
  // First life: the Machine was installed (the installer's /pxe/disable recorded repave 2).
  const first = await open();
  await first.updateStatus("node-01", (m: Machine) => ({
    ...m.status,
    operations: { rebootCounter: 2, repaveCounter: 2 },
    tpm: { ekPublicKey: "PINNED-EK" },
  }));
  await first.close();
  const stateFile = path.join(stateDir, "status", "node-01.json");
  await writeFile(stateFile, GARBAGE); // A disk or hand edit gone wrong.
  return { root, dir, stateDir, stateFile, open };
}

const GRUB = path.join(repoRoot(), "netboot-images", "host-ubuntu2404", "disk", "grub", "grub.cfg.tmpl");
const IPXE = path.join(repoRoot(), "netboot-images", "host-ubuntu2404", "disk", "boot.ipxe.tmpl");

export async function renderBoot(machine: Machine): Promise<string> {
  const renderer = new TemplateRenderer();
  const ctx = {
    serveUrl: "http://10.0.0.1:8880",
    apiserverUrl: "",
    cluster: { caCertBase64: "", clusterDNS: "", version: "" },
  };
  const grub = renderer.render(await readFile(GRUB, "utf8"), machine, ctx, "grub.cfg");
  const ipxe = renderer.render(await readFile(IPXE, "utf8"), machine, ctx, "boot.ipxe");
  return `${grub}\n${ipxe}`;
}

describe("corrupt machine state file", () => {
  it("never renders the install entry and is never overwritten", async (t) => {
    const { stateDir, open } = await corruptSetup(t);
    const inv = await open();
    const machine = inv.get("node-01")!;
    const boot = await renderBoot(machine);
    assert.doesNotMatch(boot, /menuentry "metalman install/, "no GRUB install entry");
    assert.doesNotMatch(boot, /installing node-01/, "no iPXE install");
    assert.match(boot, /chainloader \/EFI\/ubuntu\/shimx64\.efi/, "GRUB boots the installed disk");
    // The corrupt bytes are kept, byte for byte, for the operator.
    const files = await readdir(path.join(stateDir, "status"));
    const copies = files.filter((f) => f.startsWith("node-01.json.corrupt"));
    assert.equal(copies.length, 1, files.join(", "));
    assert.equal(await readFile(path.join(stateDir, "status", copies[0]!), "utf8"), GARBAGE);
  });

  it("quarantines the Machine: condition, quarantine(), problems() naming the file, refused writes", async (t) => {
    const { stateFile, open } = await corruptSetup(t);
    const inv = await open();
    const machine = inv.get("node-01")!;
    assert.ok(isQuarantined(machine));
    const condition = machine.status?.conditions?.find((c) => c.type === "StateQuarantined");
    assert.equal(condition?.reason, "CorruptStateFile");
    assert.equal(machine.status?.tpm, undefined, "no pin is made up");
    const quarantine = inv.quarantine("node-01")!;
    assert.equal(quarantine.file, stateFile);
    assert.equal(quarantine.movedTo, `${stateFile}.corrupt`);
    const problems = inv.problems().filter((p) => p.kind === "state");
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.machine, "node-01");
    assert.ok(problems[0]!.message.includes(stateFile), problems[0]!.message);
    // Attestation (EK pin) and BMC writers are refused; trust-free progress is allowed and keeps the condition.
    await assert.rejects(
      inv.updateStatus("node-01", (m) => ({ ...m.status, tpm: { ekPublicKey: "NEW-EK" } })),
      QuarantinedError,
    );
    const progress = await inv.updateStatus("node-01", (m) => ({ ...m.status, conditions: [] }), {
      allowQuarantined: true,
    });
    assert.ok(isQuarantined(progress.machine), "a writer cannot drop the quarantine condition");
  });

  it("stays quarantined across restarts and never makes a second .corrupt copy", async (t) => {
    const { stateDir, open } = await corruptSetup(t);
    const first = await open();
    const uid = first.get("node-01")!.metadata.uid;
    await first.close();
    const again = await open();
    assert.ok(isQuarantined(again.get("node-01")!));
    assert.equal(again.get("node-01")!.metadata.uid, uid);
    assert.doesNotMatch(await renderBoot(again.get("node-01")!), /menuentry "metalman install/);
    const copies = (await readdir(path.join(stateDir, "status"))).filter((f) => f.includes(".corrupt"));
    assert.deepEqual(copies, ["node-01.json.corrupt"]);
  });

  it("is lifted only by the operator: metalman state accept-reset --as-installed (running daemon)", async (t) => {
    const { stateDir, open } = await corruptSetup(t);
    const inv = await open({ watch: true, requestPollMs: 50 });
    const out: string[] = [];
    const io = { stdout: (s: string) => out.push(s), stderr: (s: string) => out.push(s) };
    const notQuarantined = await runStateCli(["accept-reset", "node-02", `--state-dir=${stateDir}`], {}, io);
    assert.equal(notQuarantined, 1, out.join(""));
    const code = await runStateCli(["accept-reset", "node-01", "--as-installed", `--state-dir=${stateDir}`], {}, io);
    assert.equal(code, 0, out.join(""));
    const machine = inv.get("node-01")!;
    assert.equal(isQuarantined(machine), false);
    assert.equal(inv.quarantine("node-01"), undefined);
    assert.deepEqual(machine.status?.operations, { rebootCounter: 2, repaveCounter: 2 });
    assert.doesNotMatch(await renderBoot(machine), /menuentry "metalman install/);
    assert.deepEqual(inv.problems(), []);
    const files = await readdir(path.join(stateDir, "status"));
    assert.ok(!files.some((f) => f.includes(".corrupt")), "the copy went to the archive");
    assert.ok(
      (await readdir(path.join(stateDir, "status", "archive"))).some((f) => f.endsWith("node-01.json.corrupt")),
    );
  });

  it("restore brings a repaired file back (queued while stopped, applied at start)", async (t) => {
    const { root, stateDir, open } = await corruptSetup(t);
    const first = await open();
    await first.close();
    const repaired = path.join(root, "repaired.json");
    await writeFile(
      repaired,
      JSON.stringify({
        status: { operations: { rebootCounter: 2, repaveCounter: 2 }, tpm: { ekPublicKey: "PINNED-EK" } },
      }),
    );
    const out: string[] = [];
    const io = { stdout: (s: string) => out.push(s), stderr: (s: string) => out.push(s) };
    const code = await runStateCli(["restore", "node-01", repaired, `--state-dir=${stateDir}`, "--wait=0"], {}, io);
    assert.equal(code, 3, "no daemon running: queued");
    const inv = await open();
    const machine = inv.get("node-01")!;
    assert.equal(isQuarantined(machine), false);
    assert.equal(machine.status?.tpm?.ekPublicKey, "PINNED-EK");
  });
});
