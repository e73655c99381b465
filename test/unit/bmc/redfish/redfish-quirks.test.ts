import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { BmcError } from "../../../../server/bmc/driver.js";
import { RedfishDriver, type RedfishDriverOptions } from "../../../../server/bmc/redfish/driver.js";
import { bmcMessages } from "../../../../server/bmc/redfish/messages.js";
import { cleanAllowable, planReset } from "../../../../server/bmc/redfish/reset.js";
import { sharedDir } from "../../../support/paths.js";
import { type Cert, FakeBmc, fixture, MemoryPins, makeCert } from "./fake-bmc.js";

let cert: Cert;
before(() => {
  cert = makeCert();
});

type Ctx = { after(fn: () => Promise<void>): void };

/** A BMC serving one vendor's root, Systems collection and System from the fixtures. */
async function vendor(
  t: Ctx,
  files: { root: string; systems?: string | object; system: string | object; systemPath: string; systemsPath?: string },
  more: Partial<RedfishDriverOptions> = {},
) {
  const bmc = await new FakeBmc(cert).start();
  t.after(() => bmc.close());
  const body = (f: string | object) => (typeof f === "string" ? fixture(f) : f);
  bmc.route("GET /redfish/v1/", { body: body(files.root) });
  bmc.route(`GET ${files.systemsPath ?? "/redfish/v1/Systems"}`, {
    body: files.systems ? body(files.systems) : { Members: [{ "@odata.id": files.systemPath }] },
  });
  bmc.route(`GET ${files.systemPath}`, { body: body(files.system) });
  const d = new RedfishDriver({
    url: bmc.url,
    username: "",
    password: "",
    pins: new MemoryPins(),
    settleMs: 1,
    maxStateReads: 2,
    powerPollMs: 5,
    powerTimeoutMs: 2000,
    taskPollMs: 10,
    taskTimeoutMs: 2000,
    transport: { retries: 0 },
    ...more,
  });
  t.after(() => d.close());
  return { bmc, d };
}

const dell = {
  root: "dell-idrac/ServiceRoot.json",
  systems: "dell-idrac/bmclib-Systems.json",
  system: "dell-idrac/System.Embedded.1.json",
  systemPath: "/redfish/v1/Systems/System.Embedded.1",
};
const ilo = {
  root: "hpe-ilo5/ServiceRoot.json",
  systemsPath: "/redfish/v1/Systems/",
  system: "hpe-ilo5/System-1.json",
  systemPath: "/redfish/v1/Systems/1/",
};
const lenovo = {
  root: "lenovo-xcc/ServiceRoot.json",
  systems: "lenovo-xcc/Systems.json",
  system: "lenovo-xcc/System-1.json",
  systemPath: "/redfish/v1/Systems/1",
};
const smc = {
  root: "supermicro/ServiceRoot-RF1.14.json",
  systems: "supermicro/Systems-RF1.14.json",
  system: "supermicro/System-1-RF1.14.json",
  systemPath: "/redfish/v1/Systems/1",
};
const bladed = {
  root: "dmtf-public-bladed/ServiceRoot.json",
  systems: "dmtf-public-bladed/Systems.json",
  system: "dmtf-public-bladed/System-529QB9450R6.json",
  systemPath: "/redfish/v1/Systems/529QB9450R6",
};

async function rejection(p: Promise<unknown>): Promise<BmcError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof BmcError, String(err));
    return err;
  }
  assert.fail("expected a rejection");
}

describe("Redfish discovery", () => {
  it("DMTF bladed (four Systems): discovery refuses to guess and lists the members", async (t) => {
    const { d } = await vendor(t, bladed, { deviceID: "" });
    const err = await rejection(d.powerState());
    assert.equal(err.code, "not-supported");
    assert.match(
      err.message,
      /4 Systems \(529QB9450R6, 529QB9451R6, 529QB9452R6, 529QB9453R6\); set spec.pxe.redfish.deviceID/,
    );
  });

  it("a configured deviceID picks its member; an unknown one lists the members", async (t) => {
    const { d, bmc } = await vendor(t, bladed, { deviceID: "529QB9450R6" });
    assert.equal(await d.powerState(), "On");
    assert.ok(bmc.requests("GET", "/redfish/v1/Systems/529QB9450R6").length > 0);
    const { d: wrong } = await vendor(t, bladed, { deviceID: "nope" });
    assert.match(
      (await rejection(wrong.powerState())).message,
      /no System "nope"; its Systems are: 529QB9450R6, 529QB9451R6/,
    );
  });

  it("Dell: the CRD default deviceID 1 on a single System.Embedded.1 means that System", async (t) => {
    const { d, bmc } = await vendor(t, dell, { deviceID: "1" });
    assert.equal((await d.bootOverride()).mode, "UEFI");
    assert.ok(bmc.requests("GET", "/redfish/v1/Systems/System.Embedded.1").length > 0);
    assert.match(d.description, /System.Embedded.1/);
  });

  it("HPE iLO 5: trailing slashes everywhere; ids compare normalised; the Reset target is used as given", async (t) => {
    const { d, bmc } = await vendor(t, ilo, { deviceID: "1" });
    bmc.route("POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset/", { status: 204 });
    await d.power("PowerCycle");
    const post = bmc.requests("POST")[0]!;
    assert.equal(post.path, "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset/");
    // iLO has no PowerCycle: ForceRestart is the allowed cycle.
    assert.deepEqual(post.body, { ResetType: "ForceRestart" });
    assert.equal(post.headers["if-match"], undefined, "never If-Match on an action");
  });
});

describe("Redfish reset types", () => {
  it("Dell: PowerCycle is allowed and used", async (t) => {
    const { d, bmc } = await vendor(t, dell);
    bmc.route("POST /redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset", { status: 204 });
    await d.power("PowerCycle");
    assert.deepEqual(bmc.requests("POST")[0]!.body, { ResetType: "PowerCycle" });
  });

  it("HPE: graceful off is PushPowerButton; a cycle of a host that is off is On", async (t) => {
    const off = { ...fixture("hpe-ilo5/System-1.json"), PowerState: "Off" };
    const { d, bmc } = await vendor(t, { ...ilo, system: off });
    bmc.route("POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset/", {
      status: 200,
      body: { "@Message.ExtendedInfo": [{ MessageId: "iLO.2.14.Success" }] },
    });
    await d.power("ForceRestart");
    assert.deepEqual(bmc.requests("POST")[0]!.body, { ResetType: "On" });
    assert.deepEqual(
      planReset("GracefulShutdown", ["On", "ForceOff", "ForceRestart", "Nmi", "PushPowerButton"], "On"),
      {
        kind: "single",
        resetType: "PushPowerButton",
      },
    );
  });

  it("Supermicro: the glued junk value is ignored; X12 with only @Redfish.ActionInfo reads the ActionInfo", async (t) => {
    const listed = (fixture("supermicro/System-1-RF1.14.json").Actions as Record<string, Record<string, unknown>>)[
      "#ComputerSystem.Reset"
    ]!;
    assert.deepEqual(cleanAllowable(listed["ResetType@Redfish.AllowableValues"]), [
      "On",
      "ForceOff",
      "ForceRestart",
      "Nmi",
      "ForceOn",
    ]);
    // A list of junk only is no list: the ActionInfo (or the standard values) decide.
    assert.equal(cleanAllowable(["GracefulShutdownGracefulRestart"]), undefined);
    assert.deepEqual(planReset("PowerCycle", ["On", "ForceOff", "ForceRestart", "Nmi", "ForceOn"], "On"), {
      kind: "single",
      resetType: "ForceRestart",
    });
    const { d, bmc } = await vendor(t, { ...smc, system: "supermicro/System-1-X12-no-allowable.json" });
    bmc.get("/redfish/v1/Systems/1/ResetActionInfo", "dmtf-dsp2046-examples/ActionInfo.json");
    bmc.route("POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset", { status: 204 });
    await d.power("GracefulShutdown");
    assert.equal(bmc.requests("GET", "/redfish/v1/Systems/1/ResetActionInfo").length, 1);
    assert.deepEqual(bmc.requests("POST")[0]!.body, { ResetType: "GracefulShutdown" });
  });

  it("neither ForceRestart nor PowerCycle allowed: ForceOff, wait until Off, then On", async (t) => {
    const system = fixture("dmtf-public-catfish/System-1.json") as Record<string, unknown> & {
      Boot: Record<string, unknown>;
    };
    system.Actions = {
      "#ComputerSystem.Reset": {
        target: "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
        "ResetType@Redfish.AllowableValues": ["On", "ForceOff"],
      },
    };
    const { d, bmc } = await vendor(t, {
      root: "dmtf-public-catfish/ServiceRoot.json",
      systems: "dmtf-public-catfish/Systems.json",
      system,
      systemPath: "/redfish/v1/Systems/1",
    });
    let state = "On";
    let reads = 0;
    bmc.route("GET /redfish/v1/Systems/1", () => {
      // Off shows up a few reads after ForceOff, as on a real BMC.
      if (state === "PoweringOff" && ++reads >= 3) state = "Off";
      return { body: { ...system, PowerState: state } };
    });
    bmc.route("POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset", (req) => {
      state = (req.body as { ResetType: string }).ResetType === "ForceOff" ? "PoweringOff" : "On";
      return { status: 204 };
    });
    await d.power("PowerCycle");
    assert.deepEqual(
      bmc.requests("POST").map((r) => r.body),
      [{ ResetType: "ForceOff" }, { ResetType: "On" }],
    );
  });
});

describe("Redfish tasks", () => {
  it("202 Accepted: polls the task monitor (honouring Retry-After) until the task completes", async (t) => {
    const { d, bmc } = await vendor(t, smc);
    bmc.route("POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset", {
      status: 202,
      headers: { location: "/redfish/v1/TaskMonitor/fa37JncCHryDsbzayy4cBWDxS22Jjzh", "retry-after": "0" },
    });
    let polls = 0;
    bmc.route("GET /redfish/v1/TaskMonitor/fa37JncCHryDsbzayy4cBWDxS22Jjzh", () =>
      ++polls < 3
        ? { status: 202, body: fixture("supermicro/Task-1-running.json") }
        : { body: fixture("generic-sushy/task-monitor-body.json") },
    );
    await d.power("PowerCycle");
    assert.equal(polls, 3);
  });

  it("a task that ends Failed rejects with the task's state", async (t) => {
    const { d, bmc } = await vendor(t, smc);
    bmc.route("POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset", {
      status: 202,
      headers: { location: "/redfish/v1/TaskMonitor/x" },
    });
    bmc.route("GET /redfish/v1/TaskMonitor/x", { body: fixture("supermicro/Task-1-failed.json") });
    const err = await rejection(d.power("ForceOff"));
    assert.equal(err.code, "bmc-error");
    assert.match(err.message, /task ended Failed/);
  });

  it("a task that never ends is bounded by taskTimeoutMs", async (t) => {
    const { d, bmc } = await vendor(t, smc, { taskTimeoutMs: 100 });
    bmc.route("POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset", {
      status: 202,
      headers: { location: "/redfish/v1/TaskMonitor/x" },
    });
    bmc.route("GET /redfish/v1/TaskMonitor/x", { status: 202, body: fixture("supermicro/Task-1-running.json") });
    assert.equal((await rejection(d.power("ForceOff"))).code, "timeout");
  });
});

describe("Redfish boot override", () => {
  it("Lenovo XCC: 428 without If-Match → re-GET and PATCH with the ETag; no Continuous → Once", async (t) => {
    const { d, bmc } = await vendor(t, lenovo);
    let gets = 0;
    bmc.route("GET /redfish/v1/Systems/1", () => {
      gets++;
      const body = fixture("lenovo-xcc/System-1.json");
      return gets === 1 ? { body } : { body, headers: { etag: '"xcc-7"' } };
    });
    bmc.route("PATCH /redfish/v1/Systems/1", (req) =>
      req.headers["if-match"] === '"xcc-7"'
        ? { status: 204 }
        : { status: 428, body: { error: { code: "Base.1.8.PreconditionRequired", message: "If-Match required" } } },
    );
    const result = await d.setBootOverride({ target: "Pxe", enabled: "Continuous" });
    const patches = bmc.requests("PATCH");
    assert.equal(patches.length, 2);
    assert.equal(patches[0]!.headers["if-match"], undefined);
    assert.equal(patches[1]!.headers["if-match"], '"xcc-7"');
    assert.deepEqual(patches[1]!.body, {
      Boot: { BootSourceOverrideTarget: "Pxe", BootSourceOverrideEnabled: "Once" },
    });
    // The read-back reports what the BMC holds (the fixture still shows Hdd/Once, Legacy).
    assert.deepEqual(result, { target: "Hdd", enabled: "Once", mode: "Legacy" });
  });

  it("412 on a stale ETag: re-GET and retry once with the fresh one, then once without If-Match", async (t) => {
    const { d, bmc } = await vendor(t, ilo, { deviceID: "1" });
    let version = 0;
    bmc.route("GET /redfish/v1/Systems/1/", () => ({
      body: { ...fixture("hpe-ilo5/System-1.json"), "@odata.etag": `W/"v${++version}"` },
    }));
    bmc.route("PATCH /redfish/v1/Systems/1/", (req) => (req.headers["if-match"] ? { status: 412 } : { status: 200 }));
    await d.setBootOverride({ target: "Pxe", enabled: "Once" });
    assert.deepEqual(
      bmc.requests("PATCH").map((p) => p.headers["if-match"]),
      ['W/"v1"', 'W/"v2"', undefined],
    );
  });

  it("BootSourceOverrideMode is sent only when asked for, present and different", async (t) => {
    const patchOf = async (files: typeof dell, mode: "UEFI" | "Legacy") => {
      const { d, bmc } = await vendor(t, files, { deviceID: files.systemPath.split("/").pop()! });
      bmc.route(`PATCH ${files.systemPath}`, { status: 204 });
      await d.setBootOverride({ target: "Pxe", enabled: "Once", mode });
      return (bmc.requests("PATCH")[0]!.body as { Boot: Record<string, string> }).Boot;
    };
    // Dell in Legacy asked for UEFI: the mode is part of the PATCH.
    assert.equal(
      (await patchOf({ ...dell, system: "dell-idrac/bmclib-System.Embedded.1-legacy.json" }, "UEFI"))
        .BootSourceOverrideMode,
      "UEFI",
    );
    // Dell already in UEFI: not sent (a mode write starts a BIOS job on iDRAC).
    assert.equal((await patchOf(dell, "UEFI")).BootSourceOverrideMode, undefined);
    // DMTF blade: no such property at all, so never sent.
    assert.equal((await patchOf(bladed, "Legacy")).BootSourceOverrideMode, undefined);
  });

  it("AMI/Nokia: a refused direct PATCH follows @Redfish.Settings to the settings object, with its ETag", async (t) => {
    const sd = fixture("ami-nokia/System-Self-SD.json") as Record<string, unknown> & { Boot: Record<string, unknown> };
    const system = {
      "@odata.id": "/redfish/v1/Systems/Self",
      Id: "Self",
      PowerState: "On",
      Boot: sd.Boot,
      ...fixture("ami-nokia/System-settings-annotation.json"),
    };
    const { d, bmc } = await vendor(
      t,
      { root: "dmtf-public-catfish/ServiceRoot.json", system, systemPath: "/redfish/v1/Systems/Self" },
      { deviceID: "Self" },
    );
    bmc.route("PATCH /redfish/v1/Systems/Self", {
      status: 405,
      body: {
        error: {
          code: "Ami.1.0.OperationSupportedInFutureStateURI",
          message: "use the SD",
          "@Message.ExtendedInfo": [
            {
              MessageId: "Ami.1.0.OperationSupportedInFutureStateURI",
              Message: "The operation is supported in the future state URI.",
            },
          ],
        },
      },
    });
    let pending = sd.Boot;
    bmc.route("GET /redfish/v1/Systems/Self/SD", () => ({ body: { ...sd, Boot: pending } }));
    bmc.route("PATCH /redfish/v1/Systems/Self/SD", (req) => {
      pending = { ...pending, ...(req.body as { Boot: object }).Boot };
      return { status: 204 };
    });
    const result = await d.setBootOverride({ target: "Pxe", enabled: "Once", mode: "UEFI" });
    const sdPatch = bmc.requests("PATCH", "/redfish/v1/Systems/Self/SD")[0]!;
    assert.equal(sdPatch.headers["if-match"], '"1660209630"');
    assert.deepEqual(result, { target: "Pxe", enabled: "Once", mode: "UEFI" });
  });

  it("a target the BMC does not list is not-supported, without a PATCH", async (t) => {
    const { d, bmc } = await vendor(t, {
      ...lenovo,
      system: {
        ...fixture("lenovo-xcc/System-1.json"),
        Boot: {
          ...(fixture("lenovo-xcc/System-1.json").Boot as object),
          "BootSourceOverrideTarget@Redfish.AllowableValues": ["None", "Hdd"],
        },
      },
    });
    assert.equal((await rejection(d.setBootOverride({ target: "Pxe", enabled: "Once" }))).code, "not-supported");
    assert.equal(bmc.requests("PATCH").length, 0);
  });
});

describe("Redfish errors and power state", () => {
  it("@Message.ExtendedInfo is surfaced in BmcError.bmcMessages (array, single object, iDRAC string MessageArgs)", async (t) => {
    const { d, bmc } = await vendor(t, dell);
    const target = "POST /redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset";
    bmc.route(target, { status: 400, body: fixture("dell-idrac/error-running-job-RAC0679.json") });
    let err = await rejection(d.power("PowerCycle"));
    assert.deepEqual(err.bmcMessages, [
      "IDRAC.2.8.RAC0679: A job operation is already running. Retry the operation after the existing job is completed.",
    ]);
    assert.match(err.message, /answered 400: IDRAC.2.8.RAC0679/);
    bmc.route(target, { status: 400, body: fixture("generic-sushy/error-multi-extinfo.json") });
    err = await rejection(d.power("PowerCycle"));
    assert.equal(err.bmcMessages.length, 3);
    bmc.route(target, { status: 415, body: fixture("generic-sushy/error-single-extinfo-object.json") });
    err = await rejection(d.power("PowerCycle"));
    assert.deepEqual(err.bmcMessages, [
      "Base.1.5.GeneralError: A general error has occurred. See Resolution for information on how to resolve the error.",
    ]);
  });

  it("every fixture body parses for messages without throwing", () => {
    const root = path.join(sharedDir(), "fixtures", "redfish");
    for (const dir of readdirSync(root, { withFileTypes: true }).filter(
      (e) => e.isDirectory() && e.name !== "LICENSES",
    )) {
      for (const file of readdirSync(path.join(root, dir.name)).filter((f) => f.endsWith(".json"))) {
        const messages = bmcMessages(fixture(`${dir.name}/${file}`));
        if (file.startsWith("error-")) assert.ok(messages.length > 0, `${dir.name}/${file} has messages`);
      }
    }
  });

  it("power state that lags or flaps is debounced until the same reading comes twice", async (t) => {
    const { d, bmc } = await vendor(t, lenovo, { maxStateReads: 5 });
    const serve = (states: string[]) => {
      let i = 0;
      bmc.route("GET /redfish/v1/Systems/1", () => ({
        body: { ...fixture("lenovo-xcc/System-1.json"), PowerState: states[Math.min(i++, states.length - 1)] },
      }));
    };
    serve(["PoweringOn", "Off", "On", "On"]);
    assert.equal(await d.powerState(), "On");
    serve(["On", "Off", "On", "Off", "On", "Off"]);
    assert.equal(await d.powerState(), "Unknown");
    serve(["off", "OFF"]);
    assert.equal(await d.powerState(), "Off");
  });
});
