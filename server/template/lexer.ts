/**
 * Lexer for Go text/template source, following the state machine of Go's
 * text/template/parse/lex.go: text, `{{`/`}}` with `-` trim markers, comments, and the
 * tokens inside actions. Errors become an "error" item (then the stream ends), exactly
 * like Go, so the parser reports them at the point where it reads them.
 */

export type ItemType =
  | "error"
  | "bool"
  | "char"
  | "charConstant"
  | "complex"
  | "assign"
  | "declare"
  | "eof"
  | "field"
  | "identifier"
  | "leftDelim"
  | "leftParen"
  | "number"
  | "pipe"
  | "rawString"
  | "rightDelim"
  | "rightParen"
  | "space"
  | "string"
  | "text"
  | "variable"
  // keywords
  | "block"
  | "break"
  | "continue"
  | "dot"
  | "define"
  | "else"
  | "end"
  | "if"
  | "nil"
  | "range"
  | "template"
  | "with";

export interface Item {
  readonly type: ItemType;
  /** UTF-16 offset of the item in the source. */
  readonly pos: number;
  readonly val: string;
}

const KEYWORDS: ReadonlyMap<string, ItemType> = new Map<string, ItemType>([
  [".", "dot"],
  ["block", "block"],
  ["break", "break"],
  ["continue", "continue"],
  ["define", "define"],
  ["else", "else"],
  ["end", "end"],
  ["if", "if"],
  ["range", "range"],
  ["nil", "nil"],
  ["template", "template"],
  ["with", "with"],
]);

const KEYWORD_TYPES: ReadonlySet<ItemType> = new Set(KEYWORDS.values());

export function isKeyword(t: ItemType): boolean {
  return KEYWORD_TYPES.has(t);
}

const LEFT = "{{";
const RIGHT = "}}";
const LEFT_COMMENT = "/*";
const RIGHT_COMMENT = "*/";
const TRIM_MARKER_LEN = 2;

function isSpace(c: string | undefined): boolean {
  return c === " " || c === "\t" || c === "\r" || c === "\n";
}

function isAlphaNumeric(c: string | undefined): boolean {
  return c !== undefined && (c === "_" || /^[\p{L}\p{Nd}]$/u.test(c));
}

function hasLeftTrimMarker(s: string, at: number): boolean {
  return s[at] === "-" && isSpace(s[at + 1]);
}

function hasRightTrimMarker(s: string, at: number): boolean {
  return isSpace(s[at]) && s[at + 1] === "-";
}

function rightTrimLength(s: string): number {
  return s.length - s.replace(/[ \t\r\n]+$/, "").length;
}

function leftTrimLength(s: string, from: number): number {
  let i = from;
  while (i < s.length && isSpace(s[i])) i++;
  return i - from;
}

type StateFn = ((l: Lexer) => StateFn) | null;

class Lexer {
  pos = 0;
  start = 0;
  parenDepth = 0;
  readonly items: Item[] = [];

  constructor(readonly input: string) {}

  /** Next code point as a string ("" at EOF). */
  next(): string {
    if (this.pos >= this.input.length) {
      this.pos = this.input.length + 1; // so that backup() after EOF is harmless
      return "";
    }
    const cp = this.input.codePointAt(this.pos)!;
    const ch = String.fromCodePoint(cp);
    this.pos += ch.length;
    return ch;
  }

  peek(): string {
    if (this.pos >= this.input.length) return "";
    return String.fromCodePoint(this.input.codePointAt(this.pos)!);
  }

  backup(ch: string): void {
    this.pos -= ch === "" ? 1 : ch.length;
  }

  emit(type: ItemType): StateFn {
    this.items.push({ type, pos: this.start, val: this.input.slice(this.start, this.pos) });
    this.start = this.pos;
    return null;
  }

  ignore(): void {
    this.start = this.pos;
  }

  accept(valid: string): boolean {
    const c = this.next();
    if (c !== "" && valid.includes(c)) return true;
    this.backup(c);
    return false;
  }

  acceptRun(valid: string): void {
    for (;;) {
      const c = this.next();
      if (c === "" || !valid.includes(c)) {
        this.backup(c);
        return;
      }
    }
  }

  errorf(msg: string): StateFn {
    this.items.push({ type: "error", pos: this.start, val: msg });
    return null;
  }

  atRightDelim(): { delim: boolean; trim: boolean } {
    if (hasRightTrimMarker(this.input, this.pos) && this.input.startsWith(RIGHT, this.pos + TRIM_MARKER_LEN)) {
      return { delim: true, trim: true };
    }
    return { delim: this.input.startsWith(RIGHT, this.pos), trim: false };
  }

  atTerminator(): boolean {
    const r = this.peek();
    if (isSpace(r)) return true;
    if (r === "" || ".,|:)(".includes(r)) return true;
    return this.input.startsWith(RIGHT, this.pos);
  }

  run(): Item[] {
    let state: StateFn = lexText;
    while (state) {
      const before = this.items.length;
      state = state(this);
      const last = this.items[this.items.length - 1];
      if (this.items.length > before && (last.type === "error" || last.type === "eof")) break;
    }
    return this.items;
  }
}

// Each state returns the next state; emitting an item and continuing is expressed by
// the caller deciding the following state explicitly (no goroutines needed).

function lexText(l: Lexer): StateFn {
  const x = l.input.indexOf(LEFT, l.pos);
  if (x >= 0) {
    if (x > l.pos) {
      l.pos = x;
      let trimLength = 0;
      if (hasLeftTrimMarker(l.input, x + LEFT.length)) trimLength = rightTrimLength(l.input.slice(l.start, l.pos));
      l.pos -= trimLength;
      const text = l.input.slice(l.start, l.pos);
      if (text.length > 0) l.items.push({ type: "text", pos: l.start, val: text });
      l.pos += trimLength;
      l.ignore();
    }
    return lexLeftDelim;
  }
  l.pos = l.input.length;
  if (l.pos > l.start) l.emit("text");
  l.emit("eof");
  return null;
}

function lexLeftDelim(l: Lexer): StateFn {
  l.pos += LEFT.length;
  const trim = hasLeftTrimMarker(l.input, l.pos);
  const afterMarker = trim ? TRIM_MARKER_LEN : 0;
  if (l.input.startsWith(LEFT_COMMENT, l.pos + afterMarker)) {
    l.pos += afterMarker;
    l.ignore();
    return lexComment;
  }
  l.items.push({ type: "leftDelim", pos: l.start, val: LEFT });
  l.pos += afterMarker;
  l.ignore();
  l.parenDepth = 0;
  return lexInsideAction;
}

function lexComment(l: Lexer): StateFn {
  l.pos += LEFT_COMMENT.length;
  const x = l.input.indexOf(RIGHT_COMMENT, l.pos);
  if (x < 0) return l.errorf("unclosed comment");
  l.pos = x + RIGHT_COMMENT.length;
  const { delim, trim } = l.atRightDelim();
  if (!delim) return l.errorf("comment ends before closing delimiter");
  if (trim) l.pos += TRIM_MARKER_LEN;
  l.pos += RIGHT.length;
  if (trim) l.pos += leftTrimLength(l.input, l.pos);
  l.ignore();
  return lexText;
}

function lexRightDelim(l: Lexer): StateFn {
  const { trim } = l.atRightDelim();
  if (trim) {
    l.pos += TRIM_MARKER_LEN;
    l.ignore();
  }
  l.pos += RIGHT.length;
  l.items.push({ type: "rightDelim", pos: l.start, val: RIGHT });
  if (trim) l.pos += leftTrimLength(l.input, l.pos);
  l.ignore();
  return lexText;
}

function lexInsideAction(l: Lexer): StateFn {
  const { delim } = l.atRightDelim();
  if (delim) {
    if (l.parenDepth === 0) return lexRightDelim;
    return l.errorf("unclosed left paren");
  }
  const r = l.next();
  if (r === "") return l.errorf("unclosed action");
  if (isSpace(r)) {
    l.backup(r);
    return lexSpace;
  }
  switch (r) {
    case "=":
      l.emit("assign");
      return lexInsideAction;
    case ":":
      if (l.next() !== "=") return l.errorf("expected :=");
      l.emit("declare");
      return lexInsideAction;
    case "|":
      l.emit("pipe");
      return lexInsideAction;
    case '"':
      return lexQuote;
    case "`":
      return lexRawQuote;
    case "$":
      return lexVariable;
    case "'":
      return lexChar;
    case "(":
      l.parenDepth++;
      l.emit("leftParen");
      return lexInsideAction;
    case ")":
      l.parenDepth--;
      if (l.parenDepth < 0) return l.errorf("unexpected right paren");
      l.emit("rightParen");
      return lexInsideAction;
  }
  if (r === ".") {
    const c = l.input[l.pos];
    if (l.pos < l.input.length && (c < "0" || c > "9")) return lexField;
    l.backup(r);
    return lexNumber;
  }
  if (r === "+" || r === "-" || (r >= "0" && r <= "9")) {
    l.backup(r);
    return lexNumber;
  }
  if (isAlphaNumeric(r)) {
    l.backup(r);
    return lexIdentifier;
  }
  const cp = r.codePointAt(0)!;
  if (cp <= 0x7f && cp >= 0x20 && cp !== 0x7f) {
    l.emit("char");
    return lexInsideAction;
  }
  return l.errorf(`unrecognized character in action: U+${cp.toString(16).toUpperCase().padStart(4, "0")}`);
}

function lexSpace(l: Lexer): StateFn {
  let numSpaces = 0;
  while (isSpace(l.peek())) {
    l.next();
    numSpaces++;
  }
  // A trim-marked right delimiter: " -}}". The space before '-' belongs to the marker.
  if (hasRightTrimMarker(l.input, l.pos - 1) && l.input.startsWith(RIGHT, l.pos - 1 + TRIM_MARKER_LEN)) {
    l.pos--;
    if (numSpaces === 1) return lexInsideAction;
  }
  l.emit("space");
  return lexInsideAction;
}

function lexIdentifier(l: Lexer): StateFn {
  for (;;) {
    const r = l.next();
    if (isAlphaNumeric(r)) continue;
    l.backup(r);
    const word = l.input.slice(l.start, l.pos);
    if (!l.atTerminator()) return l.errorf(`bad character ${goRuneName(r)}`);
    const kw = KEYWORDS.get(word);
    if (kw && kw !== "dot") l.emit(kw);
    else if (word[0] === ".") l.emit("field");
    else if (word === "true" || word === "false") l.emit("bool");
    else l.emit("identifier");
    return lexInsideAction;
  }
}

function goRuneName(r: string): string {
  if (r === "") return "U+FFFFFFFF"; // Go prints EOF (-1) this way
  const cp = r.codePointAt(0)!;
  return `U+${cp.toString(16).toUpperCase().padStart(4, "0")} '${r}'`;
}

function lexField(l: Lexer): StateFn {
  return lexFieldOrVariable(l, "field");
}

function lexVariable(l: Lexer): StateFn {
  if (l.atTerminator()) {
    l.emit("variable");
    return lexInsideAction;
  }
  return lexFieldOrVariable(l, "variable");
}

function lexFieldOrVariable(l: Lexer, type: "field" | "variable"): StateFn {
  if (l.atTerminator()) {
    l.emit(type === "variable" ? "variable" : "dot");
    return lexInsideAction;
  }
  let r: string;
  for (;;) {
    r = l.next();
    if (!isAlphaNumeric(r)) {
      l.backup(r);
      break;
    }
  }
  if (!l.atTerminator()) return l.errorf(`bad character ${goRuneName(r)}`);
  l.emit(type);
  return lexInsideAction;
}

function lexChar(l: Lexer): StateFn {
  for (;;) {
    let c = l.next();
    if (c === "\\") {
      c = l.next();
      if (c !== "" && c !== "\n") continue;
    }
    if (c === "" || c === "\n") return l.errorf("unterminated character constant");
    if (c === "'") break;
  }
  l.emit("charConstant");
  return lexInsideAction;
}

function scanNumber(l: Lexer): boolean {
  l.accept("+-");
  let digits = "0123456789_";
  if (l.accept("0")) {
    if (l.accept("xX")) digits = "0123456789abcdefABCDEF_";
    else if (l.accept("oO")) digits = "01234567_";
    else if (l.accept("bB")) digits = "01_";
  }
  l.acceptRun(digits);
  if (l.accept(".")) l.acceptRun(digits);
  if (digits.length === 11 && l.accept("eE")) {
    l.accept("+-");
    l.acceptRun("0123456789_");
  }
  if (digits.length === 23 && l.accept("pP")) {
    l.accept("+-");
    l.acceptRun("0123456789_");
  }
  l.accept("i");
  if (isAlphaNumeric(l.peek())) {
    l.next();
    return false;
  }
  return true;
}

function lexNumber(l: Lexer): StateFn {
  if (!scanNumber(l)) return l.errorf(`bad number syntax: "${l.input.slice(l.start, l.pos)}"`);
  const sign = l.peek();
  if (sign === "+" || sign === "-") {
    if (!scanNumber(l) || l.input[l.pos - 1] !== "i") {
      return l.errorf(`bad number syntax: "${l.input.slice(l.start, l.pos)}"`);
    }
    l.emit("complex");
    return lexInsideAction;
  }
  l.emit("number");
  return lexInsideAction;
}

function lexQuote(l: Lexer): StateFn {
  for (;;) {
    let c = l.next();
    if (c === "\\") {
      c = l.next();
      if (c !== "" && c !== "\n") continue;
    }
    if (c === "" || c === "\n") return l.errorf("unterminated quoted string");
    if (c === '"') break;
  }
  l.emit("string");
  return lexInsideAction;
}

function lexRawQuote(l: Lexer): StateFn {
  for (;;) {
    const c = l.next();
    if (c === "") return l.errorf("unterminated raw quoted string");
    if (c === "`") break;
  }
  l.emit("rawString");
  return lexInsideAction;
}

/** Tokenises the whole source; the list ends with an "eof" or an "error" item. */
export function lex(input: string): Item[] {
  return new Lexer(input).run();
}
