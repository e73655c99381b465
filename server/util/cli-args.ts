/**
 * The argv of the operator subcommands (`metalman state|user|tpm|image|machine|operation`): one
 * option table each, plus the flags they all take (`--state-dir`, `-h/--help`), with the same
 * usage errors, help and exit codes everywhere.
 */
import path from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";

export type CliOut = { stdout: (s: string) => void; stderr: (s: string) => void };

/** A subcommand's own flags (the node:util parseArgs table). */
export type OptionTable = NonNullable<ParseArgsConfig["options"]>;

/** The flags every subcommand group takes. */
const COMMON = {
  "state-dir": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

/** The usage exit code (docs/management-api.md). */
export const USAGE_EXIT = 2;

function parse<T extends OptionTable>(argv: string[], options: T) {
  return parseArgs({ args: argv, allowPositionals: true, options: { ...COMMON, ...options } });
}

export type CliValues<T extends OptionTable> = ReturnType<typeof parse<T>>["values"];

/** A parsed command line that has a command to run. */
export interface CliCommand<T extends OptionTable> {
  values: CliValues<T>;
  /** The first positional, the subcommand. */
  command: string;
  /** The positionals after it. */
  args: string[];
  /** `--state-dir`, absolute; default `$HOME/.unbounded/metalman/state` (upstream's folder). */
  stateDir: string;
}

/**
 * Parses `argv` for `metalman <group>`. Resolves to the command to run, or to an exit code after
 * answering: a parse error prints `metalman <group>: <message>` and the usage on stderr (2);
 * `--help`/`help` print the usage on stdout (0), no command at all too (2).
 */
export function parseCli<T extends OptionTable>(
  group: string,
  usage: string,
  options: T,
  argv: string[],
  env: NodeJS.ProcessEnv,
  out: CliOut,
): CliCommand<T> | number {
  let parsed: ReturnType<typeof parse<T>>;
  try {
    parsed = parse(argv, options);
  } catch (err) {
    out.stderr(`metalman ${group}: ${(err as Error).message}\n\n${usage}`);
    return USAGE_EXIT;
  }
  const { values, positionals } = parsed;
  // The common flags, seen through the generic table.
  const common = values as { help?: boolean; "state-dir"?: string };
  const [command, ...args] = positionals;
  if (common.help || command === undefined || command === "help") {
    out.stdout(usage);
    return command === undefined && !common.help ? USAGE_EXIT : 0;
  }
  return { values, command, args, stateDir: stateDirOf(common["state-dir"], env) };
}

function stateDirOf(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  const base = path.resolve(env.HOME ? env.HOME : ".", ".unbounded", "metalman");
  return path.resolve(flag ?? path.join(base, "state"));
}

/** `--wait SECONDS` of the state-dir request commands, in milliseconds (default 10 s). */
export function waitMsOf(wait: string | undefined): number {
  return Math.max(0, Number(wait ?? "10")) * 1000;
}
