import type { Machine } from "./types.js";

/**
 * Writing Machines (create, edit, delete), beside the read-only MachineBackend. The file
 * inventory implements it over the YAML files of the inventory folder, keeping the operator's
 * comments and layout; the cluster backend will write the Machine objects. The console's
 * routes see only this interface.
 *
 * The input is a Machine as the API shows it: `status` and the server-managed metadata (uid,
 * resourceVersion, generation, creationTimestamp) are ignored. Values the API scrubbed (a BMC
 * URL's credentials, secret-named keys) that come back unchanged keep what the file holds.
 */
export interface InventoryWriter {
  create(machine: unknown): Promise<Machine>;
  update(name: string, machine: unknown): Promise<Machine>;
  delete(name: string): Promise<void>;
}

export class InventoryWriteError extends Error {
  constructor(
    readonly code: "EXISTS" | "NOT_FOUND" | "INVALID" | "READ_ONLY",
    message: string,
    readonly errors: string[] = [],
  ) {
    super(message);
  }
}
