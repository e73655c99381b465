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
  /**
   * Whether Secret `ref.name` exists (its key is not looked at): a missing BMC password Secret is
   * an error, a missing key an empty password (upstream). Readers that cannot tell leave it out.
   */
  hasSecret?(ref: SecretKeySelector, defaultNamespace?: string): Promise<boolean>;
  /** The string under `ref.key` of ConfigMap `ref.name`; undefined when missing. */
  configMapValue(ref: SecretKeySelector, defaultNamespace?: string): Promise<string | undefined>;
  /**
   * Whether ConfigMap `ref.name` exists (its key is not looked at): spec §5.6 answers a missing
   * ConfigMap with the default user-data but a missing key with an error. Readers that cannot
   * tell leave it out, and callers then treat "no value" as "no ConfigMap".
   */
  hasConfigMap?(ref: SecretKeySelector, defaultNamespace?: string): Promise<boolean>;
}

/** Upstream's CRD default key of a SecretKeySelector (shared with SSH keys, spec §2.1). */
export const DEFAULT_PASSWORD_KEY = "ssh-privatekey";

/**
 * The BMC password for `passwordRef`. Spec §2.1: upstream's CRD defaults the key to
 * `ssh-privatekey` (the selector type is shared with SSH) while its README says `password`, and
 * our schema applies the same default. So a key of `ssh-privatekey` (or none) means "the
 * default": that key if the Secret has it (what upstream reads, so a working upstream Machine
 * works the same here), else `password` (what the README told users to write). Any other key is
 * used alone. A missing Secret is an error for the caller; a missing key gives an empty password
 * (upstream behaviour).
 */
export async function resolvePassword(
  reader: SecretReader,
  ref: SecretKeySelector,
): Promise<{ secretFound: boolean; password: string; key?: string }> {
  const keys = ref.key && ref.key !== DEFAULT_PASSWORD_KEY ? [ref.key] : [DEFAULT_PASSWORD_KEY, "password"];
  for (const key of keys) {
    const value = await reader.secretValue({ ...ref, key });
    if (value !== undefined) {
      const password = value.toString("utf8");
      value.fill(0);
      return { secretFound: true, password, key };
    }
  }
  // A reader that cannot tell a missing Secret from a missing key is taken at its word (found).
  const secretFound = reader.hasSecret ? await reader.hasSecret(ref) : true;
  return { secretFound, password: "" };
}
