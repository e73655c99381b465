import type { SecretKeySelector } from "./types.js";

/**
 * Read access to the `v1` Secrets and ConfigMaps that Machines reference (BMC passwords,
 * pull secrets, cloud-init user-data, bootstrap tokens). Standalone, the inventory folder
 * holds them as manifests; the cluster backend reads them through the API. Rooms import this
 * interface only, never a concrete store.
 *
 * Values are returned to the caller and must never reach logs, events, metrics or API responses.
 */
export interface SecretReader {
  /**
   * The bytes under `ref.key` of Secret `ref.name` in `ref.namespace` (or `defaultNamespace`).
   * Undefined when the Secret or the key does not exist.
   */
  secretValue(ref: SecretKeySelector, defaultNamespace?: string): Promise<Buffer | undefined>;
  /** The string under `ref.key` of ConfigMap `ref.name`; undefined when missing. */
  configMapValue(ref: SecretKeySelector, defaultNamespace?: string): Promise<string | undefined>;
  /**
   * Whether ConfigMap `ref.name` exists (its key is not looked at): spec §5.6 answers a missing
   * ConfigMap with the default user-data but a missing key with an error. Readers that cannot
   * tell leave it out, and callers then treat "no value" as "no ConfigMap".
   */
  hasConfigMap?(ref: SecretKeySelector, defaultNamespace?: string): Promise<boolean>;
}
