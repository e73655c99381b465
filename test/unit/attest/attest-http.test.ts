/**
 * `POST /attest` on the netboot app (Fastify inject, in-memory backend, software keys):
 * status codes and processing order of spec §7.3, identity by source IP (X-Forwarded-For only
 * from a trusted proxy), the 1 MiB body limit, TOFU compared as keys and written last, the
 * attestation window, quarantine, the per-Machine attempt budget, EK-certificate requirement,
 * events for every issue and refusal, and no token in logs or events.
 */
import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { request } from "node:http";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import pino from "pino";
import { Registry } from "prom-client";
import { AttestService } from "../../../server/attest/attest-service.js";
import type { AttestSetup } from "../../../server/attest/attest-setup.js";
import { openToken } from "../../../server/attest/seal.js";
import { KubeadmSecretTokenSource, type TokenSource } from "../../../server/attest/token-source.js";
import { activateCredentialInSoftware, decodeTpm2bPublic, objectName } from "../../../server/attest/tpm/index.js";
import { tpmCredentials } from "../../../server/attest/tpm-adapter.js";
import { BootEventBus } from "../../../server/events/boot-events.js";
import { buildNetbootApp } from "../../../server/http/app.js";
import { DirImageStore } from "../../../server/images/dir-image-store.js";
import type { Machine } from "../../../server/inventory/types.js";
import { NetbootResolver } from "../../../server/netboot/resolver.js";
import { FakeBackend } from "../http/fake-backend.js";
import { makeMachine } from "../http/support.js";
import { rsaKey } from "./keys.js";
import { MemorySecrets } from "./support.js";

const IP = "10.0.0.11";
const TOKEN = "abcdef.0123456789abcdef";

function tokenSecrets(): MemorySecrets {
  const secrets = new MemorySecrets();
  secrets.set("kube-system", "bootstrap-token-abcdef", { "token-id": "abcdef", "token-secret": "0123456789abcdef" });
  return secrets;
}

function harness(
  options: {
    machine?: Partial<Machine>;
    attest?: Partial<AttestSetup>;
    trustedProxies?: string[];
    boot?: boolean;
  } = {},
) {
  const machine: Machine = { ...makeMachine("node-a", IP, "dir:/nonexistent"), ...options.machine };
  const backend = new FakeBackend([machine]);
  const events = new BootEventBus();
  const lines: string[] = [];
  const log = pino(
    { level: "info" },
    new Writable({
      write: (chunk, _encoding, done) => {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  const attest: AttestSetup = {
    tpm: tpmCredentials,
    tokens: new KubeadmSecretTokenSource({ secrets: tokenSecrets(), defaultSecretName: "bootstrap-token-abcdef" }),
    ...options.attest,
  };
  const registry = new Registry();
  const app = buildNetbootApp({
    log,
    backend,
    events,
    metrics: registry,
    resolver: new NetbootResolver({
      images: new DirImageStore({ baseDirOf: () => "/", imageRoots: ["/nonexistent"], log: pino({ level: "silent" }) }),
      render: () => "",
    }),
    trustedProxies: options.trustedProxies,
    attest,
  });
  if (options.boot !== false) events.emit({ step: "dhcp.ack", result: "ok", machine: "node-a", ip: IP });
  return { app, backend, events, lines, registry };
}

function body(ek = rsaKey("ek"), srk = rsaKey("srk"), extra: Record<string, unknown> = {}) {
  return {
    ek,
    srk,
    payload: JSON.stringify({ ekPub: ek.tpm2b.toString("base64"), srkPub: srk.tpm2b.toString("base64"), ...extra }),
  };
}

const post = (
  h: ReturnType<typeof harness>,
  payload: string | Buffer,
  remoteAddress = IP,
  headers: Record<string, string> = {},
) =>
  h.app.inject({
    method: "POST",
    url: "/attest",
    payload,
    remoteAddress,
    headers: { "content-type": "application/json", ...headers },
  });

const lastEvent = (h: ReturnType<typeof harness>) => h.events.recent().at(-1);

describe("POST /attest: the happy path with a software EK", () => {
  it("wraps K for the EK bound to Name(SRK), seals the token under K, pins the EK, and reports it", async () => {
    const h = harness();
    const { ek, srk, payload } = body();
    const res = await post(h, payload);
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers["content-type"], "application/json");
    const json = JSON.parse(res.body) as Record<string, string>;
    assert.deepEqual(Object.keys(json), ["credentialBlob", "encryptedSecret", "encryptedToken", "gcmNonce"]);
    const { credential } = activateCredentialInSoftware({
      ekPublic: decodeTpm2bPublic(ek.tpm2b),
      ekPrivate: ek.privateKey,
      objectName: objectName(decodeTpm2bPublic(srk.tpm2b)),
      credentialBlob: Buffer.from(json.credentialBlob!, "base64"),
      encryptedSecret: Buffer.from(json.encryptedSecret!, "base64"),
    });
    assert.equal(
      openToken(credential, Buffer.from(json.encryptedToken!, "base64"), Buffer.from(json.gcmNonce!, "base64")),
      TOKEN,
    );
    const pin = h.backend.get("node-a")?.status?.tpm?.ekPublicKey ?? "";
    assert.ok(createPublicKey(pin).equals(ek.publicKey));
    const steps = h.events.history("node-a").map((e) => `${e.step} ${e.result}`);
    assert.deepEqual(steps.slice(-2), ["attest.ek-pin ok", "attest.issue ok"]);
    // Never the token: logs carry upstream's tokenID (hash prefix), events too.
    assert.ok(!h.lines.join("").includes("0123456789abcdef"));
    assert.ok(!JSON.stringify(h.events.recent()).includes("0123456789abcdef"));
    assert.ok(h.lines.some((l) => l.includes('"tokenID"')));
  });

  it("sends clusterCA when configured", async () => {
    const h = harness({ attest: { clusterCa: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n" } });
    const res = await post(h, body().payload);
    assert.equal(res.statusCode, 200);
    assert.match((JSON.parse(res.body) as { clusterCA: string }).clusterCA, /BEGIN CERTIFICATE/);
  });

  it("compares the pin as a key, not as PEM text: a re-wrapped PEM of the same key still matches", async () => {
    const h = harness();
    const { ek, payload } = body();
    const der = ek.publicKey.export({ type: "spki", format: "der" }).toString("base64");
    const rewrapped = `-----BEGIN PUBLIC KEY-----\r\n${der.match(/.{1,76}/g)!.join("\r\n")}\r\n-----END PUBLIC KEY-----`;
    await h.backend.updateStatus("node-a", (m) => ({ ...m.status, tpm: { ekPublicKey: rewrapped } }));
    assert.equal((await post(h, payload)).statusCode, 200);
    const other = await post(h, body().payload);
    assert.equal(other.statusCode, 403);
    assert.equal(other.body, "EK public key does not match stored key\n");
    assert.equal(lastEvent(h)?.reason, "ek-mismatch");
    assert.equal(h.backend.get("node-a")?.status?.tpm?.ekPublicKey, rewrapped, "the pin is untouched");
  });
});

describe("POST /attest: refusals in upstream's order and codes", () => {
  it("answers 400 for bad bodies and missing fields, 404 for an unknown IP, each with an event", async () => {
    const h = harness();
    const cases: Array<[string, string, number, string]> = [
      ["not json", IP, 400, "invalid request body\n"],
      ["[]", IP, 400, "invalid request body\n"],
      ['{"ekPub": 5, "srkPub": "AA=="}', IP, 400, "invalid request body\n"],
      ['{"ekPub": "not base64!", "srkPub": "AA=="}', IP, 400, "invalid request body\n"],
      ['{"ekPub": "", "srkPub": null}', IP, 400, "missing or invalid fields\n"],
      ["null", IP, 400, "missing or invalid fields\n"],
      [body().payload, "10.0.0.99", 404, "node not found\n"],
    ];
    for (const [payload, ip, status, text] of cases) {
      const res = await post(h, payload, ip);
      assert.equal(res.statusCode, status, payload);
      assert.equal(res.body, text, payload);
      assert.equal(res.headers["content-type"], "text/plain; charset=utf-8");
    }
    const counted = await h.registry.getSingleMetricAsString("metalman_http_malformed_total");
    assert.match(counted, /route="\/attest",reason="invalid-body"} 4/);
    const stranger = h.events.recent().find((e) => e.reason === "unknown-client");
    assert.equal(stranger?.machine, undefined, "an unknown IP is a stranger's event");
  });

  it("refuses a bad EK and a corrupt SRK with 400, and pins nothing (upstream pinned the EK before checking the SRK)", async () => {
    const h = harness();
    const ek = rsaKey("ek");
    const bad = JSON.stringify({
      ekPub: Buffer.from("0001", "hex").toString("base64"),
      srkPub: rsaKey("srk").tpm2b.toString("base64"),
    });
    assert.equal((await post(h, bad)).body, "invalid EK public key\n");
    const corrupt = rsaKey("srk").tpm2b.subarray(0, 100);
    const res = await post(
      h,
      JSON.stringify({ ekPub: ek.tpm2b.toString("base64"), srkPub: corrupt.toString("base64") }),
    );
    assert.equal(res.statusCode, 400);
    assert.equal(res.body, "invalid SRK public key\n");
    assert.equal(h.backend.get("node-a")?.status?.tpm, undefined);
    assert.equal(lastEvent(h)?.reason, "invalid-srk");
  });

  it("checks the 1 MiB limit before parsing: a 1 MiB body is read, one byte more is refused with 400", async () => {
    const h = harness();
    const { payload } = body();
    const exact = payload + " ".repeat(1024 * 1024 - Buffer.byteLength(payload));
    assert.equal((await post(h, exact)).statusCode, 200);
    const over = await post(h, `${exact} `);
    assert.equal(over.statusCode, 400);
    assert.equal(over.body, "invalid request body\n");
    assert.equal(lastEvent(h)?.reason, "body-too-large");
  });

  it("a chunked body (no Content-Length) is read only up to the limit, then refused with 400 and the connection closed", async () => {
    const h = harness();
    await h.app.listen({ host: "127.0.0.1", port: 0 });
    try {
      const port = (h.app.server.address() as { port: number }).port;
      const answer = await new Promise<{ status: number; text: string; connection?: string }>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port, method: "POST", path: "/attest", agent: false }, (res) => {
          let text = "";
          res.on("data", (chunk: Buffer) => {
            text += chunk.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text, connection: res.headers.connection }));
        });
        req.on("error", reject);
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        // 2 MiB in 64 KiB chunks; the server stops reading at 1 MiB.
        let sent = 0;
        const pump = () => {
          while (sent < 32) {
            sent++;
            if (!req.write(chunk)) return void req.once("drain", pump);
          }
          req.end();
        };
        pump();
      }).catch((error: Error) => ({ status: -1, text: error.message, connection: undefined }));
      // The server answers as soon as the limit is crossed; the client may see a reset while still sending.
      if (answer.status !== -1) {
        assert.equal(answer.status, 400);
        assert.equal(answer.text, "invalid request body\n");
        assert.equal(answer.connection, "close");
      }
      assert.equal(lastEvent(h)?.reason, "body-too-large");
    } finally {
      await h.app.close();
    }
  });

  it("identifies by the socket's source IP: X-Forwarded-For counts only from a configured proxy", async () => {
    const spoof = harness();
    const forged = await post(spoof, body().payload, "10.9.9.9", { "x-forwarded-for": IP });
    assert.equal(forged.statusCode, 404);
    const proxied = harness({ trustedProxies: ["10.9.9.9"] });
    assert.equal((await post(proxied, body().payload, "10.9.9.9", { "x-forwarded-for": IP })).statusCode, 200);
  });
});

describe("POST /attest: beyond upstream", () => {
  it("gives a token only within the window after a boot or repave", async () => {
    const h = harness({ boot: false });
    const res = await post(h, body().payload);
    assert.equal(res.statusCode, 403);
    assert.match(res.body, /^attestation not expected/);
    assert.equal(lastEvent(h)?.reason, "not-expected");
    assert.equal(
      h.backend.get("node-a")?.status?.conditions?.find((c) => c.type === "Attested")?.reason,
      "NotExpected",
    );
    // An old boot does not count; a fresh one (here: the Repaved condition, which survives restarts) does.
    h.events.emit({
      step: "dhcp.ack",
      result: "ok",
      machine: "node-a",
      time: new Date(Date.now() - 2 * 3_600_000).toISOString(),
    });
    assert.equal((await post(h, body().payload)).statusCode, 403);
    await h.backend.updateStatus("node-a", (m) => ({
      ...m.status,
      conditions: [
        {
          type: "Repaved",
          status: "True",
          reason: "Succeeded",
          message: "",
          lastTransitionTime: new Date().toISOString(),
        },
      ],
    }));
    assert.equal((await post(h, body().payload)).statusCode, 200);
  });

  it("refuses a quarantined Machine (its state cannot be trusted) with 403 and an event", async () => {
    const h = harness();
    h.backend.quarantineMachine("node-a", {
      machine: "node-a",
      reason: "CorruptStateFile",
      file: "/x",
      message: "corrupt",
      since: "now",
    });
    const res = await post(h, body().payload);
    assert.equal(res.statusCode, 403);
    assert.match(res.body, /quarantined/);
    assert.equal(lastEvent(h)?.reason, "quarantined");
  });

  it("limits attempts per Machine: 429 with Retry-After after the burst, one refusal event per interval", async () => {
    const h = harness({ attest: { attempts: { burst: 3, refillMs: 60_000 } } });
    const same = body().payload;
    for (let i = 0; i < 3; i++) assert.equal((await post(h, same)).statusCode, 200);
    const before = h.events.history("node-a").length;
    for (let i = 0; i < 5; i++) {
      const res = await post(h, same);
      assert.equal(res.statusCode, 429);
      assert.ok(Number(res.headers["retry-after"]) > 0);
    }
    const limited = h.events.history("node-a").slice(before);
    assert.equal(limited.length, 1);
    assert.equal(limited[0]?.reason, "rate-limited");
  });

  it("a Machine annotated require-ek-cert is refused without a certificate", async () => {
    const h = harness({
      machine: { metadata: { name: "node-a", annotations: { "metalman.unbounded-cloud.io/require-ek-cert": "true" } } },
    });
    const res = await post(h, body().payload);
    assert.equal(res.statusCode, 403);
    assert.equal(res.body, "EK certificate required\n");
    assert.equal(h.backend.get("node-a")?.status?.tpm, undefined);
  });

  it("refuses a presented certificate that does not parse (evidence present and wrong), even without a bundle", async () => {
    const h = harness();
    const res = await post(
      h,
      body(undefined, undefined, { ekCert: Buffer.from("not a certificate").toString("base64") }).payload,
    );
    assert.equal(res.statusCode, 403);
    assert.equal(res.body, "EK certificate not accepted\n");
  });

  it("without a token source answers 503; a token source failure is 500 with the reason in the event", async () => {
    const none = harness({ attest: { tokens: undefined } });
    assert.equal((await post(none, body().payload)).statusCode, 503);
    const failing: TokenSource = { issue: async () => Promise.reject(new Error("apiserver down")) };
    const h = harness({ attest: { tokens: failing } });
    const res = await post(h, body().payload);
    assert.equal(res.statusCode, 500);
    assert.equal(res.body, "internal error\n");
    assert.equal(lastEvent(h)?.reason, "token-source");
    assert.equal(h.backend.get("node-a")?.status?.tpm, undefined, "no pin without an issued token");
  });

  it("two TPMs racing for an unpinned Machine: the pin is re-checked inside the status write", async () => {
    const h = harness();
    const first = body();
    const svc = new AttestService({
      backend: h.backend,
      events: h.events,
      log: pino({ level: "silent" }),
      tpm: tpmCredentials,
      tokens: {
        issue: async () => {
          // Another TPM pins the Machine while this request waits for its token.
          await h.backend.updateStatus("node-a", (m) => ({
            ...m.status,
            tpm: { ekPublicKey: rsaKey("ek").publicKey.export({ type: "spki", format: "pem" }).toString() },
          }));
          return { token: TOKEN, source: "test" };
        },
      },
    });
    const answer = await svc.attest({ ip: IP, body: Buffer.from(first.payload), tooLarge: false });
    assert.equal(answer.status, 403);
  });
});
