import type { BmcDriver, BmcError, BootOverride, PowerAction, PowerState } from "../driver.js";
import { Ipmitool, type IpmitoolOptions } from "./ipmitool.js";
import { parseBootFlags, parsePowerStatus } from "./parse.js";

export interface IpmiDriverOptions extends IpmitoolOptions {
  /** `spec.pxe.ipmi.bootMode`: "UEFI" adds `options=efiboot` to a boot override. */
  bootMode?: "UEFI" | "Legacy";
  /** Asked before every call: a BmcError to refuse with (a Machine quarantined since the driver was made). */
  refuse?: () => BmcError | undefined;
}

/**
 * `BmcDriver` over IPMI 2.0 (RMCP+, `ipmitool -I lanplus`). docs/bmc-ipmi.md has the mapping.
 * IPMI has no session to keep: every call is one ipmitool run, serialised per BMC.
 */
export class IpmiDriver implements BmcDriver {
  readonly description: string;
  readonly #tool: Ipmitool;

  constructor(private readonly o: IpmiDriverOptions) {
    this.#tool = new Ipmitool(o);
    this.description = `ipmi ${o.host.includes(":") ? `[${o.host}]` : o.host}:${o.port}`;
  }

  /** argv of a call, for the test that proves the password is never in it. */
  argv(): string[] {
    return this.#tool.baseArgs();
  }

  async powerState(): Promise<PowerState> {
    this.#guard();
    return parsePowerStatus((await this.#tool.run(["chassis", "power", "status"])).stdout);
  }

  async power(action: PowerAction): Promise<void> {
    this.#guard();
    switch (action) {
      case "On":
        await this.#tool.run(["chassis", "power", "on"]);
        return;
      case "ForceOff":
        await this.#tool.run(["chassis", "power", "off"]);
        return;
      case "GracefulShutdown":
        await this.#tool.run(["chassis", "power", "soft"]);
        return;
      case "ForceRestart":
      case "PowerCycle": {
        // A reset or cycle of a server that is off does nothing (or fails with 0xD5) on most
        // BMCs; Redfish's ForceRestart/PowerCycle of an Off system powers it on: do the same.
        if ((await this.powerState()) === "Off") {
          await this.#tool.run(["chassis", "power", "on"]);
          return;
        }
        await this.#tool.run(["chassis", "power", action === "PowerCycle" ? "cycle" : "reset"]);
        return;
      }
    }
  }

  async setBootOverride(wanted: BootOverride): Promise<BootOverride> {
    this.#guard();
    if (wanted.enabled === "Disabled" || wanted.target === "None") {
      await this.#tool.run(["chassis", "bootdev", "none"]);
      return { target: "None", enabled: "Disabled" };
    }
    const options: string[] = [];
    if (wanted.enabled === "Continuous") options.push("persistent");
    const mode = wanted.mode ?? this.o.bootMode;
    if (mode === "UEFI") options.push("efiboot");
    const device = wanted.target === "Pxe" ? "pxe" : "disk";
    await this.#tool.run([
      "chassis",
      "bootdev",
      device,
      ...(options.length > 0 ? [`options=${options.join(",")}`] : []),
    ]);
    // The BMC acknowledged the Set System Boot Options request: that is what is armed now.
    // (Reading back is unreliable: some BMCs, ipmi_sim among them, do not report the flags they keep.)
    const set: BootOverride = { target: wanted.target, enabled: wanted.enabled };
    if (mode) set.mode = mode;
    return set;
  }

  async bootOverride(): Promise<BootOverride> {
    this.#guard();
    return parseBootFlags((await this.#tool.run(["chassis", "bootparam", "get", "5"])).stdout);
  }

  async close(): Promise<void> {
    this.#tool.close();
  }

  #guard(): void {
    const refusal = this.o.refuse?.();
    if (refusal) throw refusal;
  }
}
