import type { Machine } from "../inventory/types.js";
import { type BmcDriverDeps, createBmcDriver } from "./create-driver.js";
import type { BmcDriver, BootOverride, PowerAction, PowerState } from "./driver.js";

/** What the BMC flows take: a driver per Machine, known synchronously (undefined = no BMC). */
export type SyncDriverFactory = (machine: Machine) => BmcDriver | undefined;

/**
 * The production driver factory for the BMC flows: a Redfish driver for every Machine with
 * `spec.pxe.redfish`, an IPMI one for `spec.pxe.ipmi` (create-driver.ts chooses). Creating one reads its password Secret (async), so the flows get a driver
 * that creates the real one on first use and again after a failed creation (a Secret added
 * later, a BMC CA ConfigMap fixed), and closes it with itself.
 */
export function bmcDriverFactory(deps: BmcDriverDeps): SyncDriverFactory {
  return (machine) => {
    const redfish = machine.spec.pxe?.redfish;
    const ipmi = machine.spec.pxe?.ipmi;
    const description = redfish ? `redfish ${redfish.url}` : ipmi ? `ipmi ${ipmi.host}:${ipmi.port ?? 623}` : undefined;
    if (!description) return undefined;
    return new DeferredDriver(description, () => createBmcDriver(machine, deps));
  };
}

/** The name it had when only Redfish existed. */
export const redfishDriverFactory = bmcDriverFactory;

class DeferredDriver implements BmcDriver {
  #pending: Promise<BmcDriver | undefined> | undefined;
  #closed = false;

  constructor(
    readonly description: string,
    private readonly create: () => Promise<BmcDriver | undefined>,
  ) {}

  powerState(): Promise<PowerState> {
    return this.#driver().then((d) => d.powerState());
  }

  power(action: PowerAction): Promise<void> {
    return this.#driver().then((d) => d.power(action));
  }

  setBootOverride(override: BootOverride): Promise<BootOverride> {
    return this.#driver().then((d) => d.setBootOverride(override));
  }

  bootOverride(): Promise<BootOverride> {
    return this.#driver().then((d) => d.bootOverride());
  }

  async close(): Promise<void> {
    this.#closed = true;
    const pending = this.#pending;
    this.#pending = undefined;
    const driver = await pending?.catch(() => undefined);
    await driver?.close();
  }

  async #driver(): Promise<BmcDriver> {
    if (this.#closed) throw new Error(`${this.description}: driver closed`);
    if (!this.#pending) {
      const pending = this.create();
      this.#pending = pending;
      // A failed creation is not cached: the next call tries again.
      pending.catch(() => {
        if (this.#pending === pending) this.#pending = undefined;
      });
    }
    const driver = await this.#pending;
    if (!driver) throw new Error(`${this.description}: the Machine no longer has a BMC`);
    return driver;
  }
}
