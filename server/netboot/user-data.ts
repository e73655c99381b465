import type { SecretReader } from "../inventory/secrets.js";
import type { Machine } from "../inventory/types.js";

/** Spec §5.6: the key a `userDataConfigMapRef` without one names. */
export const USER_DATA_KEY = "user-data";

/**
 * `cloud-init/user-data` from the Machine's `spec.pxe.cloudInit.userDataConfigMapRef` (spec §5.6):
 * no reference or no such ConfigMap → undefined (the resolver answers `#cloud-config\n`); the
 * ConfigMap without the key → an error (404, "the machine will not receive user-data"); else the
 * value verbatim. Standalone the ConfigMap is a manifest in the inventory folder.
 */
export function userDataFromConfigMaps(secrets: SecretReader): (machine: Machine) => Promise<Buffer | undefined> {
  return async (machine) => {
    const ref = machine.spec.pxe?.cloudInit?.userDataConfigMapRef;
    if (!ref) return undefined;
    const key = ref.key ?? USER_DATA_KEY;
    const namespace = ref.namespace || machine.metadata.namespace || "default";
    const value = await secrets.configMapValue({ ...ref, key }, namespace);
    if (value !== undefined) return Buffer.from(value, "utf8");
    if (secrets.hasConfigMap && (await secrets.hasConfigMap(ref, namespace))) {
      throw new Error(`ConfigMap ${namespace}/${ref.name} has no key ${key}`);
    }
    return undefined;
  };
}
