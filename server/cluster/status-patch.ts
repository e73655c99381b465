/**
 * What one status write changed, field by field, so it can be queued while the API server is
 * unreachable and replayed later over whatever the cluster holds by then: a writer owns the
 * fields it changed (last writer wins per field), everything else stays as upstream has it.
 * Fields: each top-level status key, one level deeper for objects present on both sides
 * (`operations.rebootCounter`, `tpm.ekPublicKey`), and conditions by type.
 */
import type { Condition, MachineStatus } from "../inventory/types.js";

export interface StatusPatch {
  /** Dotted path (`phase`, `operations.repaveCounter`) to the new value; null removes it. */
  fields: Record<string, unknown>;
  /** Condition type to the new condition; null removes it. */
  conditions: Record<string, Condition | null>;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function diffStatus(before: MachineStatus | undefined, after: MachineStatus): StatusPatch {
  const a = (before ?? {}) as Record<string, unknown>;
  const b = after as Record<string, unknown>;
  const patch: StatusPatch = { fields: {}, conditions: {} };
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (key === "conditions") continue;
    const x = a[key];
    const y = b[key];
    if (same(x, y)) continue;
    if (isObject(x) && isObject(y)) {
      for (const sub of new Set([...Object.keys(x), ...Object.keys(y)])) {
        if (!same(x[sub], y[sub])) patch.fields[`${key}.${sub}`] = y[sub] === undefined ? null : y[sub];
      }
    } else patch.fields[key] = y === undefined ? null : y;
  }
  const old = new Map((before?.conditions ?? []).map((c) => [c.type, c]));
  const next = new Map((after.conditions ?? []).map((c) => [c.type, c]));
  for (const type of new Set([...old.keys(), ...next.keys()])) {
    if (!same(old.get(type), next.get(type))) patch.conditions[type] = next.get(type) ?? null;
  }
  return patch;
}

export function isEmptyPatch(patch: StatusPatch): boolean {
  return Object.keys(patch.fields).length === 0 && Object.keys(patch.conditions).length === 0;
}

/** `status` with the patches applied in order (a new object; the input is not touched). */
export function applyStatusPatches(status: MachineStatus | undefined, patches: readonly StatusPatch[]): MachineStatus {
  const out = structuredClone((status ?? {}) as Record<string, unknown>);
  let conditions = [...((out.conditions as Condition[] | undefined) ?? [])];
  for (const patch of patches) {
    for (const [path, value] of Object.entries(patch.fields)) {
      const [key, sub] = path.split(".", 2) as [string, string | undefined];
      if (sub === undefined) {
        if (value === null) delete out[key];
        else out[key] = structuredClone(value);
        continue;
      }
      const parent = isObject(out[key]) ? (out[key] as Record<string, unknown>) : {};
      if (value === null) delete parent[sub];
      else parent[sub] = structuredClone(value);
      out[key] = parent;
    }
    for (const [type, condition] of Object.entries(patch.conditions)) {
      const index = conditions.findIndex((c) => c.type === type);
      if (condition === null) {
        if (index >= 0) conditions.splice(index, 1);
      } else if (index >= 0) conditions[index] = structuredClone(condition);
      else conditions = [...conditions, structuredClone(condition)];
    }
  }
  if (conditions.length > 0) out.conditions = conditions;
  else delete out.conditions;
  return out as MachineStatus;
}
