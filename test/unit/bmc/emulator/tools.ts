import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A tool the test needs: missing under CI=true fails the test, otherwise the test skips. */
export function requireTool(t: { skip(message: string): void }, command: string): boolean {
  const found = spawnSync("sh", ["-c", 'command -v "$1"', "sh", command], { stdio: "ignore" }).status === 0;
  if (found) return true;
  if (process.env.CI === "true") throw new Error(`${command} is required under CI=true (scripts/install-test-deps.sh)`);
  t.skip(`${command} not installed`);
  return false;
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** redfishtool against `host:port`, asynchronously (the emulator runs in this process). */
export async function redfishtool(
  rhost: string,
  args: string[],
  opts: { user?: string; password?: string; auth?: "Basic" | "Session" } = {},
): Promise<ToolResult> {
  const base = [
    "-r",
    rhost,
    "-u",
    opts.user ?? "admin",
    "-p",
    opts.password ?? "pw-emulated",
    "-S",
    "Always",
    "-A",
    opts.auth ?? "Basic",
    "-T",
    "10",
  ];
  try {
    const { stdout, stderr } = await run("redfishtool", [...base, ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

export function json(result: ToolResult): Record<string, unknown> {
  if (result.code !== 0) throw new Error(`redfishtool failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}
