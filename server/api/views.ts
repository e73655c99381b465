/**
 * What the management API shows of a Machine and a MachineOperation. Never a secret: the API
 * holds no SecretReader (it cannot read a password or token even by mistake), and what the
 * objects themselves carry is scrubbed here:
 * - keys that name a secret (`password`, `token`, `secret`, `credential`, `privateKey`...)
 *   are dropped at any depth, unless they are references (`passwordRef`: name/namespace/key);
 * - URLs lose their user-info (`https://user:pass@bmc`) and their query (SAS-style tokens);
 * - `kubectl.kubernetes.io/last-applied-configuration` is dropped (a copy of the whole file).
 * The rule is by key and by shape, so fields that later rooms add to status are covered too.
 */
import type { MachineBackend, MachineOperation, Quarantine } from "../inventory/backend.js";
import { isQuarantined } from "../inventory/backend.js";
import { findCondition } from "../inventory/conditions.js";
import { type Condition, type Machine, SITE_LABEL } from "../inventory/types.js";

/** The newest event of a Machine, as a list row shows it. */
export interface LastEvent {
  seq: number;
  time: string;
  step: string;
  result: string;
  reason?: string;
}

const SECRET_KEY = /pass(word|wd|phrase)?$|secret|token|credential|private.?key|api.?key|^auth$|authorization|cookie/i;
const REFERENCE_KEY = /Refs?$/;
const DROPPED_ANNOTATIONS = new Set(["kubectl.kubernetes.io/last-applied-configuration"]);

/** Deep copy without secret-named keys, with URLs scrubbed. */
export function scrub(value: unknown): unknown {
  if (typeof value === "string") return scrubUrl(value);
  if (Array.isArray(value)) return value.map(scrub);
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    if (SECRET_KEY.test(key) && !REFERENCE_KEY.test(key)) continue;
    out[key] = scrub(item);
  }
  return out;
}

function scrubUrl(value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  try {
    const url = new URL(value);
    if (url.username === "" && url.password === "" && url.search === "") return value;
    url.username = "";
    url.password = "";
    const redacted = url.search === "" ? "" : "?REDACTED";
    url.search = "";
    return url.toString() + redacted;
  } catch {
    return value;
  }
}

export type BmcKind = "redfish" | "ipmi" | "none";

export interface BmcSummary {
  kind: BmcKind;
  /** Redfish URL (scrubbed) or IPMI host, when configured. */
  address?: string;
  /** The pinned SHA-256 of the BMC's certificate (Redfish TOFU), when pinned. */
  certFingerprint?: string;
}

/** The BMC a Machine is reached through. `spec.pxe.ipmi` is read loosely: its schema belongs to the IPMI room. */
export function bmcOf(machine: Machine): BmcSummary {
  const pxe = machine.spec.pxe as
    | (Machine["spec"]["pxe"] & { ipmi?: { host?: unknown; address?: unknown } })
    | undefined;
  if (pxe?.redfish) {
    const summary: BmcSummary = { kind: "redfish", address: scrubUrl(pxe.redfish.url) };
    const pin = machine.status?.redfish?.certFingerprint;
    if (pin) summary.certFingerprint = pin;
    return summary;
  }
  if (pxe?.ipmi && typeof pxe.ipmi === "object") {
    const host = pxe.ipmi.host ?? pxe.ipmi.address;
    return typeof host === "string" ? { kind: "ipmi", address: host } : { kind: "ipmi" };
  }
  return { kind: "none" };
}

/**
 * The power state as last written into status by the BMC flows (`status.power.state`, or
 * `status.redfish.powerState`), else what the `PoweredOff` condition says, else "Unknown".
 */
export function powerOf(machine: Machine): string {
  const status = machine.status as (Machine["status"] & Record<string, unknown>) | undefined;
  const power = status?.power as { state?: unknown } | undefined;
  if (typeof power?.state === "string") return power.state;
  const redfish = status?.redfish as { powerState?: unknown } | undefined;
  if (typeof redfish?.powerState === "string") return redfish.powerState;
  const off = findCondition(machine.status?.conditions, "PoweredOff");
  if (off?.status === "True") return off.reason === "PoweringOn" ? "PoweringOn" : "Off";
  if (off?.status === "False" && off.reason === "PoweringOff") return "PoweringOff";
  return "Unknown";
}

export const TERMINAL_PHASES: ReadonlySet<string> = new Set(["Complete", "Failed"]);

export function isTerminal(operation: MachineOperation): boolean {
  return TERMINAL_PHASES.has(operation.status?.phase ?? "");
}

/** Operations that name this Machine: by machineRef, or as a snapshotted target of a selector. */
export function operationsFor(backend: MachineBackend, name: string): MachineOperation[] {
  return backend.operations
    .list()
    .filter(
      (op) => op.spec.machineRef === name || (op.status?.targets ?? []).some((target) => target.machineRef === name),
    );
}

export interface OperationSummary {
  name: string;
  kind: string;
  phase: string;
  stage?: string;
  message?: string;
  createdAt?: string;
  requestedBy?: string;
}

export const REQUESTED_BY = "metalman.io/requested-by";
export const REQUESTED_VIA = "metalman.io/requested-via";

export function operationSummary(operation: MachineOperation, machine?: string): OperationSummary {
  const target = (operation.status?.targets ?? []).find((t) => t.machineRef === (machine ?? operation.spec.machineRef));
  const summary: OperationSummary = {
    name: operation.metadata.name,
    kind: operation.spec.operationKind,
    phase: target?.phase ?? operation.status?.phase ?? "Pending",
  };
  if (target?.stage) summary.stage = target.stage;
  const message = target?.message ?? operation.status?.message;
  if (message) summary.message = message;
  if (operation.metadata.creationTimestamp) summary.createdAt = operation.metadata.creationTimestamp;
  const by = operation.metadata.annotations?.[REQUESTED_BY];
  if (by) summary.requestedBy = by;
  return summary;
}

/** One row of `GET /machines`. */
export interface MachineSummary {
  name: string;
  phase: string;
  image?: string;
  bmc: BmcKind;
  power: string;
  repavePending: boolean;
  quarantined: boolean;
  /** The newest operation on this Machine that has not finished. */
  activeOperation?: OperationSummary;
  conditions: Array<Pick<Condition, "type" | "status" | "reason">>;
  /** The `unbounded-cloud.io/site` label ("" without one). */
  site: string;
  /** The first DHCP lease's address and MAC. */
  ip?: string;
  mac?: string;
  lastEvent?: LastEvent;
  /** Phase Failed, or the newest event is an error. */
  failed: boolean;
  /** Words an operator can act on: the status message of a failed Machine, or what the failing event says. */
  failureReason?: string;
}

/** "tftp.transfer: not-found (grub/grubx64.efi)": step, reason and the detail that names what. */
export function describeFailure(event: {
  step: string;
  result: string;
  reason?: string;
  detail?: Readonly<Record<string, unknown>>;
}): string {
  const detail = event.detail ?? {};
  const what = ["file", "path", "image", "message", "error"]
    .map((key) => detail[key])
    .find((v): v is string => typeof v === "string" && v !== "");
  return `${event.step}: ${event.reason ?? event.result}${what ? ` (${scrubUrl(what)})` : ""}`;
}

export function machineSummary(
  machine: Machine,
  operations: MachineOperation[],
  last?: LastEvent & { detail?: Readonly<Record<string, unknown>> },
): MachineSummary {
  const spec = machine.spec;
  const status = machine.status;
  const active = operations.filter((op) => !isTerminal(op)).at(-1);
  const summary: MachineSummary = {
    name: machine.metadata.name,
    phase: status?.phase ?? "",
    bmc: bmcOf(machine).kind,
    power: powerOf(machine),
    // A quarantined Machine is served no install entry (docs/backend-contract.md): nothing is pending.
    repavePending:
      !isQuarantined(machine) && (spec.operations?.repaveCounter ?? 0) > (status?.operations?.repaveCounter ?? 0),
    quarantined: isQuarantined(machine),
    conditions: (status?.conditions ?? []).map((c) => ({ type: c.type, status: c.status, reason: c.reason })),
    site: machine.metadata.labels?.[SITE_LABEL] ?? "",
    failed: status?.phase === "Failed" || last?.result === "error",
  };
  const lease = spec.pxe?.dhcpLeases?.[0];
  if (lease?.ipv4) summary.ip = lease.ipv4;
  if (lease?.mac) summary.mac = lease.mac.toLowerCase();
  if (last) {
    summary.lastEvent = { seq: last.seq, time: last.time, step: last.step, result: last.result };
    if (last.reason !== undefined) summary.lastEvent.reason = last.reason;
  }
  if (status?.phase === "Failed") summary.failureReason = status.message || "phase Failed";
  else if (last?.result === "error") summary.failureReason = describeFailure(last);
  if (spec.pxe?.image) summary.image = scrubUrl(spec.pxe.image);
  if (active) summary.activeOperation = operationSummary(active, machine.metadata.name);
  return summary;
}

/** `GET /machines/NAME`: the object (scrubbed) plus the summary, the quarantine and the operations. */
export interface MachineDetail extends MachineSummary {
  metadata: Record<string, unknown>;
  spec: unknown;
  status: unknown;
  bmcDetail: BmcSummary;
  quarantine?: Omit<Quarantine, "machine">;
  operations: OperationSummary[];
}

export function machineDetail(
  machine: Machine,
  operations: MachineOperation[],
  quarantine?: Quarantine,
  last?: Parameters<typeof machineSummary>[2],
): MachineDetail {
  const meta = machine.metadata;
  const annotations = Object.fromEntries(
    Object.entries(meta.annotations ?? {}).filter(([key]) => !DROPPED_ANNOTATIONS.has(key)),
  );
  const metadata: Record<string, unknown> = scrub({
    name: meta.name,
    uid: meta.uid,
    generation: meta.generation,
    resourceVersion: meta.resourceVersion,
    creationTimestamp: meta.creationTimestamp,
    labels: meta.labels ?? {},
    annotations,
  }) as Record<string, unknown>;
  const detail: MachineDetail = {
    ...machineSummary(machine, operations, last),
    metadata,
    spec: scrub(machine.spec),
    status: scrub(machine.status ?? {}),
    bmcDetail: bmcOf(machine),
    operations: operations.map((op) => operationSummary(op, meta.name)),
  };
  if (quarantine) {
    const { machine: _machine, ...rest } = quarantine;
    detail.quarantine = rest;
  }
  return detail;
}

/** The Machine as YAML for the console's raw view: the object as the API shows it (scrubbed), status included. */
export function machineObjectView(machine: Machine): Record<string, unknown> {
  const detail = machineDetail(machine, []);
  return {
    apiVersion: machine.apiVersion,
    kind: machine.kind,
    metadata: detail.metadata,
    spec: detail.spec,
    status: detail.status,
  };
}

/** A MachineOperation as the API shows it: the object itself, scrubbed (parameters may carry URLs). */
export function operationView(operation: MachineOperation): unknown {
  return scrub(operation);
}
