/**
 * Go text/template's predefined functions (text/template/funcs.go), over the Go value model.
 * A builtin reports failure by throwing BuiltinError; the executor wraps it as Go does:
 * `error calling NAME: message`.
 */
import { goSprint, goSprintf, goSprintln } from "./go-fmt.js";
import { isGoPrint } from "./go-strconv.js";
import {
  type GoValue,
  goBool,
  goInt,
  goString,
  indirect,
  indirectInterface,
  isIntKind,
  isUintKind,
  lengthOf,
  types,
  type Value,
  zeroValue,
} from "./go-values.js";

export class BuiltinError extends Error {}

/** How an argument reaches the function: reflect.Value, interface{} or string parameter. */
export type ParamKind = "value" | "any" | "string";

export interface Builtin {
  readonly fixed: readonly ParamKind[];
  readonly variadic: ParamKind | null;
  readonly call: (args: Value[]) => Value;
}

type BasicKindClass = "bool" | "int" | "uint" | "float" | "string" | "invalid";

function basicKind(v: Value): BasicKindClass {
  if (v === null) return "invalid";
  const k = v.type.kind;
  if (k === "bool") return "bool";
  if (isIntKind(k)) return "int";
  if (isUintKind(k)) return "uint";
  if (k === "float64") return "float";
  if (k === "string") return "string";
  return "invalid";
}

const errBadComparisonType = "invalid type for comparison";
const errBadComparison = "incompatible types for comparison";
const errNoComparison = "missing argument for comparison";

function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function isComparable(v: GoValue): boolean {
  switch (v.type.kind) {
    case "slice":
    case "map":
    case "func":
      return false;
    case "struct":
      return [...(v.v as Map<string, GoValue>).values()].every(isComparable);
    default:
      return true;
  }
}

/** Go's == on two interface{} values holding a and b. */
function interfaceEqual(a: GoValue, b: GoValue): boolean {
  if (a.type.name !== b.type.name || a.type.kind !== b.type.kind) return false;
  switch (a.type.kind) {
    case "slice":
    case "map":
    case "func":
      throw new BuiltinError(`runtime error: comparing uncomparable type ${a.type.name}`);
    case "interface":
      if (a.v === null || b.v === null) return a.v === b.v;
      return interfaceEqual(a.v as GoValue, b.v as GoValue);
    case "struct": {
      const fa = a.v as Map<string, GoValue>;
      const fb = b.v as Map<string, GoValue>;
      if (fa.size !== fb.size) return false;
      for (const [k, x] of fa) {
        const y = fb.get(k);
        if (y === undefined || !interfaceEqual(x, y)) return false;
      }
      return true;
    }
    default:
      return a.v === b.v;
  }
}

function eq(arg1: Value, ...arg2: Value[]): boolean {
  arg1 = indirectInterface(arg1);
  if (arg2.length === 0) throw new BuiltinError(errNoComparison);
  const k1 = basicKind(arg1);
  for (let arg of arg2) {
    arg = indirectInterface(arg);
    const k2 = basicKind(arg);
    let truth = false;
    if (k1 !== k2) {
      if (k1 === "int" && k2 === "uint") truth = (arg1!.v as number) >= 0 && arg1!.v === arg!.v;
      else if (k1 === "uint" && k2 === "int") truth = (arg!.v as number) >= 0 && arg1!.v === arg!.v;
      else if (arg1 !== null && arg !== null) throw new BuiltinError(errBadComparison);
    } else if (k1 === "invalid") {
      if (arg1 === null || arg === null) truth = arg1 === arg;
      else {
        if (!isComparable(arg))
          throw new BuiltinError(`non-comparable type ${goSprintf("%s", [arg])}: ${arg.type.name}`);
        truth = interfaceEqual(arg1, arg);
      }
    } else {
      truth = arg1!.v === arg!.v;
    }
    if (truth) return true;
  }
  return false;
}

function lt(arg1: Value, arg2: Value): boolean {
  arg1 = indirectInterface(arg1);
  const k1 = basicKind(arg1);
  if (k1 === "invalid") throw new BuiltinError(errBadComparisonType);
  arg2 = indirectInterface(arg2);
  const k2 = basicKind(arg2);
  if (k2 === "invalid") throw new BuiltinError(errBadComparisonType);
  const a = arg1!.v;
  const b = arg2!.v;
  if (k1 !== k2) {
    if ((k1 === "int" && k2 === "uint") || (k1 === "uint" && k2 === "int")) return (a as number) < (b as number);
    throw new BuiltinError(errBadComparison);
  }
  if (k1 === "bool") throw new BuiltinError(errBadComparisonType);
  if (k1 === "string") return byteCompare(a as string, b as string) < 0;
  return (a as number) < (b as number);
}

const le = (a: Value, b: Value): boolean => lt(a, b) || eq(a, b);

function indexArg(index: Value, cap: number): number {
  if (index === null) throw new BuiltinError("cannot index slice/array with nil");
  if (!isIntKind(index.type.kind) && !isUintKind(index.type.kind)) {
    throw new BuiltinError(`cannot index slice/array with type ${index.type.name}`);
  }
  const x = index.v as number;
  if (x < 0 || x > cap) throw new BuiltinError(`index out of range: ${x}`);
  return x;
}

function stringBytes(s: string): Buffer {
  return Buffer.from(s, "utf8");
}

function index(item: Value, ...indexes: Value[]): Value {
  let cur = indirectInterface(item);
  if (cur === null) throw new BuiltinError("index of untyped nil");
  for (let ix of indexes) {
    ix = indirectInterface(ix);
    const [target, isNil] = indirect(cur!);
    if (isNil) throw new BuiltinError("index of nil pointer");
    const t = target.type;
    switch (t.kind) {
      case "slice": {
        const items = (target.v as GoValue[] | null) ?? [];
        const x = indexArg(ix, items.length);
        if (x >= items.length) throw new BuiltinError("reflect: slice index out of range");
        cur = items[x];
        break;
      }
      case "string": {
        const bytes = stringBytes(target.v as string);
        const x = indexArg(ix, bytes.length);
        if (x >= bytes.length) throw new BuiltinError("reflect: string index out of range");
        cur = { type: types.uint8, v: bytes[x] };
        break;
      }
      case "map": {
        if (ix === null) throw new BuiltinError(`value is nil; should be of type ${t.key.name}`);
        if (ix.type.name !== t.key.name) {
          throw new BuiltinError(`value has type ${ix.type.name}; should be ${t.key.name}`);
        }
        const m = target.v as Map<string, GoValue> | null;
        cur = m?.get(ix.v as string) ?? zeroValue(t.elem);
        break;
      }
      default:
        throw new BuiltinError(`can't index item of type ${t.name}`);
    }
  }
  return cur;
}

function slice(item: Value, ...indexes: Value[]): Value {
  const v = indirectInterface(item);
  if (v === null) throw new BuiltinError("slice of untyped nil");
  if (indexes.length > 3) throw new BuiltinError(`too many slice indexes: ${indexes.length}`);
  let len: number;
  switch (v.type.kind) {
    case "string":
      if (indexes.length === 3) throw new BuiltinError("cannot 3-index slice a string");
      len = stringBytes(v.v as string).length;
      break;
    case "slice":
      len = ((v.v as GoValue[] | null) ?? []).length;
      break;
    default:
      throw new BuiltinError(`can't slice item of type ${v.type.name}`);
  }
  const idx = [0, len, len];
  indexes.forEach((ix, i) => {
    idx[i] = indexArg(indirectInterface(ix), len);
  });
  if (idx[0] > idx[1]) throw new BuiltinError(`invalid slice index: ${idx[0]} > ${idx[1]}`);
  if (indexes.length === 3 && idx[1] > idx[2]) throw new BuiltinError(`invalid slice index: ${idx[1]} > ${idx[2]}`);
  if (v.type.kind === "string") {
    return {
      type: v.type,
      v: stringBytes(v.v as string)
        .subarray(idx[0], idx[1])
        .toString("utf8"),
    };
  }
  const items = (v.v as GoValue[] | null) ?? [];
  return { type: v.type, v: items.slice(idx[0], idx[1]) };
}

function length(item: Value): Value {
  if (item === null) throw new BuiltinError("reflect: call of reflect.Value.Type on zero Value");
  const [v, isNil] = indirect(item);
  if (isNil) throw new BuiltinError("len of nil pointer");
  const k = v.type.kind;
  if (k === "string" || k === "slice" || k === "map") return goInt(lengthOf(v));
  throw new BuiltinError(`len of type ${v.type.name}`);
}

/** text/template's truth: the "empty" values are false. */
export function isTrue(v: Value): [truth: boolean, ok: boolean] {
  if (v === null) return [false, true];
  switch (v.type.kind) {
    case "string":
    case "slice":
    case "map":
      return [lengthOf(v) > 0, true];
    case "bool":
      return [v.v as boolean, true];
    case "ptr":
    case "interface":
    case "func":
      return [v.v !== null, true];
    case "struct":
      return [true, true];
    default:
      return [(v.v as number) !== 0, true];
  }
}

export function truth(v: Value): boolean {
  return isTrue(indirectInterface(v))[0];
}

/** html/js/urlquery argument rule: a lone string as is, anything else through Sprint. */
function evalArgs(args: Value[]): string {
  if (args.length === 1 && args[0] !== null && args[0].type === types.string) return args[0].v as string;
  const printable = args.map((a): Value => {
    let d = a;
    while (d !== null && d.type.kind === "interface") d = d.v as Value;
    if (d === null) return goString("<no value>");
    if (d.type.kind === "ptr" && d.v !== null) return indirect(d)[0];
    return d;
  });
  return goSprint(printable);
}

function htmlEscape(s: string): string {
  return s.replace(/[\0"'&<>]/g, (c) => {
    switch (c) {
      case "\0":
        return "\uFFFD";
      case '"':
        return "&#34;";
      case "'":
        return "&#39;";
      case "&":
        return "&amp;";
      case "<":
        return "&lt;";
      default:
        return "&gt;";
    }
  });
}

const JS_SIMPLE: Record<string, string> = {
  "\\": "\\\\",
  "'": "\\'",
  '"': '\\"',
  "<": "\\u003C",
  ">": "\\u003E",
  "&": "\\u0026",
  "=": "\\u003D",
};

function jsEscape(s: string): string {
  let out = "";
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (JS_SIMPLE[ch]) out += JS_SIMPLE[ch];
    else if (cp < 0x20) out += `\\u00${cp.toString(16).toUpperCase().padStart(2, "0")}`;
    else if (cp < 0x80 || isGoPrint(cp)) out += ch;
    else out += `\\u${cp.toString(16).toUpperCase().padStart(4, "0")}`;
  }
  return out;
}

function queryEscape(s: string): string {
  let out = "";
  for (const b of Buffer.from(s, "utf8")) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else if (c === " ") out += "+";
    else out += `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function call(fn: Value, ...args: Value[]): Value {
  const f = indirectInterface(fn);
  if (f === null) throw new BuiltinError("call of nil");
  if (f.type.kind !== "func") throw new BuiltinError(`non-function of type ${f.type.name}`);
  if (f.v === null) throw new BuiltinError("call of nil");
  const t = f.type;
  if (t.variadic ? args.length < t.arity - 1 : args.length !== t.arity) {
    throw new BuiltinError(`wrong number of args for ${t.name}: got ${args.length} want ${t.arity}`);
  }
  return (f.v as (a: Value[]) => Value)(args);
}

const V = "value" as const;
const A = "any" as const;

/** The predefined functions, by name. */
export const BUILTINS: ReadonlyMap<string, Builtin> = new Map<string, Builtin>([
  // and/or are evaluated lazily by the executor; these bodies only serve the signature.
  ["and", { fixed: [V], variadic: V, call: (a) => a[a.length - 1] }],
  ["or", { fixed: [V], variadic: V, call: (a) => a[a.length - 1] }],
  ["call", { fixed: [V], variadic: V, call: (a) => call(a[0], ...a.slice(1)) }],
  ["html", { fixed: [], variadic: A, call: (a) => goString(htmlEscape(evalArgs(a))) }],
  ["index", { fixed: [V], variadic: V, call: (a) => index(a[0], ...a.slice(1)) }],
  ["slice", { fixed: [V], variadic: V, call: (a) => slice(a[0], ...a.slice(1)) }],
  ["js", { fixed: [], variadic: A, call: (a) => goString(jsEscape(evalArgs(a))) }],
  ["len", { fixed: [V], variadic: null, call: (a) => length(a[0]) }],
  ["not", { fixed: [V], variadic: null, call: (a) => goBool(!truth(a[0])) }],
  ["print", { fixed: [], variadic: A, call: (a) => goString(goSprint(a)) }],
  ["printf", { fixed: ["string"], variadic: A, call: (a) => goString(goSprintf(a[0]!.v as string, a.slice(1))) }],
  ["println", { fixed: [], variadic: A, call: (a) => goString(goSprintln(a)) }],
  ["urlquery", { fixed: [], variadic: A, call: (a) => goString(queryEscape(evalArgs(a))) }],
  ["eq", { fixed: [V], variadic: V, call: (a) => goBool(eq(a[0], ...a.slice(1))) }],
  ["ge", { fixed: [V, V], variadic: null, call: (a) => goBool(!lt(a[0], a[1])) }],
  ["gt", { fixed: [V, V], variadic: null, call: (a) => goBool(!le(a[0], a[1])) }],
  ["le", { fixed: [V, V], variadic: null, call: (a) => goBool(le(a[0], a[1])) }],
  ["lt", { fixed: [V, V], variadic: null, call: (a) => goBool(lt(a[0], a[1])) }],
  ["ne", { fixed: [V, V], variadic: null, call: (a) => goBool(!eq(a[0], a[1])) }],
]);

export const BUILTIN_NAMES: ReadonlySet<string> = new Set(BUILTINS.keys());
