/**
 * Validation of MachineOperation objects (spec §2.7), as the CRD would plus our strict formats:
 * names are DNS-1123 subdomains, enums are closed, no unknown fields (a typo must not silently
 * turn "HostPowerOff" into nothing), strings carry no control characters. Errors name the field.
 */
import { isDns1123Subdomain } from "./formats.js";
import {
  type MachineOperation,
  type MachineOperationInput,
  type MachineOperationStatus,
  OPERATION_KINDS,
  OPERATION_PHASES,
  TARGET_STAGES,
} from "./machine-operation.js";
import { API_VERSION } from "./types.js";

type Obj = Record<string, unknown>;
const CONTROL = /[\u0000-\u001f\u007f]/;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const MAX_STRING = 32 * 1024;

class Checker {
  readonly errors: string[] = [];
  fail(at: string, message: string): void {
    this.errors.push(`${at}: ${message}`);
  }
  object(value: unknown, at: string, allowed: readonly string[]): Obj | undefined {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      this.fail(at, "must be an object");
      return undefined;
    }
    for (const key of Object.keys(value)) if (!allowed.includes(key)) this.fail(`${at}.${key}`, "unknown field");
    return value as Obj;
  }
  string(value: unknown, at: string, opts: { required?: boolean; oneOf?: readonly string[] } = {}): void {
    if (value === undefined) {
      if (opts.required) this.fail(at, "is required");
      return;
    }
    if (typeof value !== "string") {
      this.fail(at, "must be a string");
      return;
    }
    if (value.length > MAX_STRING) {
      this.fail(at, `must be at most ${MAX_STRING} characters`);
      return;
    }
    if (opts.oneOf && !opts.oneOf.includes(value)) {
      this.fail(at, `must be one of ${opts.oneOf.join(", ")}`);
      return;
    }
  }
  text(value: unknown, at: string): void {
    this.string(value, at);
    if (typeof value === "string" && CONTROL.test(value.replace(/\n/g, ""))) this.fail(at, "has control characters");
  }
  name(value: unknown, at: string, required = true): void {
    this.string(value, at, { required });
    if (typeof value === "string" && !isDns1123Subdomain(value)) this.fail(at, "must be a DNS-1123 name");
  }
  time(value: unknown, at: string): void {
    if (value === undefined || value === null) return;
    if (typeof value !== "string" || !TIME.test(value)) this.fail(at, "must be an RFC 3339 time");
  }
  int(value: unknown, at: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
    if (value === undefined) return;
    if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
      this.fail(at, `must be an integer from ${min} to ${max}`);
    }
  }
  stringMap(value: unknown, at: string): void {
    if (value === undefined) return;
    const map = this.object(value, at, Object.keys(value ?? {}));
    if (!map) return;
    for (const [key, item] of Object.entries(map)) {
      if (CONTROL.test(key)) this.fail(at, `key ${JSON.stringify(key)} has control characters`);
      this.text(item, `${at}.${key}`);
    }
  }
  conditions(value: unknown, at: string): void {
    if (value === undefined) return;
    if (!Array.isArray(value)) {
      this.fail(at, "must be a list");
      return;
    }
    value.forEach((item, i) => {
      const c = this.object(item, `${at}[${i}]`, [
        "type",
        "status",
        "reason",
        "message",
        "observedGeneration",
        "lastTransitionTime",
      ]);
      if (!c) return;
      this.string(c.type, `${at}[${i}].type`, { required: true });
      this.string(c.status, `${at}[${i}].status`, { required: true, oneOf: ["True", "False", "Unknown"] });
      this.string(c.reason, `${at}[${i}].reason`, { required: true });
      this.text(c.message, `${at}[${i}].message`);
      this.int(c.observedGeneration, `${at}[${i}].observedGeneration`, 0);
      this.time(c.lastTransitionTime, `${at}[${i}].lastTransitionTime`);
    });
  }
}

function checkSpec(k: Checker, value: unknown): void {
  const spec = k.object(value, "spec", [
    "machineRef",
    "machineSelector",
    "operationKind",
    "parameters",
    "ttlSecondsAfterFinished",
  ]);
  if (!spec) return;
  if ((spec.machineRef === undefined) === (spec.machineSelector === undefined)) {
    k.fail("spec", "exactly one of machineRef and machineSelector is required");
  }
  if (spec.machineRef !== undefined) k.name(spec.machineRef, "spec.machineRef");
  if (spec.machineSelector !== undefined) {
    const sel = k.object(spec.machineSelector, "spec.machineSelector", ["matchLabels", "matchExpressions"]);
    if (sel) {
      k.stringMap(sel.matchLabels, "spec.machineSelector.matchLabels");
      if (sel.matchExpressions !== undefined) {
        if (!Array.isArray(sel.matchExpressions)) k.fail("spec.machineSelector.matchExpressions", "must be a list");
        else
          sel.matchExpressions.forEach((item, i) => {
            const at = `spec.machineSelector.matchExpressions[${i}]`;
            const e = k.object(item, at, ["key", "operator", "values"]);
            if (!e) return;
            k.text(e.key, `${at}.key`);
            k.string(e.operator, `${at}.operator`, {
              required: true,
              oneOf: ["In", "NotIn", "Exists", "DoesNotExist"],
            });
            if (e.values !== undefined && (!Array.isArray(e.values) || e.values.some((v) => typeof v !== "string"))) {
              k.fail(`${at}.values`, "must be a list of strings");
            }
          });
      }
    }
  }
  k.string(spec.operationKind, "spec.operationKind", { required: true, oneOf: OPERATION_KINDS });
  k.stringMap(spec.parameters, "spec.parameters");
  k.int(spec.ttlSecondsAfterFinished, "spec.ttlSecondsAfterFinished", 0, 2 ** 31 - 1);
}

function checkStatus(k: Checker, value: unknown): void {
  if (value === undefined) return;
  const st = k.object(value, "status", [
    "phase",
    "message",
    "startedAt",
    "completedAt",
    "observedMachineGeneration",
    "conditions",
    "targets",
  ]);
  if (!st) return;
  k.string(st.phase, "status.phase", { oneOf: OPERATION_PHASES });
  k.text(st.message, "status.message");
  k.time(st.startedAt, "status.startedAt");
  k.time(st.completedAt, "status.completedAt");
  k.int(st.observedMachineGeneration, "status.observedMachineGeneration", 0);
  k.conditions(st.conditions, "status.conditions");
  if (st.targets === undefined) return;
  if (!Array.isArray(st.targets)) {
    k.fail("status.targets", "must be a list");
    return;
  }
  const seen = new Set<string>();
  st.targets.forEach((item, i) => {
    const at = `status.targets[${i}]`;
    const t = k.object(item, at, [
      "machineRef",
      "phase",
      "stage",
      "message",
      "startedAt",
      "completedAt",
      "observedGeneration",
      "attempts",
      "lastAttemptAt",
      "conditions",
    ]);
    if (!t) return;
    k.name(t.machineRef, `${at}.machineRef`);
    if (typeof t.machineRef === "string") {
      if (seen.has(t.machineRef)) k.fail(`${at}.machineRef`, "is listed twice (targets are a map keyed by machineRef)");
      seen.add(t.machineRef);
    }
    k.string(t.phase, `${at}.phase`, { required: true, oneOf: OPERATION_PHASES });
    k.string(t.stage, `${at}.stage`, { oneOf: TARGET_STAGES });
    k.text(t.message, `${at}.message`);
    k.time(t.startedAt, `${at}.startedAt`);
    k.time(t.completedAt, `${at}.completedAt`);
    k.time(t.lastAttemptAt, `${at}.lastAttemptAt`);
    k.int(t.observedGeneration, `${at}.observedGeneration`, 0);
    k.int(t.attempts, `${at}.attempts`, 0);
    k.conditions(t.conditions, `${at}.conditions`);
  });
}

/** Errors of a new operation (metadata, spec; any status is ignored by `create`). */
export function validateOperationInput(value: MachineOperationInput | unknown): string[] {
  const k = new Checker();
  const op = k.object(value, "MachineOperation", ["apiVersion", "kind", "metadata", "spec", "status"]);
  if (!op) return k.errors;
  if (op.apiVersion !== undefined && op.apiVersion !== API_VERSION) k.fail("apiVersion", `must be ${API_VERSION}`);
  if (op.kind !== undefined && op.kind !== "MachineOperation") k.fail("kind", "must be MachineOperation");
  const meta = k.object(op.metadata, "metadata", [
    "name",
    "uid",
    "generation",
    "resourceVersion",
    "creationTimestamp",
    "labels",
    "annotations",
  ]);
  if (meta) {
    k.name(meta.name, "metadata.name");
    k.stringMap(meta.labels, "metadata.labels");
    k.stringMap(meta.annotations, "metadata.annotations");
  }
  checkSpec(k, op.spec);
  return k.errors;
}

export function validateOperationStatus(status: MachineOperationStatus | unknown): string[] {
  const k = new Checker();
  checkStatus(k, status);
  return k.errors;
}

/** A stored operation as read back from disk: the whole object, status included. */
export function validateStoredOperation(value: unknown): value is MachineOperation {
  if (validateOperationInput(value).length > 0) return false;
  const op = value as MachineOperation;
  if (op.apiVersion !== API_VERSION || op.kind !== "MachineOperation") return false;
  if (typeof op.metadata.uid !== "string" || typeof op.metadata.creationTimestamp !== "string") return false;
  return validateOperationStatus(op.status).length === 0;
}
