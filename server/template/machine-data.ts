/**
 * Machine (JSON field names, server/inventory/types.ts) → Go value tree shaped like upstream's
 * `*v1alpha3.Machine` (spec/metalman.md Appendix A), so templates see Go field names and Go
 * semantics: absent optional objects are nil pointers (field access through them is an exec
 * error, `if` on them is false), absent scalars are zero values, absent lists/maps are nil,
 * counters are int64, and ObjectMeta/TypeMeta fields are promoted onto the Machine.
 */
import { isQuarantined } from "../inventory/quarantine.js";
import type { Condition, Machine, SecretKeySelector } from "../inventory/types.js";
import {
  type GoMethod,
  type GoType,
  type GoValue,
  goString,
  mapOf,
  namedBasic,
  pointerTo,
  ptrTo,
  type StructField,
  sliceOf,
  structType,
  structValue,
  types,
  type Value,
  zeroValue,
} from "./go-values.js";

const str = types.string;
const i64 = types.int64;
const strings = sliceOf(str);
const stringMap = mapOf(str, str);

const f = (name: string, type: GoType, embedded = false): StructField => ({ name, type, embedded });

// metav1.Time -----------------------------------------------------------------------------

/** Hidden slot holding the RFC 3339 text of a metav1.Time (time.Time has no exported fields). */
const TIME_SLOT = "\u0000time";

function goTimeString(rfc3339: string): string {
  if (!rfc3339) return "0001-01-01 00:00:00 +0000 UTC";
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  // time.Time.String(): "2006-01-02 15:04:05.999999999 -0700 MST" (metav1 decodes into UTC here).
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  const frac = iso.slice(20, 23).replace(/0+$/, "");
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${frac ? `.${frac}` : ""} +0000 UTC`;
}

function timeText(v: GoValue): string {
  return ((v.v as Map<string, GoValue>).get(TIME_SLOT)?.v as string | undefined) ?? "";
}

const timeMethods: Record<string, GoMethod> = {
  String: { pointerReceiver: false, call: (r) => goString(goTimeString(timeText(r!))) },
  IsZero: { pointerReceiver: false, call: (r) => ({ type: types.bool, v: timeText(r!) === "" }) },
  Unix: {
    pointerReceiver: false,
    call: (r) => {
      const t = timeText(r!);
      return { type: i64, v: t ? Math.floor(new Date(t).getTime() / 1000) : -62135596800 };
    },
  },
};

const metaTime = structType("v1.Time", [], { methods: timeMethods, stringer: (v) => goTimeString(timeText(v)) });

function timeValue(rfc3339: string | undefined): GoValue {
  const v = zeroValue(metaTime);
  if (rfc3339) (v.v as Map<string, GoValue>).set(TIME_SLOT, goString(rfc3339));
  return v;
}

// Types -------------------------------------------------------------------------------------

const typeMeta = structType("v1.TypeMeta", [f("Kind", str), f("APIVersion", str)]);
const ownerReference = structType("v1.OwnerReference", [
  f("APIVersion", str),
  f("Kind", str),
  f("Name", str),
  f("UID", namedBasic("types.UID", "string")),
]);
const objectMeta = structType("v1.ObjectMeta", [
  f("Name", str),
  f("GenerateName", str),
  f("Namespace", str),
  f("SelfLink", str),
  f("UID", namedBasic("types.UID", "string")),
  f("ResourceVersion", str),
  f("Generation", i64),
  f("CreationTimestamp", metaTime),
  f("DeletionTimestamp", ptrTo(metaTime)),
  f("DeletionGracePeriodSeconds", ptrTo(i64)),
  f("Labels", stringMap),
  f("Annotations", stringMap),
  f("OwnerReferences", sliceOf(ownerReference)),
  f("Finalizers", strings),
]);
const condition = structType("v1.Condition", [
  f("Type", str),
  f("Status", namedBasic("v1.ConditionStatus", "string")),
  f("ObservedGeneration", i64),
  f("LastTransitionTime", metaTime),
  f("Reason", str),
  f("Message", str),
]);

const secretKeySelector = structType("v1alpha3.SecretKeySelector", [
  f("Name", str),
  f("Namespace", str),
  f("Key", str),
]);
const configMapKeySelector = structType("v1alpha3.ConfigMapKeySelector", [
  f("Name", str),
  f("Namespace", str),
  f("Key", str),
]);
const namespacedSecretRef = structType("v1alpha3.NamespacedSecretReference", [f("Name", str), f("Namespace", str)]);
const localObjectRef = structType("v1alpha3.LocalObjectReference", [f("Name", str)]);
const bastionSpec = structType("v1alpha3.BastionSSHSpec", [
  f("Host", str),
  f("Username", str),
  f("PrivateKeyRef", ptrTo(secretKeySelector)),
]);
const sshSpec = structType("v1alpha3.SSHSpec", [
  f("Host", str),
  f("Username", str),
  f("PrivateKeyRef", secretKeySelector),
  f("Bastion", ptrTo(bastionSpec)),
]);
const dhcpLease = structType("v1alpha3.DHCPLease", [
  f("IPv4", str),
  f("MAC", str),
  f("SubnetMask", str),
  f("Gateway", str),
  f("DNS", strings),
]);
const redfishSpec = structType("v1alpha3.RedfishSpec", [
  f("URL", str),
  f("Username", str),
  f("DeviceID", str),
  f("PasswordRef", secretKeySelector),
]);
const cloudInitSpec = structType("v1alpha3.CloudInitSpec", [f("UserDataConfigMapRef", ptrTo(configMapKeySelector))]);

/** Nil-safe pointer-receiver helpers (later upstream): the effective defaults. */
function pxeDefaulted(field: string, def: string): GoMethod {
  return {
    pointerReceiver: true,
    call: (r) => {
      const v = r === null ? "" : ((r.v as Map<string, GoValue>).get(field)!.v as string);
      return goString(v || def);
    },
  };
}

const pxeSpec = structType(
  "v1alpha3.PXESpec",
  [
    f("Image", str),
    f("DHCPLeases", sliceOf(dhcpLease)),
    f("Redfish", ptrTo(redfishSpec)),
    f("CloudInit", ptrTo(cloudInitSpec)),
    f("Architecture", str),
    f("BootProtocol", str),
    f("NetbootImage", str),
    f("TargetDisk", str),
    f("PullSecretRef", ptrTo(namespacedSecretRef)),
  ],
  {
    methods: {
      TargetArchitecture: pxeDefaulted("Architecture", "amd64"),
      TargetBootProtocol: pxeDefaulted("BootProtocol", "PXE"),
    },
  },
);
const kubernetesSpec = structType("v1alpha3.KubernetesSpec", [
  f("Version", str),
  f("NodeRef", ptrTo(localObjectRef)),
  f("NodeLabels", stringMap),
  f("RegisterWithTaints", strings),
  f("BootstrapTokenRef", localObjectRef),
]);
const downloadSource = structType("v1alpha3.DownloadSource", [f("BaseURL", str), f("URL", str), f("Version", str)]);
const agentDownloads = structType("v1alpha3.AgentDownloadsSpec", [
  f("Kubernetes", ptrTo(downloadSource)),
  f("Containerd", ptrTo(downloadSource)),
  f("Runc", ptrTo(downloadSource)),
  f("CNI", ptrTo(downloadSource)),
  f("Crictl", ptrTo(downloadSource)),
]);
const agentSpec = structType("v1alpha3.AgentSpec", [
  f("Image", str),
  f("Version", str),
  f("BaseURL", str),
  f("URL", str),
  f("Downloads", ptrTo(agentDownloads)),
]);
const operationsSpec = structType("v1alpha3.OperationsSpec", [f("RebootCounter", i64), f("RepaveCounter", i64)]);
const machineSpec = structType("v1alpha3.MachineSpec", [
  f("SSH", ptrTo(sshSpec)),
  f("PXE", ptrTo(pxeSpec)),
  f("Kubernetes", ptrTo(kubernetesSpec)),
  f("Agent", ptrTo(agentSpec)),
  f("Operations", ptrTo(operationsSpec)),
  f("Provider", str),
  f("ProviderID", str),
]);

const operationsStatus = structType("v1alpha3.OperationsStatus", [f("RebootCounter", i64), f("RepaveCounter", i64)]);
const machineStatus = structType("v1alpha3.MachineStatus", [
  f("Phase", namedBasic("v1alpha3.MachinePhase", "string")),
  f("Message", str),
  f("SSH", ptrTo(structType("v1alpha3.SSHStatus", [f("Fingerprint", str)]))),
  f("Redfish", ptrTo(structType("v1alpha3.RedfishStatus", [f("CertFingerprint", str)]))),
  f("TPM", ptrTo(structType("v1alpha3.TPMStatus", [f("EKPublicKey", str)]))),
  f("Agent", ptrTo(structType("v1alpha3.AgentStatus", [f("Image", str)]))),
  f("Operations", ptrTo(operationsStatus)),
  f("Conditions", sliceOf(condition)),
]);

/** Promoted ObjectMeta getters (pointer receivers in Go; .Machine is a pointer). */
function metaGetter(field: string): GoMethod {
  return {
    pointerReceiver: true,
    call: (r) => ((r!.v as Map<string, GoValue>).get("ObjectMeta")!.v as Map<string, GoValue>).get(field)!,
  };
}

const machineType = structType(
  "v1alpha3.Machine",
  [
    f("TypeMeta", typeMeta, true),
    f("ObjectMeta", objectMeta, true),
    f("Spec", machineSpec),
    f("Status", machineStatus),
  ],
  {
    methods: {
      GetName: metaGetter("Name"),
      GetNamespace: metaGetter("Namespace"),
      GetLabels: metaGetter("Labels"),
      GetAnnotations: metaGetter("Annotations"),
      GetUID: metaGetter("UID"),
      GetGeneration: metaGetter("Generation"),
      GetResourceVersion: metaGetter("ResourceVersion"),
    },
  },
);

/** The Go type of `.Machine`. */
export const MACHINE_POINTER_TYPE: GoType = ptrTo(machineType);

// Values ------------------------------------------------------------------------------------

function fieldType(t: GoType, name: string): GoType {
  if (t.kind !== "struct") throw new TypeError(`${t.name} is not a struct`);
  const fd = t.fields.find((x) => x.name === name);
  if (!fd) throw new TypeError(`${t.name} has no field ${name}`);
  return fd.type;
}

const s = (x: string | undefined): GoValue | undefined => (x === undefined ? undefined : goString(x));
const n64 = (x: number | undefined): GoValue | undefined => (x === undefined ? undefined : { type: i64, v: x });

function strList(xs: readonly string[] | undefined): GoValue | undefined {
  return xs === undefined ? undefined : { type: strings, v: xs.map((x) => goString(x)) };
}

function strMap(m: Readonly<Record<string, string>> | undefined): GoValue | undefined {
  if (m === undefined) return undefined;
  return { type: stringMap, v: new Map(Object.entries(m).map(([k, x]) => [k, goString(x)])) };
}

/** A pointer field: nil when the JSON object is absent. */
function ptr<T>(
  owner: GoType,
  field: string,
  src: T | undefined,
  build: (x: T, t: GoType) => GoValue,
): GoValue | undefined {
  if (src === undefined || src === null) return undefined;
  const pt = fieldType(owner, field);
  if (pt.kind !== "ptr") throw new TypeError(`${owner.name}.${field} is not a pointer`);
  return pointerTo(pt, build(src, pt.elem));
}

function selector(t: GoType, sel: Partial<SecretKeySelector>): GoValue {
  return structValue(t, { Name: s(sel.name), Namespace: s(sel.namespace), Key: s(sel.key) });
}

function conditionValue(c: Condition): GoValue {
  return structValue(condition, {
    Type: s(c.type),
    Status: { type: fieldType(condition, "Status"), v: c.status ?? "" },
    ObservedGeneration: n64(c.observedGeneration),
    LastTransitionTime: timeValue(c.lastTransitionTime),
    Reason: s(c.reason),
    Message: s(c.message),
  });
}

function specValue(m: Machine): GoValue {
  const spec = m.spec ?? {};
  const pxe = ptr(machineSpec, "PXE", spec.pxe, (p, t) =>
    structValue(t, {
      Image: s(p.image),
      DHCPLeases:
        p.dhcpLeases === undefined
          ? undefined
          : {
              type: fieldType(t, "DHCPLeases"),
              v: p.dhcpLeases.map((l) =>
                structValue(dhcpLease, {
                  IPv4: s(l.ipv4),
                  MAC: s(l.mac),
                  SubnetMask: s(l.subnetMask),
                  Gateway: s(l.gateway),
                  DNS: strList(l.dns),
                }),
              ),
            },
      Redfish: ptr(t, "Redfish", p.redfish, (r, rt) =>
        structValue(rt, {
          URL: s(r.url),
          Username: s(r.username),
          DeviceID: s(r.deviceID),
          PasswordRef: selector(secretKeySelector, r.passwordRef ?? {}),
        }),
      ),
      CloudInit: ptr(t, "CloudInit", p.cloudInit, (c, ct) =>
        structValue(ct, {
          UserDataConfigMapRef: ptr(ct, "UserDataConfigMapRef", c.userDataConfigMapRef, (sel, st) => selector(st, sel)),
        }),
      ),
      Architecture: s(p.architecture),
      BootProtocol: s(p.bootProtocol),
      NetbootImage: s(p.netbootImage),
      TargetDisk: s(p.targetDisk),
      PullSecretRef: ptr(t, "PullSecretRef", p.pullSecretRef, (r, rt) =>
        structValue(rt, { Name: s(r.name), Namespace: s(r.namespace) }),
      ),
    }),
  );
  const ssh = ptr(machineSpec, "SSH", spec.ssh, (x, t) =>
    structValue(t, {
      Host: s(x.host),
      Username: s(x.username),
      PrivateKeyRef: selector(secretKeySelector, x.privateKeyRef ?? {}),
      Bastion: ptr(t, "Bastion", x.bastion, (b, bt) =>
        structValue(bt, {
          Host: s(b.host),
          Username: s(b.username),
          PrivateKeyRef: ptr(bt, "PrivateKeyRef", b.privateKeyRef, (k, kt) => selector(kt, k)),
        }),
      ),
    }),
  );
  const kubernetes = ptr(machineSpec, "Kubernetes", spec.kubernetes, (k, t) =>
    structValue(t, {
      Version: s(k.version),
      NodeRef: ptr(t, "NodeRef", k.nodeRef, (r, rt) => structValue(rt, { Name: s(r.name) })),
      NodeLabels: strMap(k.nodeLabels),
      RegisterWithTaints: strList(k.registerWithTaints),
      BootstrapTokenRef: structValue(localObjectRef, { Name: s(k.bootstrapTokenRef?.name) }),
    }),
  );
  const agent = ptr(machineSpec, "Agent", spec.agent, (a, t) =>
    structValue(t, {
      Image: s(a.image),
      Version: s(a.version),
      BaseURL: s(a.baseURL),
      URL: s(a.url),
      Downloads: ptr(t, "Downloads", a.downloads, (d, dt) => {
        const src = (key: keyof typeof d, field: string) =>
          ptr(dt, field, d[key], (x, xt) =>
            structValue(xt, { BaseURL: s(x.baseURL), URL: s(x.url), Version: s(x.version) }),
          );
        return structValue(dt, {
          Kubernetes: src("kubernetes", "Kubernetes"),
          Containerd: src("containerd", "Containerd"),
          Runc: src("runc", "Runc"),
          CNI: src("cni", "CNI"),
          Crictl: src("crictl", "Crictl"),
        });
      }),
    }),
  );
  const operations = ptr(machineSpec, "Operations", spec.operations, (o, t) =>
    structValue(t, { RebootCounter: n64(o.rebootCounter), RepaveCounter: n64(o.repaveCounter) }),
  );
  return structValue(machineSpec, {
    SSH: ssh,
    PXE: pxe,
    Kubernetes: kubernetes,
    Agent: agent,
    Operations: operations,
    Provider: s(spec.provider),
    ProviderID: s(spec.providerID),
  });
}

/**
 * Templates decide "repave pending" as `spec.operations.repaveCounter > status.operations.repaveCounter`
 * (the disk templates of netboot-images, and upstream images do the same). A quarantined Machine lost its
 * status counters with its state file, so that test would offer the install and wipe the disk:
 * templates see its completed counter raised to the requested one (no repave pending), and the
 * StateQuarantined condition in `.Machine.Status.Conditions`.
 */
function templateStatus(m: Machine): NonNullable<Machine["status"]> {
  const st = m.status ?? {};
  if (!isQuarantined(m)) return st;
  const requested = m.spec?.operations?.repaveCounter ?? 0;
  const completed = st.operations?.repaveCounter ?? 0;
  return { ...st, operations: { ...st.operations, repaveCounter: Math.max(requested, completed) } };
}

function statusValue(m: Machine): GoValue {
  const st = templateStatus(m);
  const simple = (field: string, src: Record<string, string | undefined> | undefined, goField: string, key: string) =>
    ptr(machineStatus, field, src, (x, t) => structValue(t, { [goField]: s(x[key]) }));
  return structValue(machineStatus, {
    Phase: st.phase === undefined ? undefined : { type: fieldType(machineStatus, "Phase"), v: st.phase },
    Message: s(st.message),
    SSH: simple("SSH", st.ssh, "Fingerprint", "fingerprint"),
    Redfish: simple("Redfish", st.redfish, "CertFingerprint", "certFingerprint"),
    TPM: simple("TPM", st.tpm, "EKPublicKey", "ekPublicKey"),
    Agent: simple("Agent", st.agent, "Image", "image"),
    Operations: ptr(machineStatus, "Operations", st.operations, (o, t) =>
      structValue(t, { RebootCounter: n64(o.rebootCounter), RepaveCounter: n64(o.repaveCounter) }),
    ),
    Conditions:
      st.conditions === undefined
        ? undefined
        : { type: fieldType(machineStatus, "Conditions"), v: st.conditions.map(conditionValue) },
  });
}

/** `*v1alpha3.Machine` for `machine`. */
export function machineToGoValue(machine: Machine): GoValue {
  const md = machine.metadata;
  const meta = structValue(objectMeta, {
    Name: s(md.name),
    Namespace: s(md.namespace),
    UID: md.uid === undefined ? undefined : { type: fieldType(objectMeta, "UID"), v: md.uid },
    ResourceVersion: s(md.resourceVersion),
    Generation: n64(md.generation),
    CreationTimestamp: timeValue(md.creationTimestamp),
    Labels: strMap(md.labels),
    Annotations: strMap(md.annotations),
  });
  const value = structValue(machineType, {
    TypeMeta: structValue(typeMeta, { Kind: s(machine.kind), APIVersion: s(machine.apiVersion) }),
    ObjectMeta: meta,
    Spec: specValue(machine),
    Status: statusValue(machine),
  });
  return pointerTo(MACHINE_POINTER_TYPE, value);
}

/** Upstream's template data struct: exactly these four fields exist (spec §5.5). */
const templateDataType = structType("netboot.templateData", [
  f("Machine", MACHINE_POINTER_TYPE),
  f("ApiserverURL", str),
  f("ServeURL", str),
  f("AgentConfigJSON", str),
]);

export interface TemplateDataInput {
  readonly machine: Machine;
  readonly apiserverUrl: string;
  readonly serveUrl: string;
  readonly agentConfigJSON: string;
}

/** Dot for machine templates: `.Machine`, `.ApiserverURL`, `.ServeURL`, `.AgentConfigJSON`. */
export function buildTemplateData(input: TemplateDataInput): Value {
  return structValue(templateDataType, {
    Machine: machineToGoValue(input.machine),
    ApiserverURL: goString(input.apiserverUrl),
    ServeURL: goString(input.serveUrl),
    AgentConfigJSON: goString(input.agentConfigJSON),
  });
}
