/**
 * Parse tree of a Go text/template, mirroring text/template/parse node kinds. `pos` is the
 * UTF-16 offset in the source (converted to Go's byte column only when an error is reported).
 * `nodeString` reproduces Go's Node.String(), which appears in execution errors ("at <…>").
 */
import { goQuote } from "./go-strconv.js";

export interface ListNode {
  readonly type: "list";
  readonly pos: number;
  readonly nodes: Node[];
}
export interface TextNode {
  readonly type: "text";
  readonly pos: number;
  readonly text: string;
}
export interface CommentNode {
  readonly type: "comment";
  readonly pos: number;
  readonly text: string;
}
export interface ActionNode {
  readonly type: "action";
  readonly pos: number;
  readonly pipe: PipeNode;
}
export interface BranchNode {
  readonly type: "if" | "range" | "with";
  readonly pos: number;
  readonly pipe: PipeNode;
  readonly list: ListNode;
  readonly elseList: ListNode | null;
}
export interface TemplateNode {
  readonly type: "template";
  readonly pos: number;
  readonly name: string;
  readonly pipe: PipeNode | null;
}
export interface BreakNode {
  readonly type: "break" | "continue";
  readonly pos: number;
}
export interface PipeNode {
  readonly type: "pipe";
  readonly pos: number;
  isAssign: boolean;
  readonly decl: VariableNode[];
  readonly cmds: CommandNode[];
}
export interface CommandNode {
  readonly type: "command";
  readonly pos: number;
  readonly args: ArgNode[];
}
export interface FieldNode {
  readonly type: "field";
  readonly pos: number;
  readonly ident: string[];
}
export interface VariableNode {
  readonly type: "variable";
  readonly pos: number;
  readonly ident: string[];
}
export interface ChainNode {
  readonly type: "chain";
  readonly pos: number;
  readonly node: ArgNode;
  readonly field: string[];
}
export interface IdentifierNode {
  readonly type: "identifier";
  readonly pos: number;
  readonly ident: string;
}
export interface DotNode {
  readonly type: "dot";
  readonly pos: number;
}
export interface NilNode {
  readonly type: "nil";
  readonly pos: number;
}
export interface BoolNode {
  readonly type: "bool";
  readonly pos: number;
  readonly value: boolean;
}
export interface NumberNode {
  readonly type: "number";
  readonly pos: number;
  readonly text: string;
  readonly isInt: boolean;
  readonly isUint: boolean;
  readonly isFloat: boolean;
  /** Go int64 value when isInt. */
  readonly int: bigint;
  readonly float: number;
}
export interface StringNode {
  readonly type: "string";
  readonly pos: number;
  /** Source form, quotes included. */
  readonly quoted: string;
  readonly text: string;
}

export type ArgNode =
  | FieldNode
  | VariableNode
  | ChainNode
  | IdentifierNode
  | DotNode
  | NilNode
  | BoolNode
  | NumberNode
  | StringNode
  | PipeNode;

export type Node =
  | ListNode
  | TextNode
  | CommentNode
  | ActionNode
  | BranchNode
  | TemplateNode
  | BreakNode
  | CommandNode
  | ArgNode;

/** One parsed template body (Go's parse.Tree). */
export interface Tree {
  readonly name: string;
  readonly root: ListNode;
}

function pipeString(p: PipeNode): string {
  let s = "";
  if (p.decl.length > 0) s = `${p.decl.map(nodeString).join(", ")} := `;
  return s + p.cmds.map(nodeString).join(" | ");
}

/** Go's Node.String(). */
export function nodeString(n: Node): string {
  switch (n.type) {
    case "list":
      return n.nodes.map(nodeString).join("");
    case "text":
      return n.text;
    case "comment":
      return `{{${n.text}}}`;
    case "action":
      return `{{${pipeString(n.pipe)}}}`;
    case "if":
    case "range":
    case "with": {
      let s = `{{${n.type} ${pipeString(n.pipe)}}}${nodeString(n.list)}`;
      if (n.elseList) s += `{{else}}${nodeString(n.elseList)}`;
      return `${s}{{end}}`;
    }
    case "template":
      return n.pipe ? `{{template ${goQuote(n.name)} ${pipeString(n.pipe)}}}` : `{{template ${goQuote(n.name)}}}`;
    case "break":
      return "{{break}}";
    case "continue":
      return "{{continue}}";
    case "pipe":
      return pipeString(n);
    case "command":
      return n.args.map((a) => (a.type === "pipe" ? `(${pipeString(a)})` : nodeString(a))).join(" ");
    case "field":
      return n.ident.map((id) => `.${id}`).join("");
    case "variable":
      return n.ident.join(".");
    case "chain": {
      const head = n.node.type === "pipe" ? `(${pipeString(n.node)})` : nodeString(n.node);
      return head + n.field.map((f) => `.${f}`).join("");
    }
    case "identifier":
      return n.ident;
    case "dot":
      return ".";
    case "nil":
      return "nil";
    case "bool":
      return n.value ? "true" : "false";
    case "number":
      return n.text;
    case "string":
      return n.quoted;
  }
}

/** Go's parse.IsEmptyTree: only blank text and comments. */
export function isEmptyTree(n: Node): boolean {
  switch (n.type) {
    case "list":
      return n.nodes.every(isEmptyTree);
    case "text":
      return n.text.trim().length === 0;
    case "comment":
      return true;
    default:
      return false;
  }
}
