/**
 * Issue 6 §9: the BMC emulator is a Redfish service a real, independent client accepts:
 * DMTF's redfishtool reads the power state (Basic and session auth), resets, and sets the
 * boot override (with the ETag it reads, as it does on iLO/XCC); a one-time PXE override is
 * consumed by the next start.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Agent, request } from "undici";
import { selfSignedCertificate } from "../../../../server/bmc/emulator/certificate.js";
import { MemoryPower } from "../../../../server/bmc/emulator/power.js";
import { EmulatedBmc, type EmulatedBmcOptions } from "../../../../server/bmc/emulator/redfish-service.js";
import { json, redfishtool, requireTool } from "./tools.js";

async function start(t: { after(fn: () => Promise<void>): void }, quirks: EmulatedBmcOptions["quirks"] = {}) {
  const tls = await selfSignedCertificate();
  const power = new MemoryPower("On");
  const bmc = new EmulatedBmc({ name: "node-01", username: "admin", password: "pw-emulated", power, quirks });
  const port = await bmc.listen(tls, "127.0.0.1", 0);
  t.after(() => bmc.close());
  return { bmc, power, rhost: `127.0.0.1:${port}`, url: `https://127.0.0.1:${port}`, tls };
}

describe("BMC emulator with redfishtool", () => {
  it("power state, reset and a one-time PXE boot override, with Basic and with sessions", async (t) => {
    if (!requireTool(t, "redfishtool")) return;
    const { bmc, power, rhost } = await start(t);
    assert.deepEqual(json(await redfishtool(rhost, ["Systems", "-I", "1", "get", "-P", "PowerState"])), {
      PowerState: "On",
    });
    assert.deepEqual(
      json(await redfishtool(rhost, ["Systems", "-I", "1", "get", "-P", "PowerState"], { auth: "Session" })),
      {
        PowerState: "On",
      },
    );
    assert.ok(
      bmc.requests.some(
        (r) => r.method === "POST" && r.path === "/redfish/v1/SessionService/Sessions" && r.status === 201,
      ),
    );
    assert.ok(bmc.requests.some((r) => r.auth === "session" && r.path === "/redfish/v1/Systems/1"));

    assert.equal((await redfishtool(rhost, ["Systems", "-I", "1", "reset", "ForceOff"])).code, 0);
    assert.equal(power.state(), "Off");
    assert.deepEqual(json(await redfishtool(rhost, ["Systems", "-I", "1", "get", "-P", "PowerState"])), {
      PowerState: "Off",
    });

    assert.equal((await redfishtool(rhost, ["Systems", "-I", "1", "setBootOverride", "Once", "Pxe"])).code, 0);
    const boot = json(await redfishtool(rhost, ["Systems", "-I", "1", "get", "-P", "Boot"])).Boot as Record<
      string,
      unknown
    >;
    assert.equal(boot.BootSourceOverrideTarget, "Pxe");
    assert.equal(boot.BootSourceOverrideEnabled, "Once");
    assert.equal((await redfishtool(rhost, ["Systems", "-I", "1", "reset", "On"])).code, 0);
    assert.deepEqual(power.boots, ["pxe"]);
    const after = json(await redfishtool(rhost, ["Systems", "-I", "1", "get", "-P", "Boot"])).Boot as Record<
      string,
      unknown
    >;
    assert.equal(after.BootSourceOverrideEnabled, "Disabled", "Once is consumed by the start");
    // The next start boots the disk.
    assert.equal((await redfishtool(rhost, ["Systems", "-I", "1", "reset", "ForceRestart"])).code, 0);
    assert.deepEqual(power.boots, ["pxe", "disk"]);
  });

  it("AllowableValues: redfishtool refuses a ResetType the BMC does not offer; bad credentials get 401", async (t) => {
    if (!requireTool(t, "redfishtool")) return;
    const { bmc, rhost } = await start(t, { resetTypes: ["On", "ForceOff", "ForceRestart"] });
    const nmi = await redfishtool(rhost, ["Systems", "-I", "1", "reset", "PowerCycle"]);
    assert.notEqual(nmi.code, 0);
    assert.match(nmi.stderr, /not supported by the remote service/);
    assert.ok(!bmc.requests.some((r) => r.method === "POST" && r.path.endsWith("ComputerSystem.Reset")));
    const denied = await redfishtool(rhost, ["Systems", "-I", "1", "get"], { password: "wrong" });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /401/);
  });

  it("ETag/If-Match: a BMC that requires If-Match still takes redfishtool's PATCH; 428 without it, 412 on a stale one", async (t) => {
    if (!requireTool(t, "redfishtool")) return;
    const { bmc, url, rhost } = await start(t, { requireIfMatch: true });
    assert.equal((await redfishtool(rhost, ["Systems", "-I", "1", "setBootOverride", "Continuous", "Pxe"])).code, 0);
    assert.deepEqual(bmc.override, { target: "Pxe", enabled: "Continuous", mode: "UEFI" });
    const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
    t.after(() => dispatcher.close());
    const auth = `Basic ${Buffer.from("admin:pw-emulated").toString("base64")}`;
    const body = JSON.stringify({ Boot: { BootSourceOverrideEnabled: "Disabled" } });
    const plain = await request(`${url}/redfish/v1/Systems/1`, {
      method: "PATCH",
      body,
      headers: { authorization: auth, "content-type": "application/json" },
      dispatcher,
    });
    assert.equal(plain.statusCode, 428);
    await plain.body.dump();
    const stale = await request(`${url}/redfish/v1/Systems/1`, {
      method: "PATCH",
      body,
      headers: { authorization: auth, "if-match": 'W/"0000"' },
      dispatcher,
    });
    assert.equal(stale.statusCode, 412);
    const error = (await stale.body.json()) as { error: { "@Message.ExtendedInfo": Array<{ MessageId: string }> } };
    assert.equal(error.error["@Message.ExtendedInfo"][0]?.MessageId, "Base.1.8.PreconditionFailed");
    const get = await request(`${url}/redfish/v1/Systems/1/`, { headers: { authorization: auth }, dispatcher });
    const etag = get.headers.etag as string;
    await get.body.dump();
    const ok = await request(`${url}/redfish/v1/Systems/1`, {
      method: "PATCH",
      body,
      headers: { authorization: auth, "if-match": etag },
      dispatcher,
    });
    assert.equal(ok.statusCode, 204);
    await ok.body.dump();
    assert.equal(bmc.override.enabled, "Disabled");
  });

  it("a BMC without Once: redfishtool's Once is refused with PropertyValueNotInList, Continuous works", async (t) => {
    if (!requireTool(t, "redfishtool")) return;
    const { bmc, rhost } = await start(t, { onceAllowed: false });
    const once = await redfishtool(rhost, ["Systems", "-I", "1", "setBootOverride", "Once", "Pxe"]);
    assert.notEqual(once.code, 0);
    assert.equal(bmc.override.enabled, "Disabled");
    assert.ok(bmc.requests.some((r) => r.method === "PATCH" && r.status === 400));
    assert.equal((await redfishtool(rhost, ["Systems", "-I", "1", "setBootOverride", "Continuous", "Pxe"])).code, 0);
    assert.equal(bmc.override.enabled, "Continuous");
  });
});
