import type { BootEventInput } from "../../events/boot-events.js";
import { type BmcDriver, BmcError, type BootOverride, type PowerAction, type PowerState } from "../driver.js";
import type { FlowClock } from "./clock.js";

export type EventSink = { emit(input: BootEventInput): unknown };

/**
 * A BmcDriver whose every call is an event on the machine's stream (`bmc.<call>`): what was
 * asked, the result, the BMC's own messages and the duration. Only fields the flows chose go
 * into an event, never request bodies or headers, so no credential can reach the stream.
 */
export class RecordedDriver {
  constructor(
    private readonly driver: BmcDriver,
    private readonly machine: string,
    private readonly events: EventSink,
    private readonly clock: FlowClock,
    /** Why the flow makes the call (`repave`, `reboot`, `refresh`, an operation name). */
    private readonly purpose: string,
  ) {}

  powerState(): Promise<PowerState> {
    return this.#record(
      "power-state",
      {},
      () => this.driver.powerState(),
      (state) => ({ powerState: state }),
    );
  }

  power(action: PowerAction): Promise<void> {
    return this.#record("power", { action }, () => this.driver.power(action));
  }

  setBootOverride(override: BootOverride): Promise<BootOverride> {
    return this.#record(
      "set-boot-override",
      describeOverride("want", override),
      () => this.driver.setBootOverride(override),
      (got) => describeOverride("got", got),
    );
  }

  bootOverride(): Promise<BootOverride> {
    return this.#record(
      "boot-override",
      {},
      () => this.driver.bootOverride(),
      (got) => describeOverride("got", got),
    );
  }

  async #record<T>(
    call: string,
    asked: Record<string, string>,
    run: () => Promise<T>,
    describe?: (value: T) => Record<string, string>,
  ): Promise<T> {
    const started = this.clock.now();
    const base = { driver: this.driver.description, purpose: this.purpose, ...asked };
    try {
      const value = await run();
      this.events.emit({
        step: `bmc.${call}`,
        result: "ok",
        machine: this.machine,
        detail: { ...base, ...describe?.(value), durationMs: this.clock.now() - started },
      });
      return value;
    } catch (err) {
      const error = asBmcError(err);
      this.events.emit({
        step: `bmc.${call}`,
        result: "error",
        machine: this.machine,
        reason: error.code,
        detail: {
          ...base,
          error: error.message,
          bmcMessage: error.bmcMessages.length > 0 ? error.bmcMessages.join(" | ") : undefined,
          durationMs: this.clock.now() - started,
        },
      });
      throw error;
    }
  }
}

function describeOverride(prefix: string, o: BootOverride): Record<string, string> {
  const out: Record<string, string> = { [`${prefix}Target`]: o.target, [`${prefix}Enabled`]: o.enabled };
  if (o.mode !== undefined) out[`${prefix}Mode`] = o.mode;
  return out;
}

/**
 * A driver is supposed to reject only with BmcError; anything else (a bug, a TypeError) is
 * wrapped with its message alone, so a stack or an object holding a request never leaks.
 */
export function asBmcError(err: unknown): BmcError {
  if (err instanceof BmcError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BmcError("bmc-error", `driver failure: ${message}`);
}

/** Condition text for a BMC failure: the error and the BMC's `@Message.ExtendedInfo` messages. */
export function describeBmcError(error: BmcError): string {
  const text =
    error.bmcMessages.length > 0 ? `${error.message} (BMC: ${error.bmcMessages.join(" | ")})` : error.message;
  return text.length > 1024 ? `${text.slice(0, 1021)}...` : text;
}
