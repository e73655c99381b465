/**
 * Proof of `/attest` with a real software TPM (swtpm) and tpm2-tools doing what the upstream
 * agent does (spec §7.7), against the real appliance (startAppliance: file inventory, netboot
 * HTTP listener on loopback; the Machine is identified by the request's source address
 * 127.0.0.x, its lease IP). The token comes from a kubeadm bootstrap-token Secret.
 * Needs swtpm, swtpm-tools, tpm2-tools, openssl: skipped without them, failing under CI=true.
 */
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { type RunningAppliance, startAppliance } from "../../../server/app/serve-pxe.js";
import { openToken } from "../../../server/attest/seal.js";
import { activateCredentialInSoftware, decodeTpm2bPublic, objectName } from "../../../server/attest/tpm/index.js";
import { runTpmCli } from "../../../server/attest/tpm-cli.js";
import { repoRoot } from "../../support/paths.js";
import { loopbackConfig, loopbackProbes } from "../app/loopback-appliance.js";
import { privateSetupConfig, run, SoftTpm, softTpmSuite } from "./soft-tpm.js";
import { httpFrom, MemorySecrets } from "./support.js";

const TOKEN = "m9aabc.0123456789abcdef";
const SECRET_NAME = "bootstrap-token-m9aabc";
const MACHINES = {
  rsa: { name: "m9a-rsa", ip: "127.0.0.21" },
  ecc: { name: "m9a-ecc", ip: "127.0.0.22" },
  cert: { name: "m9a-cert", ip: "127.0.0.23", requireEkCert: true },
  idle: { name: "m9a-idle", ip: "127.0.0.24" },
  open: { name: "m9a-open", ip: "127.0.0.25" },
} as const;

async function writeInventory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const image = `dir:${path.join(repoRoot(), "netboot-images", "host-ubuntu2404")}`;
  let n = 0;
  for (const m of Object.values(MACHINES)) {
    n++;
    const machine = {
      apiVersion: "unbounded-cloud.io/v1alpha3",
      kind: "Machine",
      metadata: {
        name: m.name,
        ...("requireEkCert" in m ? { annotations: { "metalman.unbounded-cloud.io/require-ek-cert": "true" } } : {}),
      },
      spec: {
        pxe: {
          image,
          dhcpLeases: [{ mac: `52:54:00:9a:00:0${n}`, ipv4: m.ip, subnetMask: "255.0.0.0", gateway: "127.0.0.1" }],
        },
      },
    };
    await writeFile(path.join(dir, `${m.name}.yaml`), JSON.stringify(machine, null, 2));
  }
}

/** A running appliance with its own state, on fresh loopback ports. */
async function appliance(
  scratch: string,
  label: string,
  extra: string[],
): Promise<{ app: RunningAppliance; port: number; state: string }> {
  const state = path.join(scratch, `state-${label}`);
  const config = await loopbackConfig({
    inventory: path.join(scratch, "inventory"),
    stateDir: state,
    cacheDir: path.join(state, "cache"),
    extraArgs: [
      `--image-root=${path.join(repoRoot(), "netboot-images")}`,
      `--bootstrap-token-secret=${SECRET_NAME}`,
      ...extra,
    ],
  });
  const secrets = new MemorySecrets();
  secrets.set("kube-system", SECRET_NAME, {
    "token-id": "m9aabc",
    "token-secret": "0123456789abcdef",
    "usage-bootstrap-authentication": "true",
  });
  const app = await startAppliance(config, { log: pino({ level: "silent" }), probes: loopbackProbes, secrets });
  return { app, port: config.httpPort, state };
}

/** The Machine boots from us: its GRUB menu over HTTP from its lease IP (an `http.template` event). */
async function boot(port: number, ip: string): Promise<void> {
  const res = await httpFrom(ip, port, "GET", "/grub/grub.cfg");
  assert.equal(res.status, 200, res.text);
}

interface AgentResult {
  status: number;
  text: string;
  token?: string;
  response?: Record<string, string>;
}

/** The agent: EK + SRK from the TPM, POST /attest, ActivateCredential, AES-GCM open. */
async function agent(
  tpm: SoftTpm,
  alg: "rsa" | "ecc",
  port: number,
  ip: string,
  options: { ekCert?: Buffer } = {},
): Promise<AgentResult> {
  const ek = await tpm.createEk(alg);
  const srk = await tpm.createSrk();
  const body: Record<string, string> = { ekPub: ek.pub.toString("base64"), srkPub: srk.pub.toString("base64") };
  if (options.ekCert) body.ekCert = options.ekCert.toString("base64");
  const res = await httpFrom(ip, port, "POST", "/attest", JSON.stringify(body), { "content-type": "application/json" });
  if (res.status !== 200) return { status: res.status, text: res.text };
  assert.match(String(res.headers["content-type"]), /^application\/json/);
  assert.ok(res.text.endsWith("}\n"), "one JSON line plus a newline");
  const response = JSON.parse(res.text) as Record<string, string>;
  const key = await tpm.activate(
    ek,
    srk,
    Buffer.from(response.credentialBlob!, "base64"),
    Buffer.from(response.encryptedSecret!, "base64"),
  );
  assert.equal(key.length, 32);
  const token = openToken(
    key,
    Buffer.from(response.encryptedToken!, "base64"),
    Buffer.from(response.gcmNonce!, "base64"),
  );
  return { status: 200, text: res.text, token, response };
}

softTpmSuite("POST /attest with swtpm + tpm2-tools (the upstream agent's flow)", () => {
  let scratch: string;
  const tpms: SoftTpm[] = [];
  let ca: Awaited<ReturnType<typeof privateSetupConfig>>;
  let certTpm: SoftTpm;
  let ekCert: Buffer | undefined;
  const newTpm = async (label: string, setupConfig?: string) => {
    const tpm = await SoftTpm.start(path.join(scratch, `tpm-${label}`), { setupConfig });
    tpms.push(tpm);
    return tpm;
  };

  before(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), "m9a-attest-"));
    await writeInventory(path.join(scratch, "inventory"));
    ca = await privateSetupConfig(path.join(scratch, "ca-own"));
    certTpm = await newTpm("cert", ca.config);
    ekCert = await certTpm.readEkCert();
  });

  after(async () => {
    for (const tpm of tpms) await tpm.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  describe("appliance trusting the swtpm's own CA", () => {
    let app: RunningAppliance;
    let port: number;
    let state: string;
    before(async () => {
      ({ app, port, state } = await appliance(scratch, "own-ca", [`--tpm-ca-bundle=${ca.issuerCert}`]));
    });
    after(async () => app?.close({ graceMs: 0 }));

    it("RSA EK: the agent recovers K with tpm2_activatecredential and opens the configured token; the EK is pinned", async () => {
      const tpm = await newTpm("rsa");
      await boot(port, MACHINES.rsa.ip);
      const result = await agent(tpm, "rsa", port, MACHINES.rsa.ip);
      assert.equal(result.status, 200, result.text);
      assert.equal(result.token, TOKEN);
      // Upstream's sizes for RSA-2048 / SHA-256 / AES-128 (spec §7.3).
      assert.equal(Buffer.from(result.response!.credentialBlob!, "base64").length, 70);
      assert.ok(result.response!.credentialBlob!.startsWith("AEQAI"));
      assert.equal(Buffer.from(result.response!.encryptedSecret!, "base64").length, 258);
      assert.equal(Buffer.from(result.response!.gcmNonce!, "base64").length, 12);
      assert.equal(result.response!.clusterCA, undefined, "no clusterCA key when none is configured");
      const machine = app.inventory.get(MACHINES.rsa.name)!;
      const pin = machine.status?.tpm?.ekPublicKey ?? "";
      assert.match(pin, /^-----BEGIN PUBLIC KEY-----\n/);
      const pemFile = path.join(tpm.dir, "ek.pem");
      await run("tpm2_readpublic", ["-c", path.join(tpm.dir, "ek-rsa.ctx"), "-f", "pem", "-o", pemFile], tpm.env);
      const ekPem = await readFile(pemFile, "utf8");
      assert.ok(createPublicKey(pin).equals(createPublicKey(ekPem)), "the pin is the TPM's EK");
      const history = app.events.history(MACHINES.rsa.name);
      assert.ok(history.some((e) => e.step === "attest.ek-pin" && e.result === "ok"));
      const issue = history.find((e) => e.step === "attest.issue");
      assert.equal(issue?.result, "ok");
      assert.equal(issue?.detail?.ekAlgorithm, "rsa2048");
      assert.ok(!JSON.stringify(history).includes("0123456789abcdef"), "the token never reaches an event");

      // The same TPM again: 200 (the pin matches).
      const again = await agent(tpm, "rsa", port, MACHINES.rsa.ip);
      assert.equal(again.status, 200, again.text);
      assert.equal(again.token, TOKEN);
    });

    it("a second TPM from the same IP gets 403, no token, and a refusal event", async () => {
      const other = await newTpm("rsa-other");
      const result = await agent(other, "rsa", port, MACHINES.rsa.ip);
      assert.equal(result.status, 403);
      assert.equal(result.text, "EK public key does not match stored key\n");
      assert.ok(!result.text.includes("m9aabc"));
      const refusal = app.events.history(MACHINES.rsa.name).at(-1);
      assert.equal(refusal?.step, "attest.refuse");
      assert.equal(refusal?.reason, "ek-mismatch");
    });

    it("after `metalman tpm repin` (board swap) the new TPM attests and is pinned; the old one is then refused", async () => {
      const out: string[] = [];
      const io = { stdout: (t: string) => out.push(t), stderr: (t: string) => out.push(t) };
      const code = await runTpmCli(["repin", MACHINES.rsa.name, "--state-dir", state, "--wait", "10"], {}, io);
      assert.equal(code, 0, out.join(""));
      assert.equal(app.inventory.get(MACHINES.rsa.name)?.status?.tpm?.ekPublicKey, undefined);
      assert.ok(app.events.history(MACHINES.rsa.name).some((e) => e.step === "attest.repin" && e.result === "ok"));
      const swapped = tpms.find((t) => t.dir.endsWith("tpm-rsa-other"))!;
      const result = await agent(swapped, "rsa", port, MACHINES.rsa.ip);
      assert.equal(result.status, 200, result.text);
      assert.equal(result.token, TOKEN);
      const old = tpms.find((t) => t.dir.endsWith("tpm-rsa"))!;
      assert.equal((await agent(old, "rsa", port, MACHINES.rsa.ip)).status, 403);
    });

    it("the answer is useless without that TPM: a software key cannot activate it; unknown IP 404, empty or corrupt fields 400", async () => {
      // A Machine of its own: m9a-rsa has spent its attempt budget (5 at once) above.
      const tpm = await newTpm("spare");
      const ek = await tpm.createEk("rsa");
      const srk = await tpm.createSrk();
      const payload = JSON.stringify({ ekPub: ek.pub.toString("base64"), srkPub: srk.pub.toString("base64") });
      await boot(port, MACHINES.open.ip);
      const res = await httpFrom(MACHINES.open.ip, port, "POST", "/attest", payload);
      assert.equal(res.status, 200, res.text);
      const json = JSON.parse(res.text) as Record<string, string>;
      const software = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
      assert.throws(() =>
        activateCredentialInSoftware({
          ekPublic: decodeTpm2bPublic(ek.pub),
          ekPrivate: software,
          objectName: objectName(decodeTpm2bPublic(srk.pub)),
          credentialBlob: Buffer.from(json.credentialBlob!, "base64"),
          encryptedSecret: Buffer.from(json.encryptedSecret!, "base64"),
        }),
      );
      assert.equal((await httpFrom("127.0.0.99", port, "POST", "/attest", payload)).status, 404);
      assert.equal((await httpFrom(MACHINES.open.ip, port, "POST", "/attest", '{"ekPub":"","srkPub":""}')).status, 400);
      const corrupt = JSON.stringify({
        ekPub: ek.pub.toString("base64"),
        srkPub: srk.pub.subarray(0, 50).toString("base64"),
      });
      const bad = await httpFrom(MACHINES.open.ip, port, "POST", "/attest", corrupt);
      assert.deepEqual([bad.status, bad.text], [400, "invalid SRK public key\n"]);
    });

    it("ECC EK (P-256, ECDH + KDFe): the agent recovers K and opens the token", async () => {
      const tpm = await newTpm("ecc");
      await boot(port, MACHINES.ecc.ip);
      const result = await agent(tpm, "ecc", port, MACHINES.ecc.ip);
      assert.equal(result.status, 200, result.text);
      assert.equal(result.token, TOKEN);
      const issue = app.events.history(MACHINES.ecc.name).find((e) => e.step === "attest.issue");
      assert.equal(issue?.detail?.ekAlgorithm, "ecc-p-256");
    });

    it("the swtpm EK certificate (swtpm_setup --create-ek-cert, own CA) verifies; a Machine that requires one attests", async () => {
      assert.ok(ekCert, "swtpm_setup wrote an RSA EK certificate to NV 0x01C00002");
      await boot(port, MACHINES.cert.ip);
      const result = await agent(certTpm, "rsa", port, MACHINES.cert.ip, { ekCert });
      assert.equal(result.status, 200, result.text);
      assert.equal(result.token, TOKEN);
      const condition = app.inventory
        .get(MACHINES.cert.name)
        ?.status?.conditions?.find((c) => c.type === "EKCertificate");
      assert.equal(condition?.status, "True");
      assert.equal(condition?.reason, "Verified");
      const event = app.events.history(MACHINES.cert.name).find((e) => e.step === "attest.ek-cert");
      assert.equal(event?.result, "ok");
    });

    it("a Machine that requires an EK certificate is refused without one", async () => {
      const result = await agent(certTpm, "rsa", port, MACHINES.cert.ip);
      assert.equal(result.status, 403);
      assert.equal(result.text, "EK certificate required\n");
    });

    it("a Machine that has not booted from us is not expected to attest: 403", async () => {
      const tpm = await newTpm("idle");
      const result = await agent(tpm, "rsa", port, MACHINES.idle.ip);
      assert.equal(result.status, 403);
      assert.match(result.text, /^attestation not expected/);
      assert.equal(app.inventory.get(MACHINES.idle.name)?.status?.tpm?.ekPublicKey, undefined, "nothing pinned");
    });
  });

  describe("the same appliance state after a restart", () => {
    let app: RunningAppliance;
    let port: number;
    before(async () => {
      ({ app, port } = await appliance(scratch, "own-ca", [`--tpm-ca-bundle=${ca.issuerCert}`]));
    });
    after(async () => app?.close({ graceMs: 0 }));

    it("keeps the pin (status is durable): the swapped-in TPM attests, the original one is still refused", async () => {
      await boot(port, MACHINES.rsa.ip);
      const pinnedNow = tpms.find((t) => t.dir.endsWith("tpm-rsa-other"))!;
      assert.equal((await agent(pinnedNow, "rsa", port, MACHINES.rsa.ip)).status, 200);
      const original = tpms.find((t) => t.dir.endsWith("tpm-rsa"))!;
      assert.equal((await agent(original, "rsa", port, MACHINES.rsa.ip)).status, 403);
    });
  });

  describe("appliance trusting another CA (same name, other key)", () => {
    let app: RunningAppliance;
    let port: number;
    before(async () => {
      const dir = path.join(scratch, "ca-other");
      await mkdir(dir, { recursive: true });
      await run("openssl", [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        path.join(dir, "key.pem"),
        "-out",
        path.join(dir, "ca.pem"),
        "-subj",
        "/CN=swtpm-localca",
        "-days",
        "2",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
      ]);
      ({ app, port } = await appliance(scratch, "other-ca", [`--tpm-ca-bundle=${path.join(dir, "ca.pem")}`]));
    });
    after(async () => app?.close({ graceMs: 0 }));

    it("the same EK certificate fails: 403 and an attest.ek-cert error naming the untrusted issuer", async () => {
      await boot(port, MACHINES.open.ip);
      const result = await agent(certTpm, "rsa", port, MACHINES.open.ip, { ekCert });
      assert.equal(result.status, 403);
      assert.equal(result.text, "EK certificate not accepted\n");
      const event = app.events.history(MACHINES.open.name).find((e) => e.step === "attest.ek-cert");
      assert.equal(event?.result, "error");
      assert.equal(event?.reason, "untrusted-issuer");
      const condition = app.inventory
        .get(MACHINES.open.name)
        ?.status?.conditions?.find((c) => c.type === "EKCertificate");
      assert.equal(condition?.status, "False");
      assert.equal(condition?.reason, "UntrustedIssuer");
      assert.equal(app.inventory.get(MACHINES.open.name)?.status?.tpm?.ekPublicKey, undefined, "nothing pinned");
    });
  });

  describe("appliance with no TPM CA bundle", () => {
    let app: RunningAppliance;
    let port: number;
    before(async () => {
      ({ app, port } = await appliance(scratch, "no-ca", []));
    });
    after(async () => app?.close({ graceMs: 0 }));

    it("a presented certificate is recorded as unverified and the Machine still attests (it does not require one)", async () => {
      await boot(port, MACHINES.open.ip);
      const result = await agent(certTpm, "rsa", port, MACHINES.open.ip, { ekCert });
      assert.equal(result.status, 200, result.text);
      const condition = app.inventory
        .get(MACHINES.open.name)
        ?.status?.conditions?.find((c) => c.type === "EKCertificate");
      assert.equal(condition?.status, "Unknown");
      assert.equal(condition?.reason, "NoTrustBundle");
    });

    it("a Machine that requires a verified certificate is refused", async () => {
      await boot(port, MACHINES.cert.ip);
      const result = await agent(certTpm, "rsa", port, MACHINES.cert.ip, { ekCert });
      assert.equal(result.status, 403);
      assert.equal(result.text, "EK certificate required\n");
    });
  });
});
