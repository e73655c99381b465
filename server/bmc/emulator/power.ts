/**
 * What stands behind an emulated BMC: something that is on or off and can be started from
 * the network. `MemoryPower` only keeps the state (VM-less mode); `QemuPower` drives a VM.
 */
export type EmulatedPowerState = "On" | "Off" | "PoweringOn" | "PoweringOff";

export interface PowerBackend {
  state(): EmulatedPowerState;
  /** Starts the server; `pxe`: this start boots from the network. */
  on(pxe: boolean): Promise<void>;
  forceOff(): Promise<void>;
  /** ACPI power button: the guest shuts down on its own (a VM-less server just goes Off). */
  gracefulShutdown(): Promise<void>;
  /** Reset without power loss; `pxe`: this start boots from the network. */
  restart(pxe: boolean): Promise<void>;
  close(): Promise<void>;
}

export class MemoryPower implements PowerBackend {
  #state: EmulatedPowerState;
  /** Boot source of every start, for tests and the demo: `pxe` or `disk`. */
  readonly boots: Array<"pxe" | "disk"> = [];

  constructor(initial: "On" | "Off" = "On") {
    this.#state = initial;
  }

  state(): EmulatedPowerState {
    return this.#state;
  }

  async on(pxe: boolean): Promise<void> {
    if (this.#state === "On") return;
    this.#state = "On";
    this.boots.push(pxe ? "pxe" : "disk");
  }

  async forceOff(): Promise<void> {
    this.#state = "Off";
  }

  async gracefulShutdown(): Promise<void> {
    this.#state = "Off";
  }

  async restart(pxe: boolean): Promise<void> {
    this.#state = "On";
    this.boots.push(pxe ? "pxe" : "disk");
  }

  async close(): Promise<void> {}
}
