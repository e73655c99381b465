/**
 * The parts of Go's strconv that text/template output depends on: Quote, Unquote,
 * ParseInt/ParseFloat of Go literals, and FormatFloat ('e', 'f', 'g' with Go's rounding).
 */

const LOWER_HEX = "0123456789abcdef";

export function isGoPrint(cp: number): boolean {
  if (cp === 0x20) return true;
  if (cp < 0x20 || cp === 0x7f) return false;
  return /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u.test(String.fromCodePoint(cp));
}

function hexPad(n: number, width: number): string {
  let s = "";
  for (let i = width - 1; i >= 0; i--) s += LOWER_HEX[(n >> (4 * i)) & 0xf];
  return s;
}

function escapeRune(cp: number, quote: string, asciiOnly: boolean): string {
  const ch = String.fromCodePoint(cp);
  if (ch === quote || ch === "\\") return `\\${ch}`;
  if (asciiOnly ? cp < 0x80 && isGoPrint(cp) : isGoPrint(cp)) return ch;
  switch (cp) {
    case 0x07:
      return "\\a";
    case 0x08:
      return "\\b";
    case 0x0c:
      return "\\f";
    case 0x0a:
      return "\\n";
    case 0x0d:
      return "\\r";
    case 0x09:
      return "\\t";
    case 0x0b:
      return "\\v";
  }
  if (cp < 0x20 || cp === 0x7f) return `\\x${hexPad(cp, 2)}`;
  if (cp >= 0xd800 && cp <= 0xdfff) return "\\ufffd"; // lone surrogate: not a valid rune
  if (cp < 0x10000) return `\\u${hexPad(cp, 4)}`;
  return `\\U${hexPad(cp, 8)}`;
}

/** strconv.Quote / QuoteToASCII. */
export function goQuote(s: string, asciiOnly = false): string {
  let out = '"';
  for (const ch of s) out += escapeRune(ch.codePointAt(0)!, '"', asciiOnly);
  return `${out}"`;
}

/** strconv.QuoteRune. */
export function goQuoteRune(cp: number, asciiOnly = false): string {
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp < 0) cp = 0xfffd;
  return `'${escapeRune(cp, "'", asciiOnly)}'`;
}

/** strconv.CanBackquote. */
export function canBackquote(s: string): boolean {
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === "`" || cp === 0xfeff) return false;
    if (cp < 0x20 && ch !== "\t") return false;
    if (cp === 0x7f) return false;
  }
  return true;
}

export class GoSyntaxError extends Error {}

const SIMPLE_ESCAPES: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, "\\": 92 };

/**
 * strconv.UnquoteChar over a JS string. Returns the decoded piece: a code point, or a raw
 * byte (from \x or octal escapes) that the caller assembles as UTF-8.
 */
function unquoteChar(s: string, i: number, quote: string): { cp?: number; byte?: number; next: number } {
  const ch = s[i];
  if (ch !== "\\") {
    if (ch === quote && (quote === "'" || quote === '"')) throw new GoSyntaxError("invalid syntax");
    const cp = s.codePointAt(i)!;
    return { cp, next: i + (cp > 0xffff ? 2 : 1) };
  }
  const c = s[i + 1];
  if (c === undefined) throw new GoSyntaxError("invalid syntax");
  if (c in SIMPLE_ESCAPES) return { cp: SIMPLE_ESCAPES[c], next: i + 2 };
  if (c === "'" || c === '"') {
    if (c !== quote) throw new GoSyntaxError("invalid syntax");
    return { cp: c.charCodeAt(0), next: i + 2 };
  }
  const hexLen = c === "x" ? 2 : c === "u" ? 4 : c === "U" ? 8 : 0;
  if (hexLen > 0) {
    const digits = s.slice(i + 2, i + 2 + hexLen);
    if (digits.length !== hexLen || !/^[0-9a-fA-F]+$/.test(digits)) throw new GoSyntaxError("invalid syntax");
    const v = Number.parseInt(digits, 16);
    if (c === "x") return { byte: v, next: i + 2 + hexLen };
    if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) throw new GoSyntaxError("invalid syntax");
    return { cp: v, next: i + 2 + hexLen };
  }
  if (c >= "0" && c <= "7") {
    const digits = s.slice(i + 1, i + 4);
    if (!/^[0-7]{3}$/.test(digits)) throw new GoSyntaxError("invalid syntax");
    const v = Number.parseInt(digits, 8);
    if (v > 255) throw new GoSyntaxError("invalid syntax");
    return { byte: v, next: i + 4 };
  }
  throw new GoSyntaxError("invalid syntax");
}

/** strconv.Unquote for "…", `…` and '…' literals (a char literal yields its one rune). */
export function goUnquote(lit: string): string {
  const q = lit[0];
  if (lit.length < 2 || lit[lit.length - 1] !== q) throw new GoSyntaxError("invalid syntax");
  const body = lit.slice(1, -1);
  if (q === "`") {
    if (body.includes("`")) throw new GoSyntaxError("invalid syntax");
    return body.replaceAll("\r", "");
  }
  if (q !== '"' && q !== "'") throw new GoSyntaxError("invalid syntax");
  if (body.includes("\n")) throw new GoSyntaxError("invalid syntax");
  const bytes: number[] = [];
  let i = 0;
  let runes = 0;
  while (i < body.length) {
    const r = unquoteChar(body, i, q);
    i = r.next;
    runes++;
    if (r.byte !== undefined) bytes.push(r.byte);
    else for (const b of Buffer.from(String.fromCodePoint(r.cp!), "utf8")) bytes.push(b);
  }
  if (q === "'" && runes !== 1) throw new GoSyntaxError("invalid syntax");
  return Buffer.from(bytes).toString("utf8");
}

/** Decodes a Go char literal ('a', '\n', '\x41', '\u00e9') to its rune value. */
export function goCharValue(lit: string): number {
  if (lit.length < 3 || lit[0] !== "'" || lit[lit.length - 1] !== "'") throw new GoSyntaxError("invalid syntax");
  const r = unquoteChar(lit, 1, "'");
  if (r.next !== lit.length - 1) throw new GoSyntaxError(`malformed character constant: ${lit}`);
  return r.cp ?? r.byte!;
}

function underscoreOK(s: string): boolean {
  // Underscores must separate digits (a base prefix counts as a digit).
  let saw: "^" | "0" | "_" | "!" = "^";
  let i = 0;
  if (s.startsWith("+") || s.startsWith("-")) s = s.slice(1);
  let hex = false;
  if (s.length >= 2 && s[0] === "0" && /[bBoOxX]/.test(s[1])) {
    hex = s[1] === "x" || s[1] === "X";
    i = 2;
    saw = "0";
  }
  for (; i < s.length; i++) {
    const c = s[i];
    if ((c >= "0" && c <= "9") || (hex && /[a-fA-F]/.test(c))) {
      saw = "0";
      continue;
    }
    if (c === "_") {
      if (saw !== "0") return false;
      saw = "_";
      continue;
    }
    if (saw === "_") return false;
    saw = "!";
  }
  return saw !== "_";
}

/** strconv.ParseInt(s, 0, 64) as a bigint, or null on syntax/range error. */
export function parseGoInt(text: string): bigint | null {
  if (!underscoreOK(text)) return null;
  let s = text.replaceAll("_", "");
  let neg = false;
  if (s.startsWith("+") || s.startsWith("-")) {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  let digits = s;
  let radix = 10;
  if (/^0[xX]/.test(s)) [radix, digits] = [16, s.slice(2)];
  else if (/^0[bB]/.test(s)) [radix, digits] = [2, s.slice(2)];
  else if (/^0[oO]/.test(s)) [radix, digits] = [8, s.slice(2)];
  else if (s.length > 1 && s[0] === "0") [radix, digits] = [8, s.slice(1)];
  const valid = { 2: /^[01]+$/, 8: /^[0-7]+$/, 10: /^[0-9]+$/, 16: /^[0-9a-fA-F]+$/ }[radix]!;
  if (!valid.test(digits)) return null;
  let v = 0n;
  for (const d of digits) v = v * BigInt(radix) + BigInt(Number.parseInt(d, 16));
  if (neg) v = -v;
  if (v > 0x7fffffffffffffffn || v < -0x8000000000000000n) return null;
  return v;
}

/** strconv.ParseUint(s, 0, 64) validity (used only to tell int overflow from bad syntax). */
export function parseGoUint(text: string): bigint | null {
  if (text.startsWith("-") || text.startsWith("+")) return null;
  if (!underscoreOK(text)) return null;
  const asInt = parseGoInt(`-${text}`);
  if (asInt === null) {
    // Could still be a uint64 larger than int64: re-check digits only.
    const s = text.replaceAll("_", "");
    try {
      const v = BigInt(/^0[0-7]+$/.test(s) ? `0o${s.slice(1)}` : s);
      return v <= 0xffffffffffffffffn ? v : null;
    } catch {
      return null;
    }
  }
  return -asInt;
}

/** strconv.ParseFloat(s, 64) for Go literal syntax (decimal and hex floats, underscores). */
export function parseGoFloat(text: string): number | null {
  if (!underscoreOK(text)) return null;
  const s = text.replaceAll("_", "");
  const dec = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
  if (dec.test(s)) return Number(s);
  const hex = /^([+-]?)0[xX]([0-9a-fA-F]*)\.?([0-9a-fA-F]*)[pP]([+-]?\d+)$/.exec(s);
  if (hex && (hex[2] || hex[3])) {
    const mant = Number.parseInt(hex[2] + hex[3] || "0", 16);
    const v = mant * 2 ** (Number(hex[4]) - 4 * hex[3].length);
    return hex[1] === "-" ? -v : v;
  }
  return null;
}

/** Decimal digits of a float: value = 0.d1d2d3… × 10^dp (digits without leading/trailing zeros). */
interface Decimal {
  digits: string;
  dp: number;
}

/** The exact decimal expansion of a finite, non-negative double. */
function exactDecimal(x: number): Decimal {
  if (x === 0) return { digits: "", dp: 0 };
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const expBits = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & 0xfffffffffffffn;
  let exp: number;
  if (expBits === 0) exp = -1074;
  else {
    mant |= 1n << 52n;
    exp = expBits - 1075;
  }
  let digits: string;
  let dp: number;
  if (exp >= 0) {
    digits = (mant << BigInt(exp)).toString();
    dp = digits.length;
  } else {
    digits = (mant * 5n ** BigInt(-exp)).toString();
    dp = digits.length + exp;
  }
  return trimDecimal({ digits, dp });
}

function trimDecimal(d: Decimal): Decimal {
  let { digits, dp } = d;
  const lead = digits.length - digits.replace(/^0+/, "").length;
  digits = digits.slice(lead);
  dp -= lead;
  digits = digits.replace(/0+$/, "");
  if (digits === "") dp = 0;
  return { digits, dp };
}

/** Shortest digits that round-trip (what Go's FormatFloat(x, _, -1, 64) uses). */
function shortestDecimal(x: number): Decimal {
  if (x === 0) return { digits: "", dp: 0 };
  const m = /^(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(x.toExponential());
  if (!m) throw new Error(`unexpected exponential form for ${x}`);
  return trimDecimal({ digits: m[1] + (m[2] ?? ""), dp: Number(m[3]) + 1 });
}

/** Rounds to nd digits with Go's rule: exact halves go to even. */
function roundDecimal(d: Decimal, nd: number): Decimal {
  if (nd < 0) return { digits: "", dp: 0 };
  if (nd >= d.digits.length) return d;
  const next = d.digits.charCodeAt(nd) - 48;
  let up: boolean;
  if (next === 5 && nd + 1 === d.digits.length) up = nd > 0 && (d.digits.charCodeAt(nd - 1) - 48) % 2 === 1;
  else up = next >= 5;
  if (!up) return trimDecimal({ digits: d.digits.slice(0, nd), dp: d.dp });
  const arr = d.digits.slice(0, nd).split("");
  let i = nd - 1;
  while (i >= 0 && arr[i] === "9") {
    arr[i] = "0";
    i--;
  }
  if (i < 0) return { digits: "1", dp: d.dp + 1 };
  arr[i] = String.fromCharCode(arr[i].charCodeAt(0) + 1);
  return trimDecimal({ digits: arr.join(""), dp: d.dp });
}

function digitAt(d: Decimal, i: number): string {
  return i >= 0 && i < d.digits.length ? d.digits[i] : "0";
}

function fmtE(d: Decimal, prec: number, e: string): string {
  let s = d.digits.length === 0 ? "0" : d.digits[0];
  if (prec > 0) {
    s += ".";
    for (let i = 1; i <= prec; i++) s += digitAt(d, i);
  }
  const exp = d.digits.length === 0 ? 0 : d.dp - 1;
  const abs = Math.abs(exp);
  return `${s}${e}${exp < 0 ? "-" : "+"}${abs < 10 ? "0" : ""}${abs}`;
}

function fmtF(d: Decimal, prec: number): string {
  let s = "";
  if (d.dp > 0) for (let i = 0; i < d.dp; i++) s += digitAt(d, i);
  else s = "0";
  if (prec > 0) {
    s += ".";
    for (let i = 0; i < prec; i++) s += digitAt(d, d.dp + i);
  }
  return s;
}

/** strconv.FormatFloat(x, fmt, prec, 64) for fmt in e E f g G (prec -1 = shortest). */
export function formatGoFloat(x: number, fmt: "e" | "E" | "f" | "g" | "G", prec: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Number.POSITIVE_INFINITY) return "+Inf";
  if (x === Number.NEGATIVE_INFINITY) return "-Inf";
  const neg = x < 0 || Object.is(x, -0);
  const abs = Math.abs(x);
  const shortest = prec < 0;
  let d: Decimal;
  if (shortest) {
    d = shortestDecimal(abs);
    if (fmt === "e" || fmt === "E") prec = Math.max(d.digits.length - 1, 0);
    else if (fmt === "f") prec = Math.max(d.digits.length - d.dp, 0);
    else prec = d.digits.length;
  } else {
    const exact = exactDecimal(abs);
    if (fmt === "e" || fmt === "E") d = roundDecimal(exact, prec + 1);
    else if (fmt === "f") d = roundDecimal(exact, exact.dp + prec);
    else {
      if (prec === 0) prec = 1;
      d = roundDecimal(exact, prec);
    }
  }
  const sign = neg ? "-" : "";
  if (fmt === "e" || fmt === "E") return sign + fmtE(d, prec, fmt);
  if (fmt === "f") return sign + fmtF(d, prec);
  let eprec = prec;
  if (eprec > d.digits.length && d.digits.length >= d.dp) eprec = d.digits.length;
  if (shortest) eprec = 6;
  const exp = d.dp - 1;
  if (exp < -4 || exp >= eprec) {
    if (prec > d.digits.length) prec = d.digits.length;
    return sign + fmtE(d, prec - 1, fmt === "g" ? "e" : "E");
  }
  if (prec > d.dp) prec = d.digits.length;
  return sign + fmtF(d, Math.max(prec - d.dp, 0));
}
