import { setTimeout as sleep } from "node:timers/promises";
import {
  type BmcDriver,
  BmcError,
  BmcHttpError,
  type BootOverride,
  type PowerAction,
  type PowerState,
} from "../driver.js";
import type { PinStore } from "../tls-pin.js";
import { BootNotSupported, bootPatch, readOverride } from "./boot.js";
import { type Json, RedfishClient } from "./client.js";
import { linkOf, samePath } from "./links.js";
import { cleanAllowable, parsePowerState, planReset } from "./reset.js";
import { RedfishSession } from "./session.js";
import { RedfishTransport, type TransportOptions } from "./transport.js";

export interface RedfishDriverOptions {
  url: string;
  username: string;
  password: string;
  /** `spec.pxe.redfish.deviceID` (the CRD default is "1"; "" discovers). */
  deviceID?: string;
  pins: PinStore;
  /** PEM CA bundle: verify the BMC normally instead of pinning. */
  ca?: string;
  /** Timeouts, retries and body cap of the HTTPS transport (defaults in transport.ts). */
  transport?: Omit<TransportOptions, "url" | "pins" | "ca">;
  /** Power state debounce: readings this far apart until two agree, at most `maxStateReads`. Defaults 1 s, 5. */
  settleMs?: number;
  maxStateReads?: number;
  /** ForceOff-then-On: how often and how long to wait for Off. Defaults 2 s, 120 s. */
  powerPollMs?: number;
  powerTimeoutMs?: number;
  /** 202 task monitors. Defaults 2 s, 10 min. */
  taskPollMs?: number;
  taskTimeoutMs?: number;
  /** How long Basic auth is used after a failed login before sessions are tried again. Default 5 min. */
  sessionRetryMs?: number;
  /** Asked before every call: a BmcError to refuse with (a Machine quarantined since the driver was made). */
  refuse?: () => BmcError | undefined;
}

/** Statuses with which a BMC says "not this way" (spec §8.3), as opposed to "busy" (5xx). */
const UNSUPPORTED = new Set([400, 404, 405, 410, 501]);

/**
 * `BmcDriver` over Redfish. Every call is bounded (transport timeouts and retries, task and
 * power deadlines) and rejects with a BmcError whose message never holds a credential.
 * docs/bmc-redfish.md describes the behaviour and the vendor quirks handled.
 */
export class RedfishDriver implements BmcDriver {
  readonly client: RedfishClient;
  private readonly transport: RedfishTransport;
  private readonly session: RedfishSession;
  private systemCache: string | undefined;

  constructor(private readonly o: RedfishDriverOptions) {
    this.transport = new RedfishTransport({ url: o.url, pins: o.pins, ca: o.ca, ...o.transport });
    let client: RedfishClient | undefined;
    this.session = new RedfishSession(this.transport, {
      username: o.username,
      password: o.password,
      sessionsPath: () => client!.sessionsPath(),
      ensureTrust: () => this.transport.establishTrust(client!.rootPath),
      sessionRetryMs: o.sessionRetryMs,
    });
    client = new RedfishClient(this.transport, this.session, {
      deviceID: o.deviceID,
      taskPollMs: o.taskPollMs,
      taskTimeoutMs: o.taskTimeoutMs,
    });
    this.client = client;
  }

  get description(): string {
    return `redfish ${this.transport.origin}${this.systemCache ?? this.transport.prefix}`;
  }

  /**
   * The power state, debounced: BMCs report stale or flapping values right after an action
   * (PoweringOn falling back to Off, chaos/powerman #154), so readings are taken `settleMs`
   * apart until the same one comes twice. No agreement within `maxStateReads`: "Unknown".
   */
  powerState(): Promise<PowerState> {
    return this.guard(async () => {
      const reads = Math.max(2, this.o.maxStateReads ?? 5);
      let last = await this.readPowerState();
      for (let i = 1; i < reads; i++) {
        await sleep(this.o.settleMs ?? 1000);
        const now = await this.readPowerState();
        if (now === last) return now;
        last = now;
      }
      return "Unknown";
    });
  }

  power(action: PowerAction): Promise<void> {
    return this.guard(async () => {
      const system = await this.system();
      const reset = (system.body.Actions as Json | undefined)?.["#ComputerSystem.Reset"] as Json | undefined;
      const target = reset?.target
        ? this.client.link(reset.target, "Reset target")
        : `${system.path.replace(/\/+$/, "")}/Actions/ComputerSystem.Reset`;
      const allowed = await this.allowedResetTypes(reset);
      const plan = planReset(action, allowed, parsePowerState(system.body.PowerState));
      if (plan.kind === "none") return;
      if (plan.kind === "single") {
        await this.client.action(target, { ResetType: plan.resetType });
        return;
      }
      await this.client.action(target, { ResetType: "ForceOff" });
      await this.waitFor("Off");
      await this.client.action(target, { ResetType: plan.on });
    });
  }

  setBootOverride(wanted: BootOverride): Promise<BootOverride> {
    return this.guard(async () => {
      const system = await this.system();
      const boot = system.body.Boot as Json | undefined;
      if (!boot || typeof boot !== "object") throw new BmcError("not-supported", "the System has no Boot property");
      let patch: ReturnType<typeof bootPatch>;
      try {
        patch = bootPatch(boot, wanted);
      } catch (err) {
        if (err instanceof BootNotSupported) throw new BmcError("not-supported", err.message);
        throw err;
      }
      try {
        await this.client.patch(system.path, patch.body, system.etag);
        return readOverride((await this.client.get(system.path)).body.Boot as Json | undefined);
      } catch (err) {
        const settings = linkOf((system.body["@Redfish.Settings"] as Json | undefined)?.SettingsObject);
        if (!(err instanceof BmcHttpError) || !UNSUPPORTED.has(err.status)) throw err;
        if (!settings || samePath(settings, system.path)) throw asUnsupported(err);
        // AMI/Nokia: the override lives in the settings ("future state") object, applied at the next reset.
        const path = this.client.link(settings, "settings object");
        const current = await this.client.get(path);
        try {
          await this.client.patch(path, patch.body, current.etag);
        } catch (inner) {
          if (inner instanceof BmcHttpError && UNSUPPORTED.has(inner.status)) throw asUnsupported(inner, err);
          throw inner;
        }
        const pending = (await this.client.get(path)).body.Boot as Json | undefined;
        return readOverride(pending ?? ((await this.client.get(system.path)).body.Boot as Json | undefined));
      }
    });
  }

  bootOverride(): Promise<BootOverride> {
    return this.guard(async () => readOverride((await this.system()).body.Boot as Json | undefined));
  }

  async close(): Promise<void> {
    await this.session.close().catch(() => undefined);
    await this.transport.close();
  }

  private guard<T>(fn: () => Promise<T>): Promise<T> {
    const refusal = this.o.refuse?.();
    if (refusal) return Promise.reject(refusal);
    return guard(fn);
  }

  private async system() {
    const path = await this.client.systemPath();
    this.systemCache = path;
    return this.client.get(path);
  }

  private async readPowerState(): Promise<PowerState> {
    return parsePowerState((await this.system()).body.PowerState);
  }

  private async allowedResetTypes(reset: Json | undefined): Promise<string[] | undefined> {
    const inline = cleanAllowable(reset?.["ResetType@Redfish.AllowableValues"]);
    if (inline) return inline;
    const info = reset?.["@Redfish.ActionInfo"];
    if (typeof info !== "string") return undefined;
    try {
      const body = (await this.client.get(this.client.link(info, "ActionInfo"))).body;
      const params = Array.isArray(body.Parameters) ? (body.Parameters as Json[]) : [];
      return cleanAllowable(params.find((p) => p?.Name === "ResetType")?.AllowableValues);
    } catch (err) {
      if (err instanceof BmcError && err.code === "tls-pin-mismatch") throw err;
      return undefined; // an unreadable ActionInfo: assume the standard values
    }
  }

  private async waitFor(state: PowerState): Promise<void> {
    const deadline = Date.now() + (this.o.powerTimeoutMs ?? 120_000);
    for (;;) {
      if ((await this.readPowerState()) === state) return;
      if (Date.now() >= deadline) {
        throw new BmcError("timeout", `the host did not reach ${state} within ${this.o.powerTimeoutMs ?? 120_000} ms`);
      }
      await sleep(this.o.powerPollMs ?? 2000);
    }
  }
}

function asUnsupported(err: BmcHttpError, first?: BmcHttpError): BmcHttpError {
  const messages = [...(first?.bmcMessages ?? []), ...err.bmcMessages];
  return new BmcHttpError(err.status, `boot override refused: ${err.message}`, messages, "not-supported");
}

/** Every rejection is a BmcError (a bug or an unexpected shape must not surface as a TypeError with internals). */
async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof BmcError) throw err;
    throw new BmcError("bad-response", `unexpected answer from the BMC: ${(err as Error).message}`);
  }
}
