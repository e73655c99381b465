import assert from "node:assert/strict";
import { createServer as createNetServer, type Server, type Socket } from "node:net";
import { before, describe, it } from "node:test";
import { BmcError } from "../../../../server/bmc/driver.js";
import { RedfishDriver, type RedfishDriverOptions } from "../../../../server/bmc/redfish/driver.js";
import { type Cert, catfish, FakeBmc, MemoryPins, makeCert } from "./fake-bmc.js";

let certA: Cert;
let certB: Cert;
before(() => {
  certA = makeCert();
  certB = makeCert();
});

const fast = { retries: 2, retryBaseMs: 5, retryMaxMs: 20 };

function driver(bmc: { url: string }, pins: MemoryPins, more: Partial<RedfishDriverOptions> = {}) {
  return new RedfishDriver({
    url: bmc.url,
    username: "",
    password: "",
    pins,
    settleMs: 1,
    transport: fast,
    ...more,
  });
}

async function withBmc(t: { after(fn: () => Promise<void>): void }, cert = certA) {
  const bmc = await new FakeBmc(cert).start();
  t.after(() => bmc.close());
  return catfish(bmc);
}

async function rejects(promise: Promise<unknown>, code: string, message?: RegExp): Promise<BmcError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof BmcError, `a BmcError, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail("expected a rejection");
}

describe("Redfish transport: TLS trust on first use", () => {
  it("pins the leaf certificate's SHA-256 (spec §2.2 format) at first contact, before any credential is sent", async (t) => {
    const bmc = await withBmc(t);
    bmc.route("POST /redfish/v1/SessionService/Sessions", {
      status: 201,
      headers: { "x-auth-token": "tok", location: "/redfish/v1/SessionService/Sessions/9" },
    });
    const pins = new MemoryPins();
    const d = driver(bmc, pins, { username: "admin", password: "pw" });
    t.after(() => d.close());
    assert.equal(await d.powerState(), "On");
    assert.deepEqual(pins.captures, [certA.opensslFingerprint.toLowerCase()]);
    assert.match(pins.pin!, /^[0-9a-f]{2}(:[0-9a-f]{2}){31}$/);
    assert.equal(pins.pin!.length, 95);
    const first = bmc.seen[0]!;
    assert.equal(first.path, "/redfish/v1/");
    assert.equal(first.headers.authorization, undefined);
    assert.equal(first.headers["x-auth-token"], undefined);
    // The login came only after the pin was taken.
    assert.ok(bmc.seen.findIndex((s) => s.method === "POST") > 0);
  });

  it("refuses every call when the certificate does not match the pin, and reports both fingerprints", async (t) => {
    const bmc = await withBmc(t);
    const pins = new MemoryPins(certB.opensslFingerprint.toLowerCase());
    const d = driver(bmc, pins, { username: "admin", password: "secret-pw" });
    t.after(() => d.close());
    const err = await rejects(d.powerState(), "tls-pin-mismatch");
    assert.ok(err.message.includes(certA.opensslFingerprint.toLowerCase()));
    assert.ok(err.message.includes(certB.opensslFingerprint.toLowerCase()));
    await rejects(d.power("ForceOff"), "tls-pin-mismatch");
    await rejects(d.setBootOverride({ target: "Pxe", enabled: "Once" }), "tls-pin-mismatch");
    assert.equal(bmc.seen.length, 0, "no request reached the BMC");
    assert.deepEqual(pins.mismatches[0], [
      certA.opensslFingerprint.toLowerCase(),
      certB.opensslFingerprint.toLowerCase(),
    ]);
  });

  it("re-reads the pin on every connection: a certificate swapped behind a pinned BMC is refused", async (t) => {
    const bmc = await withBmc(t);
    const pins = new MemoryPins();
    const d = driver(bmc, pins);
    t.after(() => d.close());
    assert.equal(await d.powerState(), "On");
    // The BMC now presents another certificate (as a man in the middle would).
    bmc.useCert(certB);
    bmc.seen.length = 0;
    // An operator re-pin to certB is honoured at once (upstream's cached client ignored pin changes)...
    pins.pin = certB.opensslFingerprint.toLowerCase();
    assert.equal(await d.powerState(), "On");
    // ...and a pin changed back makes the next call fail, even though a keep-alive connection exists.
    pins.pin = certA.opensslFingerprint.toLowerCase();
    await rejects(d.powerState(), "tls-pin-mismatch");
  });

  it("verifies the chain and host name against a CA bundle instead of pinning", async (t) => {
    const bmc = await withBmc(t);
    const pins = new MemoryPins();
    const good = driver(bmc, pins, { ca: certA.cert });
    t.after(() => good.close());
    assert.equal(await good.powerState(), "On");
    assert.deepEqual(pins.captures, [], "nothing pinned when a CA verifies");
    const wrong = driver(bmc, pins, { ca: certB.cert, transport: { ...fast, retries: 0 } });
    t.after(() => wrong.close());
    await rejects(wrong.powerState(), "unreachable", /TLS verification of the BMC failed/);
  });

  it("refuses plain http:// and URLs with credentials", () => {
    assert.throws(() => driver({ url: "http://127.0.0.1:1" }, new MemoryPins()), /must be https/);
    assert.throws(() => driver({ url: "https://u:p@127.0.0.1:1" }, new MemoryPins()), /must not carry credentials/);
  });
});

describe("Redfish transport: bounded failures", () => {
  it("a BMC that never answers fails within its timeouts, and other BMCs are unaffected", async (t) => {
    // Accepts TCP and never speaks TLS.
    const sockets = new Set<Socket>();
    const silent: Server = createNetServer((s) => {
      sockets.add(s);
      s.on("error", () => undefined);
    });
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    t.after(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    });
    const port = (silent.address() as { port: number }).port;
    const hung = driver({ url: `https://127.0.0.1:${port}` }, new MemoryPins(), {
      transport: { connectTimeoutMs: 300, headersTimeoutMs: 300, requestTimeoutMs: 1000, retries: 1, retryBaseMs: 5 },
    });
    t.after(() => hung.close());
    // An HTTPS BMC that accepts the request and never sends headers.
    const mute = await withBmc(t);
    mute.route("GET /redfish/v1/", () => undefined);
    const muted = driver(mute, new MemoryPins(), {
      transport: { headersTimeoutMs: 300, requestTimeoutMs: 2000, retries: 0 },
    });
    t.after(() => muted.close());
    const healthy = await withBmc(t);
    const ok = driver(healthy, new MemoryPins());
    t.after(() => ok.close());

    const started = Date.now();
    const hungResult = rejects(hung.powerState(), "timeout", /no connection to the BMC within 300 ms/);
    const mutedResult = rejects(muted.powerState(), "timeout", /no response within 300 ms/);
    assert.equal(await ok.powerState(), "On");
    assert.ok(Date.now() - started < 1000, "the healthy BMC answered while the others hung");
    await hungResult;
    await mutedResult;
    assert.ok(Date.now() - started < 3000, `bounded: ${Date.now() - started} ms`);
  });

  it("a 10 MB body is refused with a clear error, without buffering it (with and without Content-Length)", async (t) => {
    const bmc = await withBmc(t);
    const big = Buffer.alloc(10 * 1024 * 1024, 0x20);
    let written = 0;
    bmc.route("GET /redfish/v1/Systems/1", (_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": String(big.length) });
      res.end(big);
      return undefined;
    });
    const pins = new MemoryPins();
    const d = driver(bmc, pins, { transport: { ...fast, maxBodyBytes: 64 * 1024 } });
    t.after(() => d.close());
    const before = process.memoryUsage().rss;
    await rejects(
      d.bootOverride(),
      "bad-response",
      /GET \/redfish\/v1\/Systems\/1: the BMC's response is larger than 65536 bytes; refused/,
    );
    bmc.route("GET /redfish/v1/Systems/1", (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" }); // chunked, no length
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (written < big.length) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        res.end();
      };
      res.on("close", () => undefined);
      pump();
      return undefined;
    });
    await rejects(d.bootOverride(), "bad-response", /larger than 65536 bytes/);
    assert.ok(written < big.length, `the client stopped reading early (${written} of ${big.length} bytes sent)`);
    assert.ok(process.memoryUsage().rss - before < 40 * 1024 * 1024, "memory stays bounded");
  });

  it("garbage JSON is a clear error", async (t) => {
    const bmc = await withBmc(t);
    bmc.route("GET /redfish/v1/Systems/1", { raw: '{"PowerState": "On", <html>' });
    const d = driver(bmc, new MemoryPins());
    t.after(() => d.close());
    await rejects(
      d.powerState(),
      "bad-response",
      /GET \/redfish\/v1\/Systems\/1: the BMC answered 200 with a body that is not JSON/,
    );
    bmc.route("GET /redfish/v1/Systems/1", { body: ["not", "an", "object"] });
    await rejects(d.powerState(), "bad-response", /not a JSON object/);
  });

  it("retries 5xx and 429 with backoff, never 4xx, and never a non-idempotent POST on a plain 500", async (t) => {
    const bmc = await withBmc(t);
    let n = 0;
    bmc.route("GET /redfish/v1/Systems/1", () =>
      ++n <= 2 ? { status: n === 1 ? 503 : 429, headers: { "retry-after": "0" } } : { body: { PowerState: "Off" } },
    );
    const d = driver(bmc, new MemoryPins(), { maxStateReads: 2 });
    t.after(() => d.close());
    assert.equal(await d.powerState(), "Off");
    assert.equal(bmc.requests("GET", "/redfish/v1/Systems/1").length, 4, "503, 429, then two readings");

    bmc.route("GET /redfish/v1/Systems/1", {
      status: 400,
      body: { error: { code: "Base.1.0.GeneralError", message: "no" } },
    });
    bmc.seen.length = 0;
    await rejects(d.powerState(), "bmc-error", /answered 400/);
    assert.equal(bmc.requests("GET", "/redfish/v1/Systems/1").length, 1, "a 400 is not retried");

    bmc.get("/redfish/v1/Systems/1", "dmtf-public-catfish/System-1.json");
    bmc.route("POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset", { status: 500 });
    bmc.seen.length = 0;
    await rejects(d.power("ForceOff"), "bmc-error", /answered 500/);
    assert.equal(bmc.requests("POST").length, 1, "a reset is not repeated after a 500");
  });

  it("retries connection errors, then fails with unreachable", async (t) => {
    const probe = createNetServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const d = driver({ url: `https://127.0.0.1:${port}` }, new MemoryPins());
    t.after(() => d.close());
    const started = Date.now();
    await rejects(d.powerState(), "unreachable", /ECONNREFUSED/);
    assert.ok(Date.now() - started < 2000);
  });

  it("asks for identity encoding, and drops the header for a BMC that answers 406 to it (HPE Gen10 Plus)", async (t) => {
    const bmc = await withBmc(t);
    bmc.route("GET /redfish/v1/Systems/1", (req) =>
      req.headers["accept-encoding"] === "identity"
        ? { status: 406 }
        : { body: { PowerState: "Off", "@odata.id": "/redfish/v1/Systems/1" } },
    );
    const d = driver(bmc, new MemoryPins(), { maxStateReads: 2 });
    t.after(() => d.close());
    assert.equal(bmc.seen.length, 0);
    assert.equal(await d.powerState(), "Off");
    const gets = bmc.requests("GET", "/redfish/v1/Systems/1");
    assert.equal(gets[0]!.headers["accept-encoding"], "identity");
    assert.equal(gets.length, 3, "one 406, then two readings without the header");
  });

  it("sends one request at a time per BMC", async (t) => {
    const bmc = await withBmc(t);
    bmc.route("GET /redfish/v1/Systems/1", async () => {
      await new Promise((r) => setTimeout(r, 20));
      return { body: { PowerState: "On", "@odata.id": "/redfish/v1/Systems/1" } };
    });
    const d = driver(bmc, new MemoryPins(), { maxStateReads: 2 });
    t.after(() => d.close());
    await Promise.all(Array.from({ length: 6 }, () => d.powerState()));
    assert.equal(bmc.maxInFlight, 1);
  });

  it("never follows a link off the BMC's origin", async (t) => {
    const bmc = await withBmc(t);
    bmc.route("GET /redfish/v1/Systems", {
      body: { Members: [{ "@odata.id": "https://attacker.example/redfish/v1/Systems/1" }] },
    });
    const d = driver(bmc, new MemoryPins());
    t.after(() => d.close());
    await rejects(d.powerState(), "bad-response", /points to https:\/\/attacker.example, outside the BMC/);
    bmc.route("GET /redfish/v1/Systems", {
      body: { Members: [{ "@odata.id": "//attacker.example/redfish/v1/Systems/1" }] },
    });
    await rejects(d.powerState(), "bad-response", /outside the BMC/);
  });
});
