import { Agent, request } from "undici";
import {
  type BmcDriver,
  BmcError,
  type BootOverride,
  type PowerAction,
  type PowerState,
} from "../../../../server/bmc/driver.js";

/**
 * The least Redfish driver that drives the emulator, for the flow-through-emulator test only
 * (the product's driver is server/bmc/redfish/, written by another room): Basic auth, GET the
 * ComputerSystem, PATCH Boot with the ETag it read, POST ComputerSystem.Reset. 400 from a
 * PATCH is "not-supported", with the BMC's @Message.ExtendedInfo ids as messages.
 */
export class MiniRedfishDriver implements BmcDriver {
  readonly description: string;
  readonly #agent = new Agent({ connect: { rejectUnauthorized: false }, connections: 1 });
  readonly #auth: string;
  readonly #system: string;

  constructor(
    private readonly url: string,
    username: string,
    password: string,
    systemId = "1",
  ) {
    this.#auth = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
    this.#system = `/redfish/v1/Systems/${systemId}`;
    this.description = `redfish ${url}${this.#system}`;
  }

  async powerState(): Promise<PowerState> {
    const { body } = await this.#call("GET", this.#system);
    const state = body.PowerState;
    return state === "On" || state === "Off" || state === "PoweringOn" || state === "PoweringOff" ? state : "Unknown";
  }

  async power(action: PowerAction): Promise<void> {
    await this.#call("POST", `${this.#system}/Actions/ComputerSystem.Reset`, { ResetType: action });
  }

  async setBootOverride(o: BootOverride): Promise<BootOverride> {
    const { headers } = await this.#call("GET", this.#system);
    const boot: Record<string, string> = { BootSourceOverrideEnabled: o.enabled };
    if (o.target !== "None" || o.enabled !== "Disabled") boot.BootSourceOverrideTarget = o.target;
    if (o.mode) boot.BootSourceOverrideMode = o.mode;
    await this.#call("PATCH", this.#system, { Boot: boot }, { "if-match": String(headers.etag ?? "*") });
    return this.bootOverride();
  }

  async bootOverride(): Promise<BootOverride> {
    const { body } = await this.#call("GET", this.#system);
    const boot = (body.Boot ?? {}) as Record<string, string>;
    return {
      target: (boot.BootSourceOverrideTarget ?? "None") as BootOverride["target"],
      enabled: (boot.BootSourceOverrideEnabled ?? "Disabled") as BootOverride["enabled"],
      mode: boot.BootSourceOverrideMode as BootOverride["mode"],
    };
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }

  async #call(
    method: "GET" | "POST" | "PATCH",
    path: string,
    body?: unknown,
    extra: Record<string, string> = {},
  ): Promise<{ body: Record<string, unknown>; headers: Record<string, unknown> }> {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(`${this.url}${path}`, {
        method,
        dispatcher: this.#agent,
        headers: { authorization: this.#auth, ...(body ? { "content-type": "application/json" } : {}), ...extra },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      });
    } catch (err) {
      throw new BmcError("unreachable", `${method} ${path}: ${(err as Error).message}`);
    }
    const text = await res.body.text();
    const parsed = text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
    if (res.statusCode >= 400) {
      const info = ((parsed.error as Record<string, unknown> | undefined)?.["@Message.ExtendedInfo"] ?? []) as Array<{
        MessageId?: string;
      }>;
      const messages = info.map((m) => m.MessageId ?? "").filter((m) => m !== "");
      const code =
        res.statusCode === 401
          ? "auth"
          : res.statusCode === 400 || res.statusCode === 405
            ? "not-supported"
            : "bmc-error";
      throw new BmcError(code, `${method} ${path}: HTTP ${res.statusCode}`, messages);
    }
    return { body: parsed, headers: res.headers };
  }
}
