/**
 * A parsed Go text/template (the equivalent of template.New(name).Parse(source)) that can be
 * executed many times. Parse and execution failures surface as TemplateError with Go's
 * message text; an execution error carries the output written before it.
 */
import type { Tree } from "./ast.js";
import { BUILTIN_NAMES, type Builtin } from "./builtins.js";
import { TemplateError } from "./errors.js";
import { ExecFailure, executeTemplate, type MissingKey } from "./executor.js";
import { fromJSON, type Value } from "./go-values.js";
import { ParseFailure, parseTemplate } from "./parser.js";

export interface ExecuteOptions {
  /** Go's Option("missingkey=…"); "default" (= "invalid") prints `<no value>`. */
  readonly missingKey?: MissingKey;
}

/** Translates Go Option() strings such as "missingkey=error". */
export function parseTemplateOptions(options: readonly string[]): ExecuteOptions {
  let missingKey: MissingKey = "default";
  for (const opt of options) {
    const m = /^missingkey=(default|invalid|zero|error)$/.exec(opt);
    if (!m) throw new Error(`unrecognized option: ${opt}`);
    missingKey = m[1] === "invalid" ? "default" : (m[1] as MissingKey);
  }
  return { missingKey };
}

export class GoTemplate {
  private constructor(
    readonly name: string,
    private readonly source: string,
    private readonly trees: ReadonlyMap<string, Tree>,
    private readonly funcs: ReadonlyMap<string, Builtin> | undefined,
  ) {}

  /**
   * Parses `source` as template `name`. `funcs` are extra functions, like Go's
   * template.New(name).Funcs(funcs).Parse(source): known at parse time, found before the
   * builtins at execution. Throws TemplateError (phase "parse").
   */
  static parse(name: string, source: string, funcs?: ReadonlyMap<string, Builtin>): GoTemplate {
    const names = funcs === undefined ? BUILTIN_NAMES : new Set([...BUILTIN_NAMES, ...funcs.keys()]);
    try {
      return new GoTemplate(name, source, parseTemplate(name, source, names), funcs);
    } catch (e) {
      if (e instanceof ParseFailure) throw new TemplateError(e.message, "parse");
      throw e;
    }
  }

  /** Names of all templates defined by the source (main, define and block). */
  templateNames(): string[] {
    return [...this.trees.keys()];
  }

  /** Executes with a Go value as dot. Throws TemplateError (phase "exec", with partial output). */
  execute(data: Value, options: ExecuteOptions = {}): string {
    try {
      return executeTemplate(this.trees, this.name, this.source, this.name, data, {
        missingKey: options.missingKey ?? "default",
        funcs: this.funcs,
      });
    } catch (e) {
      if (e instanceof ExecFailure) throw new TemplateError(e.message, "exec", e.partial);
      throw e;
    }
  }

  /** Executes with JSON-like data decoded the way Go's json.Unmarshal into `any` would. */
  executeJSON(data: unknown, options: ExecuteOptions = {}): string {
    return this.execute(fromJSON(data), options);
  }
}
