import { inspect } from "node:util";
import type { SecretReader } from "./secrets.js";
import type { SecretKeySelector } from "./types.js";

/**
 * Standalone `v1` Secrets and ConfigMaps: the manifests a user would `kubectl apply`, kept in the
 * inventory folder next to the Machines. `parseManifest` turns one YAML document into a
 * `ManifestObject`; `FileSecretStore` indexes the objects of every file and answers the
 * `SecretReader` interface. docs/bmc-redfish.md ("Secrets and ConfigMaps") is the long form.
 *
 * Values never appear in a problem message, a log line or `JSON.stringify`/`inspect` output of
 * these objects: messages name the file, the object and the key, never the value.
 */
export type ManifestKind = "Secret" | "ConfigMap";

export interface ManifestObject {
  kind: ManifestKind;
  namespace: string;
  name: string;
  /** Where it came from, for messages: `inventory/bmc.yaml (document 2)`. */
  where: string;
  /** Decoded values. Secrets: `data` (base64) overlaid by `stringData`; ConfigMaps: `data` and `binaryData`. */
  values: ReadonlyMap<string, Buffer>;
}

/** The CRD default of `passwordRef.key` (spec §2.1). */
export { DEFAULT_PASSWORD_KEY } from "./secrets.js";

/** The namespace `kubectl apply` uses for a manifest without one. */
export const DEFAULT_NAMESPACE = "default";

/** Kubernetes' rule for Secret and ConfigMap keys (IsConfigMapKey). */
const KEY = /^[-._a-zA-Z0-9]+$/;
/** Standard base64 with padding, as the API server requires for `data`. Whitespace (a folded YAML scalar) is allowed. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** A document of kind Secret or ConfigMap (any apiVersion: a wrong one is reported, not ignored). */
export function isManifestDocument(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const kind = (value as Record<string, unknown>).kind;
  return kind === "Secret" || kind === "ConfigMap";
}

/**
 * Validates and decodes one Secret or ConfigMap document. Problems name fields and keys only.
 */
export function parseManifest(
  value: Record<string, unknown>,
  where: string,
): { object?: ManifestObject; problems: string[] } {
  const kind = value.kind as ManifestKind;
  const problems: string[] = [];
  if (value.apiVersion !== "v1") problems.push(`${where}: ${kind}: apiVersion must be "v1"`);
  const metadata = value.metadata;
  let name = "";
  let namespace = DEFAULT_NAMESPACE;
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
    problems.push(`${where}: ${kind}: metadata is required`);
  } else {
    const meta = metadata as Record<string, unknown>;
    if (typeof meta.name !== "string" || !DNS_SUBDOMAIN.test(meta.name)) {
      problems.push(`${where}: ${kind}: metadata.name must be a DNS subdomain`);
    } else name = meta.name;
    if (meta.namespace !== undefined) {
      if (typeof meta.namespace !== "string" || !DNS_LABEL.test(meta.namespace)) {
        problems.push(`${where}: ${kind} ${name}: metadata.namespace must be a DNS label`);
      } else namespace = meta.namespace;
    }
  }
  const label = `${where}: ${kind} ${namespace}/${name}`;
  const values = new Map<string, Buffer>();
  const section = (field: string, decode: "base64" | "text") => {
    const raw = value[field];
    if (raw === undefined || raw === null) return;
    if (typeof raw !== "object" || Array.isArray(raw)) {
      problems.push(`${label}: ${field} must be a map of keys to strings`);
      return;
    }
    for (const [key, v] of Object.entries(raw as Record<string, unknown>)) {
      if (!KEY.test(key)) {
        problems.push(`${label}: ${field}: key ${JSON.stringify(key.slice(0, 64))} is not a valid key`);
        continue;
      }
      // Never echo the value, not even its type's rendering: "must be a string" is enough.
      if (typeof v !== "string") {
        problems.push(`${label}: ${field}.${key} must be a string (quote it)`);
        continue;
      }
      if (decode === "base64") {
        const compact = v.replace(/\s+/g, "");
        if (!BASE64.test(compact)) {
          problems.push(`${label}: ${field}.${key} is not valid base64`);
          continue;
        }
        values.set(key, Buffer.from(compact, "base64"));
      } else {
        values.set(key, Buffer.from(v, "utf8"));
      }
    }
  };
  if (kind === "Secret") {
    section("data", "base64");
    // The API server merges stringData over data (stringData wins).
    section("stringData", "text");
  } else {
    section("data", "text");
    section("binaryData", "base64");
  }
  if (problems.length > 0) {
    for (const v of values.values()) v.fill(0);
    return { problems };
  }
  return { object: sealed({ kind, namespace, name, where, values }), problems };
}

/** Keeps values out of `JSON.stringify`, `util.inspect` and therefore out of pino lines. */
function sealed(object: ManifestObject): ManifestObject {
  const describe = () => ({
    kind: object.kind,
    namespace: object.namespace,
    name: object.name,
    where: object.where,
    keys: [...object.values.keys()],
  });
  Object.defineProperty(object, "toJSON", { value: describe, enumerable: false });
  Object.defineProperty(object, inspect.custom, { value: () => describe(), enumerable: false });
  return object;
}

/** The objects one file yields. */
export interface ManifestFile {
  file: string;
  objects: readonly ManifestObject[];
}

/**
 * `SecretReader` over the inventory folder's manifests. `replace` swaps the whole index after a
 * reload; the first definition of a `namespace/name` (in file order) wins, later ones are
 * reported by `conflicts()`.
 */
export class FileSecretStore implements SecretReader {
  private secrets = new Map<string, ManifestObject>();
  private configMaps = new Map<string, ManifestObject>();
  private duplicates: Array<{ file: string; message: string }> = [];

  /** `files` sorted by path, as the inventory composes Machines. */
  replace(files: readonly ManifestFile[]): void {
    const secrets = new Map<string, ManifestObject>();
    const configMaps = new Map<string, ManifestObject>();
    const duplicates: Array<{ file: string; message: string }> = [];
    for (const { file, objects } of files) {
      for (const object of objects) {
        const index = object.kind === "Secret" ? secrets : configMaps;
        const id = `${object.namespace}/${object.name}`;
        const first = index.get(id);
        if (first) {
          duplicates.push({
            file,
            message: `${object.where}: ${object.kind} ${id} is also defined in ${first.where}; using that one`,
          });
          continue;
        }
        index.set(id, object);
      }
    }
    this.secrets = secrets;
    this.configMaps = configMaps;
    this.duplicates = duplicates;
  }

  conflicts(): Array<{ file: string; message: string }> {
    return [...this.duplicates];
  }

  /** Names only (`namespace/name`), for diagnostics. */
  names(kind: ManifestKind): string[] {
    return [...(kind === "Secret" ? this.secrets : this.configMaps).keys()].sort();
  }

  async secretValue(ref: SecretKeySelector, defaultNamespace?: string): Promise<Buffer | undefined> {
    return this.lookup(this.secrets, ref, defaultNamespace);
  }

  async configMapValue(ref: SecretKeySelector, defaultNamespace?: string): Promise<string | undefined> {
    return this.lookup(this.configMaps, ref, defaultNamespace)?.toString("utf8");
  }

  async hasSecret(ref: SecretKeySelector, defaultNamespace?: string): Promise<boolean> {
    const namespace = ref.namespace || defaultNamespace || DEFAULT_NAMESPACE;
    return this.secrets.has(`${namespace}/${ref.name}`);
  }

  async hasConfigMap(ref: SecretKeySelector, defaultNamespace?: string): Promise<boolean> {
    const namespace = ref.namespace || defaultNamespace || DEFAULT_NAMESPACE;
    return this.configMaps.has(`${namespace}/${ref.name}`);
  }

  private lookup(
    index: Map<string, ManifestObject>,
    ref: SecretKeySelector,
    defaultNamespace: string | undefined,
  ): Buffer | undefined {
    if (ref.key === undefined) return undefined;
    const namespace = ref.namespace || defaultNamespace || DEFAULT_NAMESPACE;
    const value = index.get(`${namespace}/${ref.name}`)?.values.get(ref.key);
    // A copy: a caller that zeroes or edits its buffer must not change the store.
    return value === undefined ? undefined : Buffer.from(value);
  }
}

/**
 * Whether the file's mode lets anyone but its owner read it. A Secret file must be 0600 or
 * 0400 (group and other bits clear of read): the appliance may share the box with other users,
 * and a group-readable BMC password is readable by every member of that group.
 */
export function readableByOthers(mode: number): boolean {
  return (mode & 0o044) !== 0;
}
