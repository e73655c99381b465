import assert from "node:assert/strict";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { before, describe, it } from "node:test";
import { BMC_CA_ANNOTATION, createBmcDriver } from "../../../../server/bmc/create-driver.js";
import type { BmcError } from "../../../../server/bmc/driver.js";
import { CERT_CONDITION, certFingerprint, repinBmc } from "../../../../server/bmc/tls-pin.js";
import { BootEventBus } from "../../../../server/events/boot-events.js";
import { FileInventory } from "../../../../server/inventory/file-inventory.js";
import { silentLog, tempDir } from "../../inventory/helpers.js";
import { type Cert, catfish, FakeBmc, makeCert } from "./fake-bmc.js";

const PASSWORD = "bmc-Passw0rd-xyz";

let certA: Cert;
let certB: Cert;
before(() => {
  certA = makeCert();
  certB = makeCert();
});

function machine(url: string, annotations = ""): string {
  return `apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata:
  name: node-01${annotations}
spec:
  pxe:
    image: ghcr.io/azure/images/host-ubuntu2404:v1
    dhcpLeases:
    - {mac: "aa:bb:cc:dd:ee:01", ipv4: "10.0.0.11", subnetMask: "255.255.255.0", gateway: "10.0.0.1"}
    redfish:
      url: ${url}
      username: admin
      passwordRef: {name: bmc-node-01, namespace: unbounded-kube}
`;
}

const secret = `apiVersion: v1
kind: Secret
metadata: {name: bmc-node-01, namespace: unbounded-kube}
stringData:
  password: ${PASSWORD}
`;

async function appliance(
  t: { after(fn: () => Promise<void>): void },
  cert: Cert,
  extra: Record<string, string> = {},
  annotations = "",
) {
  const bmc = catfish(await new FakeBmc(cert).start());
  t.after(() => bmc.close());
  bmc.route("POST /redfish/v1/SessionService/Sessions", (req) => {
    const body = req.body as { Password?: string };
    return body.Password === PASSWORD
      ? { status: 201, headers: { "x-auth-token": "t", location: "/redfish/v1/SessionService/Sessions/1" } }
      : { status: 401 };
  });
  bmc.route("DELETE /redfish/v1/SessionService/Sessions/1", { status: 204 });
  const { dir: root, beforeRemove } = await tempDir(t);
  const dir = path.join(root, "machines");
  await mkdir(dir);
  await writeFile(path.join(dir, "node-01.yaml"), machine(bmc.url, annotations));
  await writeFile(path.join(dir, "secret.yaml"), secret);
  await chmod(path.join(dir, "secret.yaml"), 0o600);
  for (const [name, text] of Object.entries(extra)) await writeFile(path.join(dir, name), text);
  const inv = new FileInventory({
    dir,
    stateDir: path.join(root, "state"),
    log: silentLog,
    watch: false,
    deletionGraceMs: 0,
  });
  beforeRemove(() => inv.close());
  await inv.load();
  const events = new BootEventBus();
  const open = async () => {
    const d = await createBmcDriver(inv.get("node-01")!, {
      backend: inv,
      secrets: inv.secrets,
      events,
      tuning: { settleMs: 1, maxStateReads: 2, transport: { retries: 0 } },
    });
    assert.ok(d);
    t.after(() => d.close());
    return d;
  };
  return { bmc, inv, events, open };
}

describe("BMC pin store over the backend (createBmcDriver)", () => {
  it("pins at first contact into status.redfish.certFingerprint, logs in with the Secret's password", async (t) => {
    const { bmc, inv, events, open } = await appliance(t, certA);
    const d = await open();
    assert.equal(await d.powerState(), "On");
    const status = inv.get("node-01")!.status!;
    assert.equal(status.redfish?.certFingerprint, certA.opensslFingerprint.toLowerCase());
    assert.equal(
      certFingerprint(Buffer.from(certA.cert.replace(/-----[^-]+-----|\s/g, ""), "base64")),
      status.redfish?.certFingerprint,
    );
    assert.deepEqual(status.operations, {}, "the first Redfish write creates status.operations (spec §2.2)");
    assert.equal(bmc.requests("GET", "/redfish/v1/Systems/1")[0]!.headers["x-auth-token"], "t");
    const pinned = events.history("node-01").find((e) => e.step === "bmc.tls-pin");
    assert.equal(pinned?.result, "ok");
    assert.ok(!JSON.stringify(events.history("node-01")).includes(PASSWORD));
  });

  it("a mismatch refuses the call, sets a condition with both fingerprints and records one event; re-pin lifts it", async (t) => {
    const { bmc, inv, events, open } = await appliance(t, certA);
    const first = await open();
    await first.powerState();
    await first.close();
    bmc.useCert(certB);
    bmc.seen.length = 0;
    const d = await open();
    for (let i = 0; i < 3; i++) {
      await assert.rejects(d.powerState(), (err: BmcError) => err.code === "tls-pin-mismatch");
    }
    assert.equal(bmc.seen.length, 0, "nothing was sent to the impostor");
    const a = certA.opensslFingerprint.toLowerCase();
    const b = certB.opensslFingerprint.toLowerCase();
    const condition = await (async () => {
      for (let i = 0; i < 100; i++) {
        const c = inv.get("node-01")!.status?.conditions?.find((x) => x.type === CERT_CONDITION);
        if (c) return c;
        await new Promise((r) => setTimeout(r, 10));
      }
      return undefined;
    })();
    assert.ok(condition, "condition set");
    assert.equal(condition.status, "False");
    assert.equal(condition.reason, "FingerprintMismatch");
    assert.ok(condition.message.includes(a) && condition.message.includes(b), condition.message);
    // A second driver for the same Machine (flows may make one per reconcile) adds no event.
    const again = await open();
    await assert.rejects(again.powerState(), (err: BmcError) => err.code === "tls-pin-mismatch");
    await new Promise((r) => setTimeout(r, 50));
    const mismatches = events.history("node-01").filter((e) => e.step === "bmc.tls-pin" && e.result === "error");
    assert.equal(mismatches.length, 1, "one event, not one per refused call");
    assert.deepEqual(mismatches[0]!.detail, { presented: b, pinned: a });
    // The pin is unchanged: only an operator re-pins.
    assert.equal(inv.get("node-01")!.status?.redfish?.certFingerprint, a);

    // Operator re-pin to the fingerprint the condition showed (upper case, as openssl prints it).
    assert.equal(
      await repinBmc(inv, "node-01", {
        fingerprint: certB.opensslFingerprint,
        events,
        actor: { user: "alice", transport: "test" },
      }),
      b,
    );
    assert.equal(
      inv.get("node-01")!.status?.conditions?.find((x) => x.type === CERT_CONDITION),
      undefined,
    );
    assert.equal(await d.powerState(), "On", "the same driver accepts the new pin at once");
    await assert.rejects(repinBmc(inv, "node-01", { fingerprint: "zz" }), /SHA-256 fingerprint/);
    // Clearing the pin: the next contact pins again.
    assert.equal(await repinBmc(inv, "node-01", {}), undefined);
    await d.powerState();
    assert.equal(inv.get("node-01")!.status?.redfish?.certFingerprint, b);
  });

  it("a CA bundle ConfigMap named by annotation turns on normal verification (nothing pinned)", async (t) => {
    const ca = `apiVersion: v1
kind: ConfigMap
metadata: {name: bmc-ca, namespace: unbounded-kube}
data:
  ca.crt: |
${certA.cert
  .trim()
  .split("\n")
  .map((l) => `    ${l}`)
  .join("\n")}
`;
    const { inv, open } = await appliance(
      t,
      certA,
      { "ca.yaml": ca },
      `\n  annotations:\n    ${BMC_CA_ANNOTATION}: bmc-ca`,
    );
    const d = await open();
    assert.equal(await d.powerState(), "On");
    assert.equal(inv.get("node-01")!.status?.redfish?.certFingerprint, undefined);
  });

  it("refuses every call once the Machine is quarantined, even on a driver made before", async (t) => {
    const { bmc, inv, events } = await appliance(t, certA);
    let quarantined = false;
    const backend = Object.create(inv) as typeof inv;
    backend.quarantine = (name: string) =>
      quarantined
        ? { machine: name, reason: "CorruptStateFile", file: "x", message: "corrupt", since: "now" }
        : undefined;
    const d = await createBmcDriver(inv.get("node-01")!, {
      backend,
      secrets: inv.secrets,
      events,
      tuning: { settleMs: 1, maxStateReads: 2 },
    });
    assert.ok(d);
    t.after(() => d.close());
    quarantined = true;
    await assert.rejects(d.power("ForceOff"), (err: BmcError) => err.code === "quarantined");
    await assert.rejects(
      createBmcDriver(inv.get("node-01")!, { backend, secrets: inv.secrets }),
      (err: BmcError) => err.code === "quarantined",
    );
    assert.equal(bmc.seen.length, 0);
  });

  it("a missing Secret is a clear auth error", async (t) => {
    const { inv } = await appliance(t, certA);
    const m = inv.get("node-01")!;
    const other = {
      ...m,
      spec: {
        ...m.spec,
        pxe: { ...m.spec.pxe!, redfish: { ...m.spec.pxe!.redfish!, passwordRef: { name: "gone", namespace: "x" } } },
      },
    };
    await assert.rejects(
      createBmcDriver(other, { backend: inv, secrets: inv.secrets }),
      (err: BmcError) =>
        err.code === "auth" && /Secret x\/gone \(spec.pxe.redfish.passwordRef\) not found/.test(err.message),
    );
  });
});
