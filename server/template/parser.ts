/**
 * Parser for Go text/template (text/template/parse/parse.go semantics): builds one Tree per
 * template name (`define`/`block` add more), checks functions and variables at parse time,
 * and reports errors with Go's wording: `template: NAME:LINE: message`.
 */
import {
  type ArgNode,
  type BranchNode,
  type CommandNode,
  isEmptyTree,
  type ListNode,
  type Node,
  type NumberNode,
  nodeString,
  type PipeNode,
  type TemplateNode,
  type Tree,
  type VariableNode,
} from "./ast.js";
import { goCharValue, goQuote, goUnquote, parseGoFloat, parseGoInt, parseGoUint } from "./go-strconv.js";
import { type Item, isKeyword, lex } from "./lexer.js";

export class ParseFailure extends Error {}

/** Go's item.String(), used in "unexpected … in …" messages. */
function itemString(i: Item): string {
  if (i.type === "eof") return "EOF";
  if (i.type === "error") return i.val;
  if (isKeyword(i.type)) return `<${i.val}>`;
  const runes = [...i.val];
  if (runes.length > 10) return `${goQuote(runes.slice(0, 10).join(""))}...`;
  return goQuote(i.val);
}

type EndOrElse = { type: "end"; pos: number } | { type: "else"; pos: number };
type ListItem = Node | EndOrElse;

/** Shared state of one Parse call: the token stream and the set of trees produced. */
class ParseSession {
  index = 0;
  last: Item;
  readonly trees = new Map<string, Tree>();

  constructor(
    readonly parseName: string,
    readonly text: string,
    readonly items: Item[],
    readonly funcs: ReadonlySet<string>,
  ) {
    this.last = items[0];
  }

  lineOf(pos: number): number {
    let line = 1;
    for (let i = this.text.indexOf("\n"); i >= 0 && i < pos; i = this.text.indexOf("\n", i + 1)) line++;
    return line;
  }

  errorf(msg: string): never {
    throw new ParseFailure(`template: ${this.parseName}:${this.lineOf(this.last.pos)}: ${msg}`);
  }

  addTree(name: string, root: ListNode): void {
    const existing = this.trees.get(name);
    if (!existing || isEmptyTree(existing.root)) {
      this.trees.set(name, { name, root });
      return;
    }
    if (!isEmptyTree(root)) this.errorf(`template: multiple definition of template "${name}"`);
  }
}

/** Parser for one tree (the main template, or one define/block body). */
class TreeParser {
  vars: string[] = ["$"];
  rangeDepth = 0;

  constructor(private readonly s: ParseSession) {}

  // Token access ------------------------------------------------------------------------

  next(): Item {
    const it = this.s.items[Math.min(this.s.index, this.s.items.length - 1)];
    this.s.index++;
    this.s.last = it;
    return it;
  }

  backup(n = 1): void {
    this.s.index -= n;
  }

  peek(): Item {
    const it = this.next();
    this.backup();
    return it;
  }

  nextNonSpace(): Item {
    let it: Item;
    do it = this.next();
    while (it.type === "space");
    return it;
  }

  /** Like Go: skips (consumes) spaces, then leaves the non-space item pending. */
  peekNonSpace(): Item {
    const it = this.nextNonSpace();
    this.backup();
    return it;
  }

  expect(type: Item["type"], context: string): Item {
    const it = this.nextNonSpace();
    if (it.type !== type) this.unexpected(it, context);
    return it;
  }

  expectOneOf(a: Item["type"], b: Item["type"], context: string): Item {
    const it = this.nextNonSpace();
    if (it.type !== a && it.type !== b) this.unexpected(it, context);
    return it;
  }

  unexpected(it: Item, context: string): never {
    if (it.type === "error") this.s.errorf(it.val);
    this.s.errorf(`unexpected ${itemString(it)} in ${context}`);
  }

  unquote(it: Item): string {
    try {
      return goUnquote(it.val);
    } catch (e) {
      this.s.errorf((e as Error).message);
    }
  }

  // Top level ---------------------------------------------------------------------------

  parseMain(name: string): void {
    const nodes: Node[] = [];
    const root: ListNode = { type: "list", pos: this.peek().pos, nodes };
    while (this.peek().type !== "eof") {
      if (this.peek().type === "leftDelim") {
        const mark = this.s.index;
        this.next();
        if (this.nextNonSpace().type === "define") {
          new TreeParser(this.s).parseDefinition();
          continue;
        }
        this.s.index = mark;
      }
      const n = this.textOrAction();
      if (n.type === "end" || n.type === "else") this.s.errorf(`unexpected {{${n.type}}}`);
      nodes.push(n);
    }
    this.s.addTree(name, root);
  }

  parseDefinition(): void {
    const context = "define clause";
    const nameItem = this.expectOneOf("string", "rawString", context);
    const name = this.unquote(nameItem);
    this.expect("rightDelim", context);
    const [list, end] = this.itemList();
    if (end.type !== "end") this.s.errorf(`unexpected {{${end.type}}} in ${context}`);
    this.s.addTree(name, list);
  }

  itemList(): [ListNode, EndOrElse] {
    const nodes: Node[] = [];
    const list: ListNode = { type: "list", pos: this.peekNonSpace().pos, nodes };
    while (this.peekNonSpace().type !== "eof") {
      const n = this.textOrAction();
      if (n.type === "end" || n.type === "else") return [list, n];
      nodes.push(n);
    }
    this.nextNonSpace();
    this.s.errorf("unexpected EOF");
  }

  textOrAction(): ListItem {
    const it = this.nextNonSpace();
    switch (it.type) {
      case "text":
        return { type: "text", pos: it.pos, text: it.val };
      case "leftDelim":
        return this.action();
      default:
        this.unexpected(it, "input");
    }
  }

  action(): ListItem {
    const it = this.nextNonSpace();
    switch (it.type) {
      case "block":
        return this.blockControl();
      case "break":
      case "continue":
        return this.loopControl(it);
      case "else":
        return this.elseControl();
      case "end":
        return { type: "end", pos: this.expect("rightDelim", "end").pos };
      case "if":
        return this.branch("if", true);
      case "range":
        return this.branch("range", false);
      case "template":
        return this.templateControl();
      case "with":
        return this.branch("with", false);
    }
    this.backup();
    const pos = this.peek().pos;
    return { type: "action", pos, pipe: this.pipeline("command", "rightDelim") };
  }

  loopControl(it: Item): Node {
    const kind = it.type as "break" | "continue";
    const tok = this.nextNonSpace();
    if (tok.type !== "rightDelim") this.unexpected(tok, `{{${kind}}}`);
    if (this.rangeDepth === 0) this.s.errorf(`{{${kind}}} outside {{range}}`);
    return { type: kind, pos: it.pos };
  }

  elseControl(): EndOrElse {
    const peek = this.peekNonSpace();
    if (peek.type === "if") return { type: "else", pos: peek.pos };
    return { type: "else", pos: this.expect("rightDelim", "else").pos };
  }

  branch(kind: "if" | "range" | "with", allowElseIf: boolean): BranchNode {
    const mark = this.vars.length;
    try {
      const pipe = this.pipeline(kind, "rightDelim");
      if (kind === "range") this.rangeDepth++;
      const [list, next] = this.itemList();
      if (kind === "range") this.rangeDepth--;
      let elseList: ListNode | null = null;
      if (next.type === "else") {
        if (allowElseIf && this.peek().type === "if") {
          // {{else if x}} is {{else}}{{if x}}…{{end}} sharing one {{end}}.
          this.next();
          elseList = { type: "list", pos: next.pos, nodes: [this.branch("if", true)] };
        } else {
          const [els, end] = this.itemList();
          if (end.type !== "end") this.s.errorf(`expected end; found {{${end.type}}}`);
          elseList = els;
        }
      }
      return { type: kind, pos: pipe.pos, pipe, list, elseList };
    } finally {
      this.vars.length = mark;
    }
  }

  templateName(it: Item, context: string): string {
    if (it.type !== "string" && it.type !== "rawString") this.unexpected(it, context);
    return this.unquote(it);
  }

  templateControl(): TemplateNode {
    const context = "template clause";
    const tok = this.nextNonSpace();
    const name = this.templateName(tok, context);
    let pipe: PipeNode | null = null;
    if (this.nextNonSpace().type !== "rightDelim") {
      this.backup();
      pipe = this.pipeline(context, "rightDelim");
    }
    return { type: "template", pos: tok.pos, name, pipe };
  }

  blockControl(): TemplateNode {
    const context = "block clause";
    const tok = this.nextNonSpace();
    const name = this.templateName(tok, context);
    const pipe = this.pipeline(context, "rightDelim");
    const body = new TreeParser(this.s);
    const [list, end] = body.itemList();
    if (end.type !== "end") this.s.errorf(`unexpected {{${end.type}}} in ${context}`);
    this.s.addTree(name, list);
    return { type: "template", pos: tok.pos, name, pipe };
  }

  // Pipelines ---------------------------------------------------------------------------

  pipeline(context: string, end: "rightDelim" | "rightParen"): PipeNode {
    const pipe: PipeNode = { type: "pipe", pos: this.peekNonSpace().pos, isAssign: false, decl: [], cmds: [] };
    this.declarations(pipe, context);
    for (;;) {
      const tok = this.nextNonSpace();
      if (tok.type === end) {
        this.checkPipeline(pipe, context);
        return pipe;
      }
      switch (tok.type) {
        case "bool":
        case "charConstant":
        case "complex":
        case "dot":
        case "field":
        case "identifier":
        case "number":
        case "nil":
        case "rawString":
        case "string":
        case "variable":
        case "leftParen":
          this.backup();
          pipe.cmds.push(this.command());
          break;
        default:
          this.unexpected(tok, context);
      }
    }
  }

  declarations(pipe: PipeNode, context: string): void {
    for (;;) {
      const v = this.peekNonSpace();
      if (v.type !== "variable") return;
      const mark = this.s.index;
      this.nextNonSpace();
      const next = this.peekNonSpace();
      if (next.type === "assign" || next.type === "declare") {
        pipe.isAssign = next.type === "assign";
        this.nextNonSpace();
        pipe.decl.push({ type: "variable", pos: v.pos, ident: [v.val] });
        this.vars.push(v.val);
        return;
      }
      if (next.type === "char" && next.val === ",") {
        this.nextNonSpace();
        pipe.decl.push({ type: "variable", pos: v.pos, ident: [v.val] });
        this.vars.push(v.val);
        if (context === "range" && pipe.decl.length < 2) {
          const t = this.peekNonSpace().type;
          if (t === "variable" || t === "rightDelim" || t === "rightParen") continue;
          this.s.errorf("range can only initialize variables");
        }
        this.s.errorf(`too many declarations in ${context}`);
      }
      this.s.index = mark;
      return;
    }
  }

  checkPipeline(pipe: PipeNode, context: string): void {
    if (pipe.cmds.length === 0) this.s.errorf(`missing value for ${context}`);
    pipe.cmds.slice(1).forEach((c, i) => {
      const t = c.args[0].type;
      if (t === "bool" || t === "dot" || t === "nil" || t === "number" || t === "string") {
        this.s.errorf(`non executable command in pipeline stage ${i + 2}`);
      }
    });
  }

  command(): CommandNode {
    const cmd: CommandNode = { type: "command", pos: this.peekNonSpace().pos, args: [] };
    for (;;) {
      this.peekNonSpace();
      const operand = this.operand();
      if (operand) cmd.args.push(operand);
      const tok = this.next();
      if (tok.type === "space") continue;
      if (tok.type === "rightDelim" || tok.type === "rightParen") this.backup();
      else if (tok.type !== "pipe") this.unexpected(tok, "operand");
      break;
    }
    if (cmd.args.length === 0) this.s.errorf("empty command");
    return cmd;
  }

  operand(): ArgNode | null {
    const node = this.term();
    if (!node) return null;
    if (this.peek().type !== "field") return node;
    const chainPos = this.peek().pos;
    const fields: string[] = [];
    while (this.peek().type === "field") fields.push(...this.next().val.slice(1).split("."));
    switch (node.type) {
      case "field":
        return { type: "field", pos: chainPos, ident: [...node.ident, ...fields] };
      case "variable":
        return { type: "variable", pos: chainPos, ident: [...node.ident, ...fields] };
      case "bool":
      case "string":
      case "number":
      case "nil":
      case "dot":
        this.s.errorf(`unexpected . after term ${goQuote(nodeString(node))}`);
        break;
      default:
        return { type: "chain", pos: chainPos, node, field: fields };
    }
  }

  term(): ArgNode | null {
    const tok = this.nextNonSpace();
    switch (tok.type) {
      case "identifier":
        if (!this.s.funcs.has(tok.val)) this.s.errorf(`function ${goQuote(tok.val)} not defined`);
        return { type: "identifier", pos: tok.pos, ident: tok.val };
      case "dot":
        return { type: "dot", pos: tok.pos };
      case "nil":
        return { type: "nil", pos: tok.pos };
      case "variable":
        return this.useVar(tok);
      case "field":
        return { type: "field", pos: tok.pos, ident: tok.val.slice(1).split(".") };
      case "bool":
        return { type: "bool", pos: tok.pos, value: tok.val === "true" };
      case "charConstant":
      case "complex":
      case "number":
        return this.newNumber(tok);
      case "leftParen":
        return this.pipeline("parenthesized pipeline", "rightParen");
      case "string":
      case "rawString":
        return { type: "string", pos: tok.pos, quoted: tok.val, text: this.unquote(tok) };
    }
    this.backup();
    return null;
  }

  useVar(tok: Item): VariableNode {
    const ident = tok.val.split(".");
    if (!this.vars.includes(ident[0])) this.s.errorf(`undefined variable ${goQuote(ident[0])}`);
    return { type: "variable", pos: tok.pos, ident };
  }

  newNumber(tok: Item): NumberNode {
    const text = tok.val;
    const base = { type: "number" as const, pos: tok.pos, text };
    if (tok.type === "charConstant") {
      let r: number;
      try {
        r = goCharValue(text);
      } catch (e) {
        this.s.errorf((e as Error).message);
      }
      return { ...base, isInt: true, isUint: true, isFloat: true, int: BigInt(r), float: r };
    }
    if (tok.type === "complex" || text.endsWith("i")) {
      // Complex constants are legal Go but meaningless for these templates.
      this.s.errorf(`complex constants are not supported: ${goQuote(text)}`);
    }
    const u = parseGoUint(text);
    const i = parseGoInt(text);
    if (i !== null) return { ...base, isInt: true, isUint: u !== null, isFloat: true, int: i, float: Number(i) };
    if (u !== null) return { ...base, isInt: false, isUint: true, isFloat: true, int: 0n, float: Number(u) };
    const f = parseGoFloat(text);
    if (f !== null) {
      if (!/[.eEpP]/.test(text)) this.s.errorf(`integer overflow: ${goQuote(text)}`);
      const integral = Number.isInteger(f) && Math.abs(f) < 2 ** 63;
      return {
        ...base,
        isInt: integral,
        isUint: integral && f >= 0,
        isFloat: true,
        int: integral ? BigInt(f) : 0n,
        float: f,
      };
    }
    this.s.errorf(`illegal number syntax: ${goQuote(text)}`);
  }
}

/**
 * Parses `text` as template `name` (Go's template.New(name).Parse(text)). Returns every tree
 * by name; throws ParseFailure with Go's message.
 */
export function parseTemplate(name: string, text: string, funcs: ReadonlySet<string>): Map<string, Tree> {
  const session = new ParseSession(name, text, lex(text), funcs);
  new TreeParser(session).parseMain(name);
  return session.trees;
}
