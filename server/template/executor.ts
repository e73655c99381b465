/**
 * Executes parsed templates against Go values, following text/template/exec.go: field and
 * method resolution, variables, if/with/range (break/continue), template calls, pipelines
 * and builtin calls with Go's argument rules. Output streams into a buffer so that, like Go,
 * whatever was written before an error is available as the partial output.
 */
import type {
  ArgNode,
  BranchNode,
  ChainNode,
  CommandNode,
  FieldNode,
  IdentifierNode,
  Node,
  NumberNode,
  PipeNode,
  TemplateNode,
  Tree,
  VariableNode,
} from "./ast.js";
import { nodeString } from "./ast.js";
import { BUILTINS, type Builtin, BuiltinError, isTrue, type ParamKind } from "./builtins.js";
import { goFormatV, goSprint } from "./go-fmt.js";
import { goQuote } from "./go-strconv.js";
import {
  fieldPath,
  findMethod,
  type GoValue,
  goBool,
  goFloat,
  goInt,
  goString,
  indirect,
  indirectInterface,
  sortedMapKeys,
  types,
  unwrapEmptyInterface,
  type Value,
  zeroValue,
} from "./go-values.js";

export type MissingKey = "default" | "zero" | "error";

export interface ExecOptions {
  readonly missingKey: MissingKey;
  /** Functions added with Go's Template.Funcs; found before the builtins, as in Go's findFunction. */
  readonly funcs?: ReadonlyMap<string, Builtin>;
}

/** An execution error with Go's message; `partial` is the output written before it. */
export class ExecFailure extends Error {
  constructor(
    message: string,
    readonly partial: string,
  ) {
    super(message);
  }
}

/** Go's missingVal: "no final argument from a previous pipeline stage". */
const MISSING: unique symbol = Symbol("missing");
type Final = Value | typeof MISSING;

/**
 * Go's maxExecDepth is 100000; JavaScript stacks are far shallower, so recursion through
 * {{template}} is capped lower to fail with a clean error instead of a stack overflow.
 */
const MAX_EXEC_DEPTH = 1000;

type Control = "break" | "continue" | undefined;

interface Variable {
  name: string;
  value: Value;
}

class Abort extends Error {}

class State {
  vars: Variable[];
  node: Node | null = null;

  constructor(
    readonly trees: ReadonlyMap<string, Tree>,
    readonly parseName: string,
    readonly source: string,
    readonly tmplName: string,
    readonly options: ExecOptions,
    readonly out: string[],
    readonly depth: number,
    dot: Value,
  ) {
    this.vars = [{ name: "$", value: dot }];
  }

  at(n: Node): void {
    this.node = n;
  }

  /** Go's ErrorContext: NAME:LINE:BYTECOLUMN and the node's source form. */
  errorf(msg: string): never {
    let text: string;
    if (this.node === null) text = `template: ${this.tmplName}: ${msg}`;
    else {
      const pos = this.node.pos;
      const before = this.source.slice(0, pos);
      const nl = before.lastIndexOf("\n");
      const line = before.split("\n").length;
      const col = nl < 0 ? Buffer.byteLength(before, "utf8") : Buffer.byteLength(before.slice(nl + 1), "utf8");
      const ctx = nodeString(this.node);
      text = `template: ${this.parseName}:${line}:${col}: executing ${goQuote(this.tmplName)} at <${ctx}>: ${msg}`;
    }
    throw new Abort(text);
  }

  // Variables -----------------------------------------------------------------------------

  mark(): number {
    return this.vars.length;
  }

  pop(mark: number): void {
    this.vars.length = mark;
  }

  setVar(name: string, value: Value): void {
    for (let i = this.vars.length - 1; i >= 0; i--) {
      if (this.vars[i].name === name) {
        this.vars[i].value = value;
        return;
      }
    }
    this.errorf(`undefined variable: ${name}`);
  }

  setTopVar(n: number, value: Value): void {
    this.vars[this.vars.length - n].value = value;
  }

  varValue(name: string): Value {
    for (let i = this.vars.length - 1; i >= 0; i--) if (this.vars[i].name === name) return this.vars[i].value;
    this.errorf(`undefined variable: ${name}`);
  }

  // Walking -------------------------------------------------------------------------------

  walk(dot: Value, node: Node): Control {
    this.at(node);
    switch (node.type) {
      case "action": {
        const val = this.evalPipeline(dot, node.pipe);
        if (node.pipe.decl.length === 0) this.printValue(node, val);
        return undefined;
      }
      case "break":
      case "continue":
        return node.type;
      case "comment":
        return undefined;
      case "if":
      case "with":
        return this.walkIfOrWith(dot, node);
      case "list":
        for (const n of node.nodes) {
          const c = this.walk(dot, n);
          if (c) return c;
        }
        return undefined;
      case "range":
        this.walkRange(dot, node);
        return undefined;
      case "template":
        this.walkTemplate(dot, node);
        return undefined;
      case "text":
        this.out.push(node.text);
        return undefined;
      default:
        this.errorf(`unknown node: ${nodeString(node)}`);
    }
  }

  walkIfOrWith(dot: Value, node: BranchNode): Control {
    const mark = this.mark();
    try {
      const val = this.evalPipeline(dot, node.pipe);
      const [truth, ok] = isTrue(indirectInterface(val));
      if (!ok) this.errorf(`if/with can't use ${goFormatV(val)}`);
      if (truth) return this.walk(node.type === "with" ? val : dot, node.list);
      if (node.elseList) return this.walk(dot, node.elseList);
      return undefined;
    } finally {
      this.pop(mark);
    }
  }

  walkRange(dot: Value, node: BranchNode): void {
    this.at(node);
    const outer = this.mark();
    try {
      const piped = this.evalPipeline(dot, node.pipe);
      const val = piped === null ? null : indirect(piped)[0];
      const mark = this.mark();
      const decl = node.pipe.decl.length;
      // Returns true when the loop must stop ({{break}}).
      const oneIteration = (key: Value, elem: Value): boolean => {
        if (decl > 0) this.setTopVar(1, elem);
        if (decl > 1) this.setTopVar(2, key);
        try {
          return this.walk(elem, node.list) === "break";
        } finally {
          this.pop(mark);
        }
      };
      if (val !== null && val.type.kind === "slice") {
        const items = (val.v as GoValue[] | null) ?? [];
        if (items.length > 0) {
          for (let i = 0; i < items.length; i++) if (oneIteration(goInt(i), items[i])) break;
          return;
        }
      } else if (val !== null && val.type.kind === "map") {
        const m = (val.v as Map<string, GoValue> | null) ?? new Map<string, GoValue>();
        if (m.size > 0) {
          const keyType = val.type.key;
          for (const k of sortedMapKeys(m)) if (oneIteration({ type: keyType, v: k }, m.get(k)!)) break;
          return;
        }
      } else if (val !== null) {
        this.errorf(`range can't iterate over ${goFormatV(val)}`);
      }
      if (node.elseList) this.walk(dot, node.elseList);
    } finally {
      this.pop(outer);
    }
  }

  walkTemplate(dot: Value, node: TemplateNode): void {
    this.at(node);
    const tree = this.trees.get(node.name);
    if (!tree) this.errorf(`template ${goQuote(node.name)} not defined`);
    if (this.depth >= MAX_EXEC_DEPTH) this.errorf(`exceeded maximum template depth (${MAX_EXEC_DEPTH})`);
    const newDot = this.evalPipeline(dot, node.pipe);
    const inner = new State(
      this.trees,
      this.parseName,
      this.source,
      node.name,
      this.options,
      this.out,
      this.depth + 1,
      newDot,
    );
    inner.walk(newDot, tree.root);
  }

  // Evaluation ----------------------------------------------------------------------------

  evalPipeline(dot: Value, pipe: PipeNode | null): Value {
    if (pipe === null) return null;
    this.at(pipe);
    let value: Final = MISSING;
    for (const cmd of pipe.cmds) {
      value = unwrapEmptyInterface(this.evalCommand(dot, cmd, value));
    }
    const result = value === MISSING ? null : value;
    for (const v of pipe.decl) {
      if (pipe.isAssign) this.setVar(v.ident[0], result);
      else this.vars.push({ name: v.ident[0], value: result });
    }
    return result;
  }

  notAFunction(args: readonly ArgNode[], final: Final): void {
    if (args.length > 1 || final !== MISSING) this.errorf(`can't give argument to non-function ${nodeString(args[0])}`);
  }

  evalCommand(dot: Value, cmd: CommandNode, final: Final): Value {
    const first = cmd.args[0];
    switch (first.type) {
      case "field":
        return this.evalFieldNode(dot, first, cmd.args, final);
      case "chain":
        return this.evalChainNode(dot, first, cmd.args, final);
      case "identifier":
        return this.evalFunction(dot, first, cmd, cmd.args, final);
      case "pipe":
        this.notAFunction(cmd.args, final);
        return this.evalPipeline(dot, first);
      case "variable":
        return this.evalVariableNode(first, cmd.args, final);
    }
    this.at(first);
    this.notAFunction(cmd.args, final);
    switch (first.type) {
      case "bool":
        return goBool(first.value);
      case "dot":
        return dot;
      case "nil":
        this.errorf("nil is not a command");
        break;
      case "number":
        return this.idealConstant(first);
      case "string":
        return goString(first.text);
    }
    this.errorf(`can't evaluate command ${goQuote(nodeString(first))}`);
  }

  idealConstant(n: NumberNode): Value {
    this.at(n);
    const isHexInt = /^0[xX]/.test(n.text) && !/[pP]/.test(n.text);
    const isRuneInt = n.text.startsWith("'");
    if (n.isFloat && !isHexInt && !isRuneInt && /[.eEpP]/.test(n.text)) return goFloat(n.float);
    if (n.isInt) return goInt(Number(n.int));
    this.errorf(`${n.text} overflows int`);
  }

  evalFieldNode(dot: Value, field: FieldNode, args: readonly ArgNode[], final: Final): Value {
    this.at(field);
    return this.evalFieldChain(dot, field.ident, args, final);
  }

  evalChainNode(dot: Value, chain: ChainNode, args: readonly ArgNode[], final: Final): Value {
    this.at(chain);
    if (chain.node.type === "nil") this.errorf(`indirection through explicit nil in ${nodeString(chain)}`);
    const pipe = this.evalArg(dot, "any", chain.node);
    return this.evalFieldChain(pipe, chain.field, args, final);
  }

  evalVariableNode(v: VariableNode, args: readonly ArgNode[] | null, final: Final): Value {
    this.at(v);
    const value = this.varValue(v.ident[0]);
    if (v.ident.length === 1) {
      if (args) this.notAFunction(args, final);
      return value;
    }
    return this.evalFieldChain(value, v.ident.slice(1), args ?? [], final);
  }

  evalFieldChain(receiver: Value, ident: readonly string[], args: readonly ArgNode[], final: Final): Value {
    const n = ident.length;
    for (let i = 0; i < n - 1; i++) receiver = this.evalField(ident[i], [], MISSING, receiver);
    return this.evalField(ident[n - 1], args, final, receiver);
  }

  evalField(fieldName: string, args: readonly ArgNode[], final: Final, receiver: Value): Value {
    if (receiver === null) {
      if (this.options.missingKey === "error") this.errorf(`nil data; no entry for key ${goQuote(fieldName)}`);
      return null;
    }
    const typ = receiver.type;
    const [rcv, isNil] = indirect(receiver);
    if (rcv.type.kind === "interface" && isNil) this.errorf(`nil pointer evaluating ${typ.name}.${fieldName}`);
    const hasArgs = args.length > 1 || final !== MISSING;
    const method = findMethod(rcv.type, fieldName);
    if (method) {
      if (hasArgs) {
        const got = args.length - 1 + (final !== MISSING ? 1 : 0);
        this.errorf(`wrong number of args for ${fieldName}: want 0 got ${got}`);
      }
      if (isNil && !method.pointerReceiver) {
        this.errorf(`error calling ${fieldName}: runtime error: invalid memory address or nil pointer dereference`);
      }
      return method.call(isNil ? null : rcv);
    }
    switch (rcv.type.kind) {
      case "struct": {
        const path = fieldPath(rcv.type, fieldName);
        if (path) {
          if (hasArgs) this.errorf(`${fieldName} has arguments but cannot be invoked as function`);
          let v: GoValue = rcv;
          for (const step of path) {
            const [s, nilStep] = indirect(v);
            if (nilStep) this.errorf(`nil pointer evaluating ${v.type.name}.${step}`);
            v = (s.v as Map<string, GoValue>).get(step)!;
          }
          return v;
        }
        break;
      }
      case "map": {
        if (rcv.type.key.kind === "string") {
          if (hasArgs) this.errorf(`${fieldName} is not a method but has arguments`);
          const result = (rcv.v as Map<string, GoValue> | null)?.get(fieldName);
          if (result !== undefined) return result;
          if (this.options.missingKey === "zero") return zeroValue(rcv.type.elem);
          if (this.options.missingKey === "error") this.errorf(`map has no entry for key ${goQuote(fieldName)}`);
          return null;
        }
        break;
      }
      case "ptr": {
        const et = rcv.type.elem;
        if (et.kind === "struct" && !fieldPath(et, fieldName)) break;
        if (isNil) this.errorf(`nil pointer evaluating ${typ.name}.${fieldName}`);
        break;
      }
    }
    this.errorf(`can't evaluate field ${fieldName} in type ${typ.name}`);
  }

  evalFunction(dot: Value, node: IdentifierNode, cmd: Node, args: readonly ArgNode[] | null, final: Final): Value {
    this.at(node);
    const name = node.ident;
    const fn = this.options.funcs?.get(name) ?? BUILTINS.get(name);
    if (!fn) this.errorf(`${goQuote(name)} is not a defined function`);
    const callArgs = args ? args.slice(1) : [];
    const numIn = callArgs.length + (final !== MISSING ? 1 : 0);
    const numFixed = fn.fixed.length;
    if (fn.variadic) {
      if (numIn < numFixed)
        this.errorf(`wrong number of args for ${name}: want at least ${numFixed} got ${callArgs.length}`);
    } else if (numIn !== numFixed) {
      this.errorf(`wrong number of args for ${name}: want ${numFixed} got ${numIn}`);
    }
    const paramKind = (i: number): ParamKind => (i < numFixed ? fn.fixed[i] : (fn.variadic ?? "any"));

    if (name === "and" || name === "or") {
      let v: Value = null;
      for (const a of callArgs) {
        v = this.evalArg(dot, "value", a);
        if (isTrue(indirectInterface(v))[0] === (name === "or")) return v;
      }
      if (final !== MISSING) v = final;
      return v;
    }

    const argv: Value[] = callArgs.map((a, i) => this.evalArg(dot, paramKind(i), a));
    if (final !== MISSING) argv.push(this.validateType(final, paramKind(argv.length)));
    try {
      return fn.call(argv);
    } catch (e) {
      if (!(e instanceof BuiltinError)) throw e;
      this.at(cmd);
      this.errorf(`error calling ${name}: ${e.message}`);
    }
  }

  /** Go's validateType for the three parameter kinds builtins use. */
  validateType(value: Value, kind: ParamKind): Value {
    if (kind !== "string") return value;
    if (value === null) this.errorf("invalid value; expected string");
    const v = value.type.kind === "interface" && value.v !== null ? (value.v as GoValue) : value;
    if (v.type !== types.string) this.errorf(`wrong type for value; expected string; got ${value.type.name}`);
    return v;
  }

  evalArg(dot: Value, kind: ParamKind, n: ArgNode): Value {
    this.at(n);
    switch (n.type) {
      case "dot":
        return this.validateType(dot, kind);
      case "nil":
        if (kind === "string") this.errorf("cannot assign nil to string");
        return null;
      case "field":
        return this.validateType(this.evalFieldNode(dot, n, [n], MISSING), kind);
      case "variable":
        return this.validateType(this.evalVariableNode(n, null, MISSING), kind);
      case "pipe":
        return this.validateType(this.evalPipeline(dot, n), kind);
      case "identifier":
        return this.validateType(this.evalFunction(dot, n, n, null, MISSING), kind);
      case "chain":
        return this.validateType(this.evalChainNode(dot, n, [], MISSING), kind);
    }
    if (kind === "string") {
      if (n.type === "string") return goString(n.text);
      this.errorf(`expected string; found ${nodeString(n)}`);
    }
    switch (n.type) {
      case "bool":
        return goBool(n.value);
      case "number":
        return this.idealConstant(n);
      case "string":
        return goString(n.text);
    }
  }

  printValue(n: Node, v: Value): void {
    this.at(n);
    let p = v;
    if (p !== null && p.type.kind === "ptr") p = indirect(p)[0];
    if (p === null) {
      this.out.push("<no value>");
      return;
    }
    if (p.type.kind === "func") this.errorf(`can't print ${nodeString(n)} of type ${p.type.name}`);
    this.out.push(goSprint([p]));
  }
}

/**
 * Executes template `name` from `trees` with `data` as dot. Returns the output; throws
 * ExecFailure (Go's message plus the partial output) on an execution error.
 */
export function executeTemplate(
  trees: ReadonlyMap<string, Tree>,
  parseName: string,
  source: string,
  name: string,
  data: Value,
  options: ExecOptions,
): string {
  const out: string[] = [];
  const tree = trees.get(name);
  try {
    if (!tree) throw new Abort(`template: ${name}: ${goQuote(name)} is an incomplete or empty template`);
    const state = new State(trees, parseName, source, name, options, out, 0, data);
    state.walk(data, tree.root);
    return out.join("");
  } catch (e) {
    if (e instanceof Abort) throw new ExecFailure(e.message, out.join(""));
    if (e instanceof RangeError) throw new ExecFailure(`template: ${name}: ${e.message}`, out.join(""));
    throw e;
  }
}
