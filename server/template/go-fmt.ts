/**
 * Go's fmt printing (Sprint, Sprintln, Sprintf) over the Go value model: what `{{ . }}`,
 * `print`, `println` and `printf` produce, including Go's error verbs such as
 * `%!d(float64=1.5)`, `%!s(MISSING)` and `%!(EXTRA int=1)`.
 */
import { canBackquote, formatGoFloat, goQuote, goQuoteRune } from "./go-strconv.js";
import { type GoValue, isIntKind, isUintKind, sortedMapKeys, type Value } from "./go-values.js";

interface Flags {
  plus: boolean;
  minus: boolean;
  sharp: boolean;
  space: boolean;
  zero: boolean;
  plusV: boolean;
  wid: number | null;
  prec: number | null;
}

const noFlags = (): Flags => ({
  plus: false,
  minus: false,
  sharp: false,
  space: false,
  zero: false,
  plusV: false,
  wid: null,
  prec: null,
});

function runeCount(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function pad(s: string, f: Flags): string {
  if (f.wid === null || f.wid === 0) return s;
  const width = f.wid - runeCount(s);
  if (width <= 0) return s;
  if (f.minus) return s + " ".repeat(width);
  return (f.zero ? "0" : " ").repeat(width) + s;
}

/** An `any` argument: interfaces hand fmt their dynamic value. */
function dynamic(v: Value): Value {
  while (v !== null && v.type.kind === "interface") v = v.v as Value;
  return v;
}

function fmtInteger(n: number, unsigned: boolean, base: number, verb: string, f: Flags): string {
  let big = BigInt(Math.trunc(n));
  if (unsigned && big < 0n) big += 1n << 64n;
  const negative = big < 0n;
  if (negative) big = -big;
  let prec = 0;
  if (f.prec !== null) {
    prec = f.prec;
    if (prec === 0 && big === 0n) return pad("", { ...f, zero: false });
  } else if (f.zero && f.wid !== null) {
    prec = f.wid;
    if (negative || f.plus || f.space) prec--;
  }
  let digits = big.toString(base);
  if (verb === "X") digits = digits.toUpperCase();
  if (digits.length < prec) digits = "0".repeat(prec - digits.length) + digits;
  if (f.sharp) {
    if (base === 2) digits = `0b${digits}`;
    else if (base === 8 && digits[0] !== "0") digits = `0${digits}`;
    else if (base === 16) digits = (verb === "X" ? "0X" : "0x") + digits;
  }
  if (verb === "O") digits = `0o${digits}`;
  if (negative) digits = `-${digits}`;
  else if (f.plus) digits = `+${digits}`;
  else if (f.space) digits = ` ${digits}`;
  return pad(digits, { ...f, zero: false });
}

function fmtFloat(x: number, verb: string, defPrec: number, f: Flags): string {
  const prec = f.prec ?? defPrec;
  const kind = (verb === "v" ? "g" : verb === "F" ? "f" : verb) as "e" | "E" | "f" | "g" | "G";
  let num = formatGoFloat(x, kind, prec);
  if (num[0] !== "-" && num[0] !== "+") num = `+${num}`;
  if (f.space && num[0] === "+" && !f.plus) num = ` ${num.slice(1)}`;
  if (num[1] === "I" || num[1] === "N") {
    if (num[1] === "N" && !f.space && !f.plus) num = num.slice(1);
    return pad(num, { ...f, zero: false });
  }
  if (f.plus || num[0] !== "+") {
    if (f.zero && f.wid !== null && f.wid > num.length) {
      return num[0] + "0".repeat(f.wid - num.length) + num.slice(1);
    }
    return pad(num, f);
  }
  return pad(num.slice(1), f);
}

function truncateRunes(s: string, n: number | null): string {
  if (n === null) return s;
  let out = "";
  let i = 0;
  for (const ch of s) {
    if (i++ >= n) break;
    out += ch;
  }
  return out;
}

function fmtHexBytes(s: string, upper: boolean, f: Flags): string {
  let bytes = Buffer.from(s, "utf8");
  if (f.prec !== null && f.prec < bytes.length) bytes = bytes.subarray(0, f.prec);
  let out = "";
  bytes.forEach((b, i) => {
    if (f.space && i > 0) out += " ";
    if (f.sharp && (f.space || i === 0)) out += upper ? "0X" : "0x";
    const h = b.toString(16).padStart(2, "0");
    out += upper ? h.toUpperCase() : h;
  });
  return pad(out, f);
}

function fmtString(s: string, verb: string, f: Flags, t: string, v: GoValue): string {
  switch (verb) {
    case "v":
    case "s":
      return pad(truncateRunes(s, f.prec), f);
    case "x":
    case "X":
      return fmtHexBytes(s, verb === "X", f);
    case "q": {
      const str = truncateRunes(s, f.prec);
      if (f.sharp && canBackquote(str)) return pad(`\`${str}\``, f);
      return pad(goQuote(str, f.plus), f);
    }
    default:
      return badVerb(verb, t, v);
  }
}

function badVerb(verb: string, typeName: string | null, v: Value): string {
  if (typeName === null || v === null) return `%!${verb}(<nil>)`;
  return `%!${verb}(${typeName}=${printValue(v, "v", noFlags(), 0)})`;
}

function fmtPointerLike(v: GoValue, verb: string, f: Flags): string {
  // Go prints real addresses; ours are not meaningful, but the shape matches.
  if (verb !== "v" && verb !== "p") return badVerb(verb, v.type.name, v);
  return pad(v.v === null ? (verb === "v" ? "<nil>" : "0x0") : "0xc000010000", f);
}

function stringerOf(v: GoValue): ((x: GoValue) => string) | null {
  if (v.type.stringer) return v.type.stringer;
  if (v.type.kind === "ptr" && v.type.elem.stringer) {
    const inner = v.type.elem.stringer;
    return (p) => (p.v === null ? "<nil>" : inner(p.v as GoValue));
  }
  return null;
}

/** fmt's printValue: one value at a nesting depth (depth > 0 inside maps, slices, structs). */
function printValue(v: Value, verb: string, f: Flags, depth: number): string {
  if (v === null) {
    if (depth === 0) return "<invalid reflect.Value>";
    return verb === "v" ? "<nil>" : badVerb(verb, null, null);
  }
  const stringer = stringerOf(v);
  if (stringer && "vsxXq".includes(verb)) {
    if (v.type.kind === "ptr" && v.v === null) return pad("<nil>", f);
    return fmtString(stringer(v), verb, f, v.type.name, v);
  }
  const t = v.type;
  switch (t.kind) {
    case "bool":
      return verb === "t" || verb === "v" ? pad(String(v.v), f) : badVerb(verb, t.name, v);
    case "int":
    case "int64":
    case "int32":
    case "uint8":
      return printInteger(v.v as number, isUintKind(t.kind), verb, f, t.name, v);
    case "float64":
      switch (verb) {
        case "v":
        case "g":
        case "G":
          return fmtFloat(v.v as number, verb, -1, f);
        case "e":
        case "E":
        case "f":
        case "F":
          return fmtFloat(v.v as number, verb, 6, f);
        default:
          return badVerb(verb, t.name, v);
      }
    case "string":
      return fmtString(v.v as string, verb, f, t.name, v);
    case "interface":
      return v.v === null ? "<nil>" : printValue(v.v as GoValue, verb, f, depth + 1);
    case "map": {
      const m = (v.v as Map<string, GoValue> | null) ?? new Map<string, GoValue>();
      const parts = sortedMapKeys(m).map(
        (k) => `${printValue({ type: t.key, v: k }, verb, f, depth + 1)}:${printValue(m.get(k)!, verb, f, depth + 1)}`,
      );
      return `map[${parts.join(" ")}]`;
    }
    case "slice": {
      const items = (v.v as GoValue[] | null) ?? [];
      return `[${items.map((x) => printValue(x, verb, f, depth + 1)).join(" ")}]`;
    }
    case "struct": {
      const fields = v.v as Map<string, GoValue>;
      const parts = t.fields.map((fd) => {
        const s = printValue(fields.get(fd.name)!, verb, f, depth + 1);
        return f.plusV ? `${fd.name}:${s}` : s;
      });
      return `{${parts.join(" ")}}`;
    }
    case "ptr": {
      if (depth === 0 && v.v !== null) {
        const ek = t.elem.kind;
        if (ek === "struct" || ek === "slice" || ek === "map")
          return `&${printValue(v.v as GoValue, verb, f, depth + 1)}`;
      }
      return fmtPointerLike(v, verb, f);
    }
    case "func":
      return fmtPointerLike(v, verb, f);
  }
}

function printInteger(n: number, unsigned: boolean, verb: string, f: Flags, typeName: string, v: GoValue): string {
  switch (verb) {
    case "v":
    case "d":
      return fmtInteger(n, unsigned, 10, verb, f);
    case "b":
      return fmtInteger(n, unsigned, 2, verb, f);
    case "o":
    case "O":
      return fmtInteger(n, unsigned, 8, verb, f);
    case "x":
    case "X":
      return fmtInteger(n, unsigned, 16, verb, f);
    case "c": {
      const cp = n < 0 || n > 0x10ffff || (n >= 0xd800 && n <= 0xdfff) ? 0xfffd : n;
      return pad(String.fromCodePoint(cp), f);
    }
    case "q":
      return pad(goQuoteRune(n, f.plus), f);
    case "U": {
      let s = `U+${n.toString(16).toUpperCase().padStart(4, "0")}`;
      if (f.sharp && n >= 0 && n <= 0x10ffff) s += ` '${String.fromCodePoint(n)}'`;
      return pad(s, { ...f, zero: false });
    }
    default:
      return badVerb(verb, typeName, v);
  }
}

/** printArg: one top-level operand. */
function printArg(arg: Value, verb: string, f: Flags): string {
  const v = dynamic(arg);
  if (v === null) return verb === "T" || verb === "v" ? pad("<nil>", f) : badVerb(verb, null, null);
  if (verb === "T") return pad(v.type.name, f);
  if (verb === "p") return fmtPointerLike(v, verb, f);
  return printValue(v, verb, f, 0);
}

function isStringArg(v: Value): boolean {
  const d = dynamic(v);
  return d !== null && d.type.kind === "string";
}

/** fmt.Sprint: spaces between operands when neither side is a string. */
export function goSprint(args: Value[]): string {
  let out = "";
  let prevString = false;
  args.forEach((a, i) => {
    const isString = isStringArg(a);
    if (i > 0 && !isString && !prevString) out += " ";
    out += printArg(a, "v", noFlags());
    prevString = isString;
  });
  return out;
}

/** fmt.Sprintln: always spaces, trailing newline. */
export function goSprintln(args: Value[]): string {
  return `${args.map((a) => printArg(a, "v", noFlags())).join(" ")}\n`;
}

/** Formats a value the way `%v` does (used in error messages like "range can't iterate over"). */
export function goFormatV(v: Value): string {
  return printArg(v, "v", noFlags());
}

function parseNum(s: string, i: number): [number | null, number] {
  let j = i;
  while (j < s.length && s[j] >= "0" && s[j] <= "9") j++;
  if (j === i) return [null, i];
  const n = Number(s.slice(i, j));
  return n > 1e6 ? [null, j] : [n, j];
}

function intArg(v: Value): number | null {
  const d = dynamic(v);
  if (d === null || !(isIntKind(d.type.kind) || isUintKind(d.type.kind))) return null;
  return d.v as number;
}

/** fmt.Sprintf. */
export function goSprintf(format: string, args: Value[]): string {
  let out = "";
  let argNum = 0;
  let reordered = false;
  let goodArgNum = true;
  const n = format.length;
  let i = 0;
  const argIndex = (j: number): number => {
    // [n] explicit argument index
    if (j >= n || format[j] !== "[") return j;
    reordered = true;
    const close = format.indexOf("]", j);
    if (close < 0) {
      goodArgNum = false;
      return j + 1;
    }
    const idx = Number(format.slice(j + 1, close));
    if (!/^\d+$/.test(format.slice(j + 1, close)) || idx < 1 || idx > args.length) goodArgNum = false;
    else argNum = idx - 1;
    return close + 1;
  };
  while (i < n) {
    const pct = format.indexOf("%", i);
    if (pct < 0) {
      out += format.slice(i);
      break;
    }
    out += format.slice(i, pct);
    i = pct + 1;
    const f = noFlags();
    for (; i < n; i++) {
      const c = format[i];
      if (c === "#") f.sharp = true;
      else if (c === "0") f.zero = !f.minus;
      else if (c === "+") f.plus = true;
      else if (c === "-") {
        f.minus = true;
        f.zero = false;
      } else if (c === " ") f.space = true;
      else break;
    }
    goodArgNum = true;
    i = argIndex(i);
    if (i < n && format[i] === "*") {
      i++;
      const w = argNum < args.length ? intArg(args[argNum]) : null;
      argNum++;
      if (w === null) out += "%!(BADWIDTH)";
      else {
        f.wid = Math.abs(w);
        if (w < 0) {
          f.minus = true;
          f.zero = false;
        }
      }
    } else {
      const [w, j] = parseNum(format, i);
      if (w !== null) f.wid = w;
      i = j;
    }
    if (i + 1 <= n && format[i] === ".") {
      i++;
      i = argIndex(i);
      if (i < n && format[i] === "*") {
        i++;
        const p = argNum < args.length ? intArg(args[argNum]) : null;
        argNum++;
        if (p === null || p < 0) out += "%!(BADPREC)";
        else f.prec = p;
      } else {
        const [p, j] = parseNum(format, i);
        f.prec = p ?? 0;
        i = j;
      }
    }
    i = argIndex(i);
    if (i >= n) {
      out += "%!(NOVERB)";
      break;
    }
    const verb = String.fromCodePoint(format.codePointAt(i)!);
    i += verb.length;
    if (verb === "%") {
      out += "%";
      continue;
    }
    if (!goodArgNum) {
      out += `%!${verb}(BADINDEX)`;
      continue;
    }
    if (argNum >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    if (verb === "v" && f.plus) {
      f.plus = false;
      f.plusV = true;
    }
    out += printArg(args[argNum], verb, f);
    argNum++;
  }
  if (!reordered && argNum < args.length) {
    const extra = args.slice(argNum).map((a) => {
      const d = dynamic(a);
      return d === null ? "<nil>" : `${d.type.name}=${printArg(d, "v", noFlags())}`;
    });
    out += `%!(EXTRA ${extra.join(", ")})`;
  }
  return out;
}
