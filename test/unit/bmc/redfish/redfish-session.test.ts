import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { BmcError } from "../../../../server/bmc/driver.js";
import { RedfishDriver, type RedfishDriverOptions } from "../../../../server/bmc/redfish/driver.js";
import { type Cert, catfish, FakeBmc, fixture, MemoryPins, makeCert, type Seen } from "./fake-bmc.js";

let cert: Cert;
before(() => {
  cert = makeCert();
});

const PASSWORD = "s3cret-Passw0rd";
const basic = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString("base64")}`;

async function setup(t: { after(fn: () => Promise<void>): void }, more: Partial<RedfishDriverOptions> = {}) {
  const bmc = catfish(await new FakeBmc(cert).start());
  t.after(() => bmc.close());
  const d = new RedfishDriver({
    url: bmc.url,
    username: "admin",
    password: PASSWORD,
    pins: new MemoryPins(),
    settleMs: 1,
    maxStateReads: 2,
    transport: { retries: 0 },
    ...more,
  });
  t.after(() => d.close());
  return { bmc, d };
}

/** Authenticated GETs of the System only (the root is fetched without credentials). */
const systemGets = (bmc: FakeBmc): Seen[] => bmc.requests("GET", "/redfish/v1/Systems/1");

function sessionRoute(bmc: FakeBmc, tokens: string[], headers: Record<string, string> = {}) {
  let i = 0;
  bmc.route("POST /redfish/v1/SessionService/Sessions", (req) => {
    assert.deepEqual(req.body, { UserName: "admin", Password: PASSWORD });
    const token = tokens[Math.min(i, tokens.length - 1)]!;
    i++;
    return {
      status: 201,
      headers: { "x-auth-token": token, location: `/redfish/v1/SessionService/Sessions/${token}`, ...headers },
      body: fixture("generic-sushy/session.json"),
    };
  });
}

describe("Redfish sessions", () => {
  it("creates one session, reuses its token and deletes it on close", async (t) => {
    const { bmc, d } = await setup(t);
    sessionRoute(bmc, ["tok-1"]);
    bmc.route("DELETE /redfish/v1/SessionService/Sessions/tok-1", { status: 204 });
    await d.powerState();
    await d.bootOverride();
    assert.equal(bmc.requests("POST", "/redfish/v1/SessionService/Sessions").length, 1);
    for (const s of [...systemGets(bmc), ...bmc.requests("GET", "/redfish/v1/Systems")]) {
      assert.equal(s.headers["x-auth-token"], "tok-1");
      assert.equal(s.headers.authorization, undefined);
    }
    await d.close();
    const del = bmc.requests("DELETE");
    assert.equal(del.length, 1);
    assert.equal(del[0]!.headers["x-auth-token"], "tok-1");
  });

  it("logs in again once on 401 (expired token, text/html body) and replays the request", async (t) => {
    const { bmc, d } = await setup(t);
    sessionRoute(bmc, ["old", "new"]);
    bmc.route("GET /redfish/v1/Systems/1", (req) =>
      req.headers["x-auth-token"] === "new"
        ? { body: fixture("dmtf-public-catfish/System-1.json") }
        : { status: 401, headers: { "content-type": "text/html" }, raw: "<html><body>Session expi" },
    );
    bmc.route("GET /redfish/v1/Systems", (req) =>
      req.headers["x-auth-token"] ? { body: fixture("dmtf-public-catfish/Systems.json") } : { status: 401 },
    );
    assert.equal(await d.powerState(), "On");
    assert.equal(bmc.requests("POST").length, 2);
  });

  it("takes the session URI from the body when there is no Location (sushy no-location headers)", async (t) => {
    const { bmc, d } = await setup(t);
    bmc.route("POST /redfish/v1/SessionService/Sessions", {
      status: 201,
      headers: { "x-auth-token": "tok" },
      body: fixture("generic-sushy/session.json"),
    });
    await d.bootOverride();
    await d.close();
    assert.equal(bmc.requests("DELETE")[0]?.path, "/redfish/v1/SessionService/Sessions/1234567890ABCDEF");
  });

  it("logs in where the root's Links.Sessions says (Dell: /redfish/v1/Sessions)", async (t) => {
    const { bmc, d } = await setup(t, { deviceID: "System.Embedded.1" });
    bmc
      .get("/redfish/v1/", "dell-idrac/ServiceRoot.json")
      .get("/redfish/v1/Systems", "dell-idrac/bmclib-Systems.json")
      .get("/redfish/v1/Systems/System.Embedded.1", "dell-idrac/System.Embedded.1.json")
      .route("POST /redfish/v1/Sessions", {
        status: 201,
        headers: { "x-auth-token": "dell", location: "/redfish/v1/Sessions/1" },
      });
    assert.equal((await d.bootOverride()).mode, "UEFI");
    assert.equal(bmc.requests("POST", "/redfish/v1/Sessions").length, 1);
    assert.equal(bmc.requests("POST", "/redfish/v1/SessionService/Sessions").length, 0);
  });

  it("falls back to Basic when the BMC's session table is full (iDRAC RAC0218), and retries the call", async (t) => {
    const { bmc, d } = await setup(t);
    bmc.route("POST /redfish/v1/SessionService/Sessions", {
      status: 503,
      body: {
        error: {
          code: "Base.1.8.GeneralError",
          message: "A general error has occurred.",
          "@Message.ExtendedInfo": [
            {
              MessageId: "IDRAC.2.8.RAC0218",
              Message: "The maximum number of user sessions is reached.",
              MessageArgs: "[]",
            },
          ],
        },
      },
    });
    assert.equal(await d.powerState(), "On");
    const gets = systemGets(bmc);
    assert.ok(gets.length >= 2);
    for (const g of gets) assert.equal(g.headers.authorization, basic);
    // Basic for a while: no login storm against a full table.
    await d.powerState();
    assert.equal(bmc.requests("POST").length, 1);
  });

  it("sends no credentials at all with an empty username (upstream, sushy-emulator)", async (t) => {
    const { bmc, d } = await setup(t, { username: "", password: "" });
    await d.powerState();
    assert.equal(bmc.requests("POST").length, 0);
    for (const s of bmc.seen) {
      assert.equal(s.headers.authorization, undefined);
      assert.equal(s.headers["x-auth-token"], undefined);
    }
  });

  it("reports refused credentials as auth, without the password", async (t) => {
    const { bmc, d } = await setup(t);
    bmc.route("POST /redfish/v1/SessionService/Sessions", {
      status: 401,
      body: fixture("generic-sushy/error-no-valid-session.json"),
    });
    try {
      await d.powerState();
      assert.fail("expected a rejection");
    } catch (err) {
      assert.ok(err instanceof BmcError);
      assert.equal(err.code, "auth");
      assert.ok(!err.message.includes(PASSWORD) && !JSON.stringify(err).includes(PASSWORD));
    }
  });
});
