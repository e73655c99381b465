/**
 * What the management API's CLIs (`metalman machine|operation|image`) share: the exit codes, the
 * `-o` flag, the client over `<state-dir>/metalman.sock`, and how a failure is told.
 */
import { userInfo } from "node:os";
import { ApiAnswerError, ApiClient, DaemonUnreachableError } from "../api/client.js";
import { apiSocketPath } from "../api/unix-socket.js";
import type { CliOut } from "../util/cli-args.js";

/** Exit codes (docs/management-api.md). */
export const EXIT = {
  OK: 0,
  /** metalman refused the request (validation, not found, quarantined, pending...): the message says why. */
  REFUSED: 1,
  USAGE: 2,
  /** No serve-pxe answers on the socket of this --state-dir. */
  DAEMON_UNREACHABLE: 3,
  /** --wait: the operation had not finished when --timeout ran out (it goes on). */
  WAIT_TIMEOUT: 4,
  /** --wait: the operation finished Failed. */
  OPERATION_FAILED: 5,
} as const;

/** A usage mistake found after parsing: the message and the usage, exit 2. */
export class UsageError extends Error {}

/** The `-o, --output FMT` flag of these CLIs. */
export const OUTPUT_OPTION = { output: { type: "string", short: "o" } } as const;

/**
 * The client for `--state-dir`, and whether `-o json` was asked; undefined (after saying so) when
 * `-o` is neither table nor json.
 */
export function apiSession(
  group: string,
  output: string | undefined,
  stateDir: string,
  env: NodeJS.ProcessEnv,
  out: CliOut,
): { client: ApiClient; json: boolean } | undefined {
  const format = output ?? "table";
  if (format !== "table" && format !== "json") {
    out.stderr(`metalman ${group}: -o must be table or json\n`);
    return undefined;
  }
  return { client: new ApiClient(apiSocketPath(stateDir), osUser(env)), json: format === "json" };
}

/** Tells a failed command and resolves to its exit code. */
export function apiFailure(group: string, usage: string, err: unknown, out: CliOut): number {
  if (err instanceof UsageError) {
    out.stderr(`metalman ${group}: ${err.message}\n\n${usage}`);
    return EXIT.USAGE;
  }
  if (err instanceof DaemonUnreachableError) {
    out.stderr(`metalman ${group}: ${err.message}\n`);
    return EXIT.DAEMON_UNREACHABLE;
  }
  if (err instanceof ApiAnswerError) {
    out.stderr(`metalman ${group}: ${err.message} [${err.body.code}]\n`);
    return EXIT.REFUSED;
  }
  out.stderr(`metalman ${group}: ${(err as Error).message}\n`);
  return EXIT.REFUSED;
}

/** The OS user, sent in x-metalman-user for the audit trail (the socket's mode is the authentication). */
export function osUser(env: NodeJS.ProcessEnv): string {
  let name = env.USER ?? "";
  try {
    name = userInfo().username;
  } catch {
    // No passwd entry (a container with an arbitrary uid): fall back to $USER, then the uid.
  }
  if (name === "") name = `uid-${process.getuid?.() ?? "unknown"}`;
  return name.replace(/[^A-Za-z0-9._@$-]/g, "_").slice(0, 64);
}

export function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Columns padded to the widest cell; "-" for empty cells. */
export function table(header: string[], rows: string[][]): string {
  const cells = [header, ...rows.map((row) => row.map((c) => (c === "" ? "-" : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? "").length)));
  return `${cells.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n")}\n`;
}
