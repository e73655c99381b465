/**
 * A small model of Go's reflect values, enough for text/template semantics.
 *
 * Templates written for upstream metalman run against Go data: JSON-decoded `map[string]any`
 * trees (tests, fixtures) and typed structs (`*v1alpha3.Machine`). The differences matter for
 * output and errors (nil pointer vs missing map key, `int` vs `float64`, static type names in
 * messages), so every value carries its Go type. `null` stands for the zero `reflect.Value`
 * ("invalid"), which is what Go produces for a missing map key.
 */

export type BasicKind = "bool" | "string" | "int" | "int64" | "int32" | "uint8" | "float64";

/** A niladic method; `recv` is null when called through a nil pointer (pointer receivers only). */
export interface GoMethod {
  readonly pointerReceiver: boolean;
  readonly call: (recv: GoValue | null) => Value;
}

interface TypeBase {
  /** Go's reflect.Type.String(), used in messages and %T. */
  readonly name: string;
  readonly methods?: Readonly<Record<string, GoMethod>>;
  /** fmt.Stringer implemented with a value receiver (e.g. metav1.Time). */
  readonly stringer?: (v: GoValue) => string;
}

export interface StructField {
  readonly name: string;
  readonly type: GoType;
  readonly embedded?: boolean;
}

export type GoFunc = (args: Value[]) => Value;

export type GoType =
  | (TypeBase & { readonly kind: BasicKind })
  | (TypeBase & { readonly kind: "interface" })
  | (TypeBase & { readonly kind: "slice"; readonly elem: GoType })
  | (TypeBase & { readonly kind: "map"; readonly key: GoType; readonly elem: GoType })
  | (TypeBase & { readonly kind: "struct"; readonly fields: readonly StructField[] })
  | (TypeBase & { readonly kind: "ptr"; readonly elem: GoType })
  | (TypeBase & { readonly kind: "func"; readonly arity: number; readonly variadic: boolean });

/**
 * Payload by kind: bool → boolean; string → string; ints/float → number; interface → Value
 * (null = nil interface); slice → GoValue[] | null; map → Map<string, GoValue> | null;
 * struct → Map<string, GoValue> (every field present); ptr → GoValue | null; func → GoFunc | null.
 */
export interface GoValue {
  readonly type: GoType;
  readonly v: unknown;
}

/** null is the zero reflect.Value (Go's "invalid" value, e.g. a missing map key). */
export type Value = GoValue | null;

export const types = {
  bool: { kind: "bool", name: "bool" },
  string: { kind: "string", name: "string" },
  int: { kind: "int", name: "int" },
  int64: { kind: "int64", name: "int64" },
  int32: { kind: "int32", name: "int32" },
  uint8: { kind: "uint8", name: "uint8" },
  float64: { kind: "float64", name: "float64" },
  any: { kind: "interface", name: "interface {}" },
} as const satisfies Record<string, GoType>;

export function namedBasic(name: string, kind: BasicKind): GoType {
  return { kind, name };
}

export function sliceOf(elem: GoType): GoType {
  return { kind: "slice", name: `[]${elem.name}`, elem };
}

export function mapOf(key: GoType, elem: GoType): GoType {
  return { kind: "map", name: `map[${key.name}]${elem.name}`, key, elem };
}

export function ptrTo(elem: GoType): GoType {
  return { kind: "ptr", name: `*${elem.name}`, elem };
}

export function structType(
  name: string,
  fields: StructField[],
  extra: { methods?: Record<string, GoMethod>; stringer?: (v: GoValue) => string } = {},
): GoType {
  return { kind: "struct", name, fields, ...extra };
}

export const goString = (s: string): GoValue => ({ type: types.string, v: s });
export const goInt = (n: number): GoValue => ({ type: types.int, v: n });
export const goBool = (b: boolean): GoValue => ({ type: types.bool, v: b });
export const goFloat = (f: number): GoValue => ({ type: types.float64, v: f });

export function isIntKind(k: GoType["kind"]): boolean {
  return k === "int" || k === "int64" || k === "int32";
}

export function isUintKind(k: GoType["kind"]): boolean {
  return k === "uint8";
}

/** reflect.Zero(t). */
export function zeroValue(t: GoType): GoValue {
  switch (t.kind) {
    case "bool":
      return { type: t, v: false };
    case "string":
      return { type: t, v: "" };
    case "int":
    case "int64":
    case "int32":
    case "uint8":
    case "float64":
      return { type: t, v: 0 };
    case "struct": {
      const fields = new Map<string, GoValue>();
      for (const f of t.fields) fields.set(f.name, zeroValue(f.type));
      return { type: t, v: fields };
    }
    default:
      return { type: t, v: null };
  }
}

/** Build a struct value; fields not given get their zero value. */
export function structValue(t: GoType, given: Record<string, GoValue | undefined>): GoValue {
  if (t.kind !== "struct") throw new TypeError(`${t.name} is not a struct type`);
  const fields = new Map<string, GoValue>();
  for (const f of t.fields) fields.set(f.name, given[f.name] ?? zeroValue(f.type));
  return { type: t, v: fields };
}

/** A non-nil pointer to a fresh struct value. */
export function pointerTo(ptrType: GoType, target: GoValue): GoValue {
  return { type: ptrType, v: target };
}

/** Wraps a concrete value in an `interface {}` slot (map/slice elements of JSON data). */
export function boxAny(v: Value): GoValue {
  return { type: types.any, v };
}

/**
 * Go's json.Unmarshal into `any`, as the vectors README describes: objects are
 * `map[string]interface {}`, arrays `[]interface {}`, integral numbers `int`, others `float64`.
 * The top level is the concrete value (reflect.ValueOf(data)); null is invalid.
 */
export function fromJSON(data: unknown): Value {
  if (data === null || data === undefined) return null;
  switch (typeof data) {
    case "string":
      return goString(data);
    case "boolean":
      return goBool(data);
    case "number":
      return Number.isInteger(data) ? goInt(data) : goFloat(data);
    case "object": {
      if (Array.isArray(data)) return { type: JSON_LIST, v: data.map((x) => boxAny(fromJSON(x))) };
      const m = new Map<string, GoValue>();
      for (const [k, x] of Object.entries(data as Record<string, unknown>)) m.set(k, boxAny(fromJSON(x)));
      return { type: JSON_MAP, v: m };
    }
    default:
      throw new TypeError(`cannot convert ${typeof data} to a Go value`);
  }
}

export const JSON_LIST = sliceOf(types.any);
export const JSON_MAP = mapOf(types.string, types.any);

/** Go's indirect(): follow pointers and interfaces; stops at a nil one (isNil = true). */
export function indirect(v: GoValue): [GoValue, boolean] {
  let cur = v;
  while (cur.type.kind === "ptr" || cur.type.kind === "interface") {
    if (cur.v === null) return [cur, true];
    cur = cur.v as GoValue;
  }
  return [cur, false];
}

/** Go's indirectInterface(): unwraps one interface; a nil interface becomes invalid. */
export function indirectInterface(v: Value): Value {
  if (v === null || v.type.kind !== "interface") return v;
  return v.v as Value;
}

/** evalPipeline's "lovely!" step: an `interface {}` value becomes its dynamic value. */
export function unwrapEmptyInterface(v: Value): Value {
  while (v !== null && v.type.kind === "interface") v = v.v as Value;
  return v;
}

/** Field lookup with promotion through embedded structs (breadth-first like reflect). */
export function fieldPath(t: GoType, name: string): string[] | null {
  if (t.kind !== "struct") return null;
  for (const f of t.fields) if (f.name === name) return [f.name];
  for (const f of t.fields) {
    if (!f.embedded) continue;
    const inner = f.type.kind === "ptr" ? f.type.elem : f.type;
    const sub = fieldPath(inner, name);
    if (sub) return [f.name, ...sub];
  }
  return null;
}

/** Method lookup on a struct type or pointer-to-struct (including promoted methods). */
export function findMethod(t: GoType, name: string): GoMethod | null {
  const st = t.kind === "ptr" ? t.elem : t;
  const own = st.methods?.[name];
  if (own) return own;
  if (st.kind !== "struct") return null;
  for (const f of st.fields) {
    if (!f.embedded) continue;
    const m = findMethod(f.type, name);
    if (m) return m;
  }
  return null;
}

export function lengthOf(v: GoValue): number {
  switch (v.type.kind) {
    case "string":
      return Buffer.byteLength(v.v as string, "utf8");
    case "slice":
      return v.v === null ? 0 : (v.v as GoValue[]).length;
    case "map":
      return v.v === null ? 0 : (v.v as Map<string, GoValue>).size;
    default:
      throw new TypeError(`len of ${v.type.name}`);
  }
}

/** Go's sort order for strings: byte-wise on UTF-8. */
export function compareGoStrings(a: string, b: string): number {
  if (/^[\x00-\x7f]*$/.test(a) && /^[\x00-\x7f]*$/.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

export function sortedMapKeys(m: Map<string, GoValue>): string[] {
  return [...m.keys()].sort(compareGoStrings);
}
