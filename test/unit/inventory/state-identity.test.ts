/**
 * Issue 5 §2.3 and §3.2: state files for every valid Machine name; a deleted and re-created
 * Machine is a new Machine unless the operator adopts the old state; resourceVersions never
 * go backwards across restarts; list() carries a collection version; watch resumes or says Gone.
 */
import assert from "node:assert/strict";
import { readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { runStateCli } from "../../../server/app/state-cli.js";
import { GoneError, type MachineEvent } from "../../../server/inventory/backend.js";
import { inventoryFixture, machineYaml } from "./helpers.js";

function setup(t: { after(fn: () => Promise<void>): void }, files: Record<string, string>) {
  return inventoryFixture(t, files, { deletionGraceMs: 0 });
}

/** A DNS-1123 subdomain of exactly 253 characters (three 63-character labels and one of 61). */
const LONGEST = [...["a", "b", "c"].map((c) => `${c.repeat(62)}0`), `${"d".repeat(60)}0`].join(".");

describe("state identity", () => {
  it("saves and reloads the status of a Machine with a 253-character name", async (t) => {
    assert.equal(LONGEST.length, 253);
    const { stateDir, open } = await setup(t, { "long.yaml": machineYaml(LONGEST) });
    const inv = await open();
    assert.ok(inv.get(LONGEST), "the name is valid");
    const written = await inv.updateStatus(LONGEST, (m) => ({ ...m.status, tpm: { ekPublicKey: "EK" } }));
    assert.equal(written.outcome, "updated");
    const files = await readdir(path.join(stateDir, "status"));
    assert.ok(
      files.every((f) => Buffer.byteLength(f) <= 200),
      files.join(", "),
    );
    await inv.close();
    const again = await open();
    assert.equal(again.get(LONGEST)?.status?.tpm?.ekPublicKey, "EK");
    assert.deepEqual(again.problems(), []);
  });

  it("a re-created Machine starts new; metalman state adopt brings the old pins back", async (t) => {
    const { dir, stateDir, open } = await setup(t, { "a.yaml": machineYaml("node-01") });
    const inv = await open({ watch: true, requestPollMs: 50, rescanIntervalMs: 600_000 });
    await inv.updateStatus("node-01", (m) => ({ ...m.status, tpm: { ekPublicKey: "OLD-EK" } }));
    const oldUid = inv.get("node-01")!.metadata.uid!;
    await rm(path.join(dir, "a.yaml"));
    await inv.reload();
    assert.equal(inv.get("node-01"), undefined);
    await writeFile(path.join(dir, "b.yaml"), machineYaml("node-01"));
    await inv.reload();
    const fresh = inv.get("node-01")!;
    assert.notEqual(fresh.metadata.uid, oldUid);
    assert.equal(fresh.status?.tpm, undefined, "no EK pin inherited");

    const out: string[] = [];
    const io = { stdout: (s: string) => out.push(s), stderr: (s: string) => out.push(s) };
    assert.equal(await runStateCli(["list", `--state-dir=${stateDir}`], {}, io), 0);
    assert.match(out.join(""), new RegExp(`archived +node-01 +uid=${oldUid}`));
    assert.equal(await runStateCli(["adopt", "node-01", oldUid, `--state-dir=${stateDir}`], {}, io), 0, out.join(""));
    const adopted = inv.get("node-01")!;
    assert.equal(adopted.metadata.uid, oldUid);
    assert.equal(adopted.status?.tpm?.ekPublicKey, "OLD-EK");
  });

  it("resourceVersions never go backwards across restarts; list() has a collection version", async (t) => {
    const { stateDir, open } = await setup(t, { "a.yaml": machineYaml("node-01") });
    const first = await open();
    await first.updateStatus("node-01", (m) => ({ ...m.status, phase: "x" }));
    const before = first.list();
    const highest = BigInt(before.resourceVersion);
    assert.equal(BigInt(before[0]!.metadata.resourceVersion!), highest);
    await first.close();
    const second = await open();
    const after = second.list();
    assert.ok(BigInt(after.resourceVersion) > highest, `${after.resourceVersion} > ${highest}`);
    assert.ok(BigInt(after[0]!.metadata.resourceVersion!) > highest);
    await second.close();
    // Even a corrupt version file never makes versions repeat.
    await writeFile(path.join(stateDir, "resource-version.json"), "{garbage");
    const third = await open();
    assert.ok(BigInt(third.list().resourceVersion) > BigInt(after.resourceVersion));
  });

  it("watch resumes from a list's version, and answers Gone for one it no longer has", async (t) => {
    const { open } = await setup(t, { "a.yaml": machineYaml("node-01") });
    const inv = await open();
    const listed = inv.list();
    await inv.updateStatus("node-01", (m) => ({ ...m.status, phase: "one" }));
    await inv.updateStatus("node-01", (m) => ({ ...m.status, phase: "two" }));
    const replayed: MachineEvent[] = [];
    const stop = inv.watch((e) => replayed.push(e), { resourceVersion: listed.resourceVersion });
    assert.deepEqual(
      replayed.map((e) => e.machine.status?.phase),
      ["one", "two"],
    );
    await inv.updateStatus("node-01", (m) => ({ ...m.status, phase: "three" }));
    assert.equal(replayed.at(-1)?.machine.status?.phase, "three", "then live");
    stop();
    const current = inv.list().resourceVersion;
    const none: MachineEvent[] = [];
    inv.watch((e) => none.push(e), { resourceVersion: current })();
    assert.equal(none.length, 0);
    assert.throws(() => inv.watch(() => {}, { resourceVersion: "999999999" }), GoneError, "from the future");
    await inv.close();
    const restarted = await open();
    assert.throws(
      () => restarted.watch(() => {}, { resourceVersion: current }),
      GoneError,
      "a version from before the restart: list again",
    );
    const relisted = restarted.list();
    restarted.watch(() => {}, { resourceVersion: relisted.resourceVersion })();
  });
});
