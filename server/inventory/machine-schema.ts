import { isIP } from "node:net";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { type FormatSpec, MACHINE_FORMATS } from "./formats.js";
import { API_VERSION, type Machine } from "./types.js";

/**
 * JSON Schema of a Machine document, derived from the upstream CRD
 * (deploy/machina/crd/unbounded-cloud.io_machines.yaml, spec §2.1/§2.5) plus our stricter
 * string formats (§12 item 11). CRD defaults are applied with ajv `useDefaults`, which, like
 * Kubernetes structural defaulting, fills a property only inside an object that is present.
 *
 * CRD quirk kept on purpose (§12 item 6): `passwordRef.key` defaults to `ssh-privatekey`,
 * because upstream shares one SecretKeySelector type between SSH keys and BMC passwords.
 * Existing Machines written against upstream get the same Secret key they get there.
 *
 * Unknown fields are refused under `spec.pxe` (a typo there silently breaks booting);
 * elsewhere they are carried, as newer upstream versions add fields.
 */

/**
 * Every string a template can see is checked (issue 5 §4.2): identifiers as the Kubernetes API
 * checks them, free text without control characters, so no Machine field can end a GRUB line,
 * a kernel argument or a YAML scalar (a namespace "a\nmenuentry ..." added a boot entry).
 * C0, DEL and C1 are refused (Go's unicode.IsControl).
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const DNS1123_SUBDOMAIN_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
/** A host name label (RFC 1123; BMC names are often upper-case, which DNS ignores). */
const HOST_LABEL = /^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$/;

/** A Kubernetes label or annotation key: `[prefix/]name`, prefix a DNS-1123 subdomain, name ≤ 63. */
export function isQualifiedName(value: string): boolean {
  const slash = value.indexOf("/");
  const name = slash === -1 ? value : value.slice(slash + 1);
  if (slash !== -1) {
    const prefix = value.slice(0, slash);
    if (prefix === "" || prefix.length > 253 || !prefix.split(".").every((l) => DNS1123_SUBDOMAIN_LABEL.test(l)))
      return false;
  }
  return name.length <= 63 && QUALIFIED_NAME.test(name);
}

export function hasNoControlCharacters(value: string): boolean {
  return !CONTROL.test(value);
}

/** Formats added to the shared ones (server/inventory/formats.ts) for §4.2. */
const TEMPLATE_SAFE_FORMATS: Record<string, FormatSpec> = {
  text: { check: hasNoControlCharacters, message: "must not contain control characters (newline, tab, NUL, ...)" },
  "qualified-name": {
    check: isQualifiedName,
    message:
      "must be a Kubernetes key: an optional DNS-1123 prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric",
  },
  "bmc-host": {
    check: (v) => isIP(v) !== 0 || (v.length <= 253 && v.split(".").every((l) => HOST_LABEL.test(l))),
    message: "must be an IPv4 or IPv6 address or a DNS name like bmc-01.example.com",
  },
  "secret-key": {
    check: (v) => v.length <= 253 && SECRET_KEY.test(v),
    message: "must be a Secret/ConfigMap key: letters, digits, '-', '_' or '.'",
  },
};

const FORMATS: Record<string, FormatSpec> = { ...MACHINE_FORMATS, ...TEMPLATE_SAFE_FORMATS };

/** Free text a template may interpolate: no control characters. */
const str = { type: "string", format: "text" } as const;
/** Multi-line by nature (a PEM key, a condition message): carried, but templates must not put it on a command line. */
const multiline = { type: "string" } as const;
const fmt = (format: string) => ({ type: "string", format }) as const;
const labelMap = {
  type: "object",
  propertyNames: { format: "qualified-name" },
  additionalProperties: fmt("label-value"),
} as const;

function secretKeySelector(defaultKey: string) {
  return {
    type: "object",
    required: ["name", "namespace"],
    additionalProperties: false,
    properties: {
      name: fmt("dns1123-subdomain"),
      namespace: fmt("dns1123-label"),
      key: { type: "string", format: "secret-key", default: defaultKey },
    },
  } as const;
}

const download = {
  type: "object",
  properties: { baseURL: str, url: str, version: str },
} as const;

const counters = {
  type: "object",
  properties: {
    rebootCounter: { type: "integer", minimum: 0, default: 0 },
    repaveCounter: { type: "integer", minimum: 0, default: 0 },
  },
} as const;

export const MACHINE_JSON_SCHEMA = {
  type: "object",
  required: ["apiVersion", "kind", "metadata", "spec"],
  additionalProperties: false,
  properties: {
    apiVersion: { const: API_VERSION },
    kind: { const: "Machine" },
    metadata: {
      type: "object",
      required: ["name"],
      properties: {
        name: fmt("dns1123-subdomain"),
        namespace: fmt("dns1123-label"),
        labels: labelMap,
        annotations: { type: "object", propertyNames: { format: "qualified-name" }, additionalProperties: str },
        uid: str,
        resourceVersion: str,
        creationTimestamp: str,
      },
    },
    spec: {
      type: "object",
      properties: {
        ssh: {
          type: "object",
          required: ["host", "privateKeyRef"],
          properties: {
            host: { type: "string", format: "text", minLength: 1 },
            username: { type: "string", format: "text", default: "azureuser" },
            privateKeyRef: secretKeySelector("ssh-privatekey"),
            bastion: {
              type: "object",
              required: ["host"],
              properties: {
                host: { type: "string", format: "text", minLength: 1 },
                username: { type: "string", format: "text", default: "azureuser" },
                privateKeyRef: secretKeySelector("ssh-privatekey"),
              },
            },
          },
        },
        pxe: {
          type: "object",
          required: ["image"],
          additionalProperties: false,
          properties: {
            image: fmt("image-ref"),
            dhcpLeases: {
              type: "array",
              items: {
                type: "object",
                required: ["mac", "ipv4", "subnetMask", "gateway"],
                additionalProperties: false,
                properties: {
                  mac: fmt("mac"),
                  ipv4: fmt("ipv4"),
                  subnetMask: fmt("subnet-mask"),
                  gateway: fmt("ipv4"),
                  dns: { type: "array", items: fmt("ipv4") },
                },
              },
            },
            redfish: {
              type: "object",
              required: ["url", "username", "passwordRef"],
              additionalProperties: false,
              properties: {
                url: fmt("http-url"),
                // Required but may be "": an empty username means "no auth header" (§2.1).
                username: str,
                // Default "1"; an explicit "" asks for discovery of the first system (§2.1).
                deviceID: { type: "string", format: "text", default: "1" },
                passwordRef: secretKeySelector("ssh-privatekey"),
              },
            },
            // Ours (docs/bmc-ipmi.md): IPMI 2.0 over LAN for servers without Redfish.
            ipmi: {
              type: "object",
              required: ["host", "username", "passwordRef"],
              additionalProperties: false,
              properties: {
                host: fmt("bmc-host"),
                port: { type: "integer", minimum: 1, maximum: 65535, default: 623 },
                username: { type: "string", format: "text", maxLength: 16 },
                passwordRef: secretKeySelector("password"),
                cipherSuite: { type: "integer", minimum: 0, maximum: 17 },
                privilege: { enum: ["CALLBACK", "USER", "OPERATOR", "ADMINISTRATOR"], default: "ADMINISTRATOR" },
                bootMode: { enum: ["UEFI", "Legacy"] },
              },
            },
            cloudInit: {
              type: "object",
              additionalProperties: false,
              properties: { userDataConfigMapRef: secretKeySelector("user-data") },
            },
            architecture: { enum: ["amd64", "arm64"] },
            bootProtocol: { enum: ["PXE", "HTTP"] },
            netbootImage: fmt("image-ref"),
            targetDisk: str,
            pullSecretRef: {
              type: "object",
              required: ["name", "namespace"],
              additionalProperties: false,
              properties: { name: fmt("dns1123-subdomain"), namespace: fmt("dns1123-label") },
            },
          },
        },
        kubernetes: {
          type: "object",
          required: ["bootstrapTokenRef"],
          properties: {
            version: str,
            nodeRef: { type: "object", required: ["name"], properties: { name: fmt("dns1123-subdomain") } },
            nodeLabels: labelMap,
            registerWithTaints: { type: "array", items: str },
            bootstrapTokenRef: { type: "object", required: ["name"], properties: { name: fmt("dns1123-subdomain") } },
          },
        },
        agent: {
          type: "object",
          properties: {
            image: str,
            version: str,
            baseURL: str,
            url: str,
            downloads: {
              type: "object",
              properties: {
                kubernetes: download,
                containerd: download,
                runc: download,
                cni: download,
                crictl: download,
              },
            },
          },
        },
        operations: counters,
        provider: str,
        providerID: str,
      },
    },
    status: {
      type: "object",
      properties: {
        phase: str,
        message: str,
        redfish: { type: "object", properties: { certFingerprint: str } },
        tpm: { type: "object", properties: { ekPublicKey: multiline } },
        operations: counters,
        ssh: { type: "object", properties: { fingerprint: str } },
        agent: { type: "object", properties: { image: str } },
        conditions: {
          type: "array",
          items: {
            type: "object",
            required: ["type", "status"],
            properties: {
              type: { type: "string", format: "text", minLength: 1 },
              status: { enum: ["True", "False", "Unknown"] },
              reason: { type: "string", format: "text", default: "" },
              message: { type: "string", default: "" },
              observedGeneration: { type: "integer", minimum: 0 },
              lastTransitionTime: str,
            },
          },
        },
      },
    },
  },
} as const;

export type MachineValidation = { ok: true; machine: Machine } | { ok: false; errors: string[] };

/** Validates one parsed YAML document. Build one per inventory: compiling the schema is costly. */
export class MachineValidator {
  private readonly validateFn: ValidateFunction;

  constructor() {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true });
    for (const [name, spec] of Object.entries(FORMATS)) ajv.addFormat(name, spec.check);
    this.validateFn = ajv.compile(MACHINE_JSON_SCHEMA);
  }

  /**
   * `source` prefixes every message (`machines/node-01.yaml: spec.pxe.dhcpLeases[0].mac: …`).
   * The input is not modified; defaults are applied to a copy.
   */
  validate(document: unknown, source: string, now: Date = new Date()): MachineValidation {
    const doc = structuredClone(document);
    const errors: string[] = [];
    if (!this.validateFn(doc)) {
      for (const error of this.validateFn.errors ?? []) {
        const described = describeError(error);
        if (described !== "") errors.push(`${source}: ${described}`);
      }
    }
    if (errors.length === 0) errors.push(...semanticErrors(doc as Machine).map((e) => `${source}: ${e}`));
    if (errors.length > 0) return { ok: false, errors: [...new Set(errors)] };
    const machine = doc as Machine;
    // Conditions hand-written in a file (like the §2.4 example) may lack a transition time.
    for (const condition of machine.status?.conditions ?? []) {
      condition.lastTransitionTime ??= now.toISOString().replace(/\.\d{3}Z$/, "Z");
    }
    return { ok: true, machine };
  }
}

/** Checks JSON Schema cannot express: a MAC repeated within one Machine's leases; two BMCs. */
function semanticErrors(machine: Machine): string[] {
  const errors: string[] = [];
  if (machine.spec.pxe?.redfish && machine.spec.pxe.ipmi) {
    // One BMC per Machine: two would fight over power and boot device.
    errors.push("spec.pxe.ipmi: set either spec.pxe.redfish or spec.pxe.ipmi, not both");
  }
  const seen = new Map<string, number>();
  (machine.spec.pxe?.dhcpLeases ?? []).forEach((lease, i) => {
    const mac = lease.mac.toLowerCase();
    const first = seen.get(mac);
    if (first !== undefined) {
      errors.push(`spec.pxe.dhcpLeases[${i}].mac: duplicates spec.pxe.dhcpLeases[${first}].mac (${lease.mac})`);
    } else seen.set(mac, i);
  });
  return errors;
}

function describeError(error: ErrorObject): string {
  const at = jsonPointerToPath(error.instancePath);
  const join = (child: string) => (at ? `${at}.${child}` : child);
  switch (error.keyword) {
    case "propertyNames":
      // Summarises the "format" error on the key, which names it; described there.
      return "";
    case "required":
      return `${join(String(error.params.missingProperty))}: is required`;
    case "additionalProperties":
      return `${join(String(error.params.additionalProperty))}: unknown field`;
    case "format": {
      const spec = FORMATS[String(error.params.format)];
      const message = spec ? spec.message : (error.message ?? "is invalid");
      // A key checked by propertyNames: name it (`metadata.labels["a\nb"]: key must be ...`).
      if (error.propertyName !== undefined) return `${at}[${JSON.stringify(error.propertyName)}]: key ${message}`;
      return `${at}: ${message}`;
    }
    case "const":
      return `${at}: must be ${JSON.stringify(error.params.allowedValue)}`;
    case "enum":
      return `${at}: must be one of ${(error.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`;
    case "type":
      return `${at || "document"}: must be ${error.params.type === "object" ? "a mapping" : `a ${error.params.type}`}`;
    default:
      return `${at || "document"}: ${error.message ?? "is invalid"}`;
  }
}

/** `/spec/pxe/dhcpLeases/0/mac` → `spec.pxe.dhcpLeases[0].mac`. */
export function jsonPointerToPath(pointer: string): string {
  if (!pointer) return "";
  let out = "";
  for (const raw of pointer.slice(1).split("/")) {
    const part = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (/^\d+$/.test(part)) out += `[${part}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(part)) out += out ? `.${part}` : part;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}
