/** A template failed to parse or execute. `partial` is the output written before an exec error. */
export class TemplateError extends Error {
  constructor(
    message: string,
    readonly phase: "parse" | "exec",
    readonly partial = "",
  ) {
    super(message);
    this.name = "TemplateError";
  }
}
