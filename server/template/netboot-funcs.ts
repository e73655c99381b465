/**
 * Quoting and checking helpers for netboot templates (issue 5 §4.2, docs/security.md), added to Go's
 * builtins the way template.Funcs adds functions: upstream templates that do not use them
 * render exactly as in Go. Each helper fails the render (an exec error, so the client gets 404
 * and the event says why) instead of emitting something the next parser would read differently.
 *
 *   kernelArg KEY VALUE  one Linux kernel command-line parameter, `KEY=VALUE`. KEY is letters,
 *                        digits, '_', '-', '.'; VALUE must not hold whitespace, quotes,
 *                        backslashes or control characters: then the token is the same bytes
 *                        for GRUB's and iPXE's command-line builders and for Linux's
 *                        parser (which knows double quotes but no escapes), so it can never
 *                        split into two parameters or swallow the next one.
 *   grubQuote S          S as one GRUB script word: single-quoted (no `$` expansion, no
 *                        `;`, `{`, `}` or `#` meaning), a `'` written as '\'' . Control characters
 *                        (a newline ends a GRUB command) fail.
 *   ipxeArg S            S as one iPXE script argument, unchanged. iPXE has no quoting at all
 *                        (core/exec.c splits a line on whitespace, expands every `${name}`,
 *                        treats a token starting with `#` as a comment and `||`, `&&`, `;` as
 *                        command separators), so a value it cannot carry fails instead:
 *                        empty, whitespace, control characters, `${`, a leading `#`, or one of
 *                        those separators.
 *
 * Typical use: `linux /vmlinuz {{ kernelArg "unbounded.node_name" .Machine.Name | grubQuote }}`.
 */
import type { Builtin } from "./builtins.js";
import { BuiltinError } from "./builtins.js";
import { goString, type Value } from "./go-values.js";

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const KERNEL_KEY = /^[A-Za-z0-9_.-]+$/;
const KERNEL_VALUE_FORBIDDEN = /[\s"'\\]/;

function text(value: Value): string {
  return (value?.v as string) ?? "";
}

function describe(s: string): string {
  return JSON.stringify(s);
}

export function kernelArg(key: string, value: string): string {
  if (!KERNEL_KEY.test(key)) throw new BuiltinError(`kernel parameter name ${describe(key)} is not [A-Za-z0-9_.-]+`);
  if (CONTROL.test(value)) throw new BuiltinError(`value of ${key} holds a control character: ${describe(value)}`);
  if (KERNEL_VALUE_FORBIDDEN.test(value)) {
    throw new BuiltinError(`value of ${key} holds whitespace, a quote or a backslash: ${describe(value)}`);
  }
  return `${key}=${value}`;
}

function singleQuoted(what: string, s: string): string {
  if (CONTROL.test(s)) throw new BuiltinError(`${what} word holds a control character: ${describe(s)}`);
  return `'${s.replaceAll("'", "'\\''")}'`;
}

export function grubQuote(s: string): string {
  return singleQuoted("GRUB", s);
}

export function ipxeArg(s: string): string {
  if (s === "") throw new BuiltinError("an empty iPXE argument would vanish and shift the others");
  if (CONTROL.test(s) || /\s/.test(s)) {
    throw new BuiltinError(`iPXE argument holds whitespace or a control character: ${describe(s)}`);
  }
  if (s.includes("${")) throw new BuiltinError(`iPXE would expand \${...} in ${describe(s)}`);
  if (s.startsWith("#") || s === "||" || s === "&&" || s === ";") {
    throw new BuiltinError(`iPXE would read ${describe(s)} as a comment or a command separator`);
  }
  return s;
}

const S = "string" as const;

/** The netboot helpers, by name (GoTemplate.parse's `funcs`). Arguments are Go strings. */
export const NETBOOT_FUNCS: ReadonlyMap<string, Builtin> = new Map<string, Builtin>([
  ["kernelArg", { fixed: [S, S], variadic: null, call: (a) => goString(kernelArg(text(a[0]), text(a[1]))) }],
  ["grubQuote", { fixed: [S], variadic: null, call: (a) => goString(grubQuote(text(a[0]))) }],
  ["ipxeArg", { fixed: [S], variadic: null, call: (a) => goString(ipxeArg(text(a[0]))) }],
]);
