import {
  type BmcDriver,
  BmcError,
  type BootOverride,
  type PowerAction,
  type PowerState,
} from "../../../../server/bmc/driver.js";

/**
 * A BMC held in memory, for the flow tests: a server that is On or Off, a boot override with
 * the Redfish meaning of Once (consumed by the next start), and a record of every start's
 * boot source. Knobs refuse Once, refuse overrides, or fail calls.
 */
export class MemoryDriver implements BmcDriver {
  readonly description: string;
  state: PowerState = "On";
  override: BootOverride = { target: "None", enabled: "Disabled" };
  /** false: Once is refused with not-supported (some BMCs only know Continuous). */
  allowOnce = true;
  /** false: every boot override is refused with not-supported. */
  allowOverride = true;
  /** false: reading the override is refused too (ipmi_sim with a VM: "Invalid data field"). */
  allowOverrideRead = true;
  /** false: Disabled is refused (upstream then falls back to Hdd/Continuous). */
  allowDisabled = true;
  /** true: ForceOff leaves the server in PoweringOff, and On still reads Off, until `settle()`. */
  lag = false;
  /** Calls in order, e.g. `power:ForceOff`, `set:Pxe/Once`, `state`. */
  readonly calls: string[] = [];
  /** Boot source of every start: `Pxe` when an override was active, else `Hdd`. */
  readonly boots: string[] = [];
  /** Errors the next calls reject with, in order. */
  readonly failures: BmcError[] = [];
  closed = false;
  #starting = false;

  constructor(name = "node-01") {
    this.description = `memory bmc ${name}`;
  }

  async powerState(): Promise<PowerState> {
    this.#call("state");
    return this.state;
  }

  async power(action: PowerAction): Promise<void> {
    this.#call(`power:${action}`);
    if (action === "ForceOff") this.state = this.lag ? "PoweringOff" : "Off";
    else if (action === "On" && this.state !== "On") {
      if (this.lag) this.#starting = true;
      else this.#start();
    }
  }

  async setBootOverride(o: BootOverride): Promise<BootOverride> {
    this.#call(`set:${o.target}/${o.enabled}`);
    const refused =
      !this.allowOverride ||
      (o.enabled === "Once" && !this.allowOnce) ||
      (o.enabled === "Disabled" && !this.allowDisabled);
    if (refused)
      throw new BmcError("not-supported", "PATCH Boot rejected with 400", ["Base.1.8.PropertyValueNotInList"]);
    this.override = { ...o };
    return { ...this.override };
  }

  async bootOverride(): Promise<BootOverride> {
    this.#call("get-boot");
    if (!this.allowOverrideRead)
      throw new BmcError("not-supported", "Get Chassis Boot Parameter 5 failed: Invalid data field in request");
    return { ...this.override };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Ends a lagging transition. */
  settle(): void {
    if (this.state === "PoweringOff") this.state = "Off";
    if (this.#starting) {
      this.#starting = false;
      this.#start();
    }
  }

  count(call: string): number {
    return this.calls.filter((c) => c === call).length;
  }

  #start(): void {
    const pxe = this.override.target === "Pxe" && this.override.enabled !== "Disabled";
    this.boots.push(pxe ? "Pxe" : "Hdd");
    if (this.override.enabled === "Once") this.override = { target: "None", enabled: "Disabled" };
    this.state = "On";
  }

  #call(call: string): void {
    const failure = this.failures.shift();
    this.calls.push(call);
    if (failure) throw failure;
  }
}
