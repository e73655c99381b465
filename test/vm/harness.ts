import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Helpers for tests that drive real firmware in QEMU against metalman inside a private
 * network namespace. Every process started here is tracked by PID and stopped by PID.
 */

/** What a test run is missing to run at all (commands, files, root). Empty = ready. */
export function missingPrerequisites(commands: string[], files: string[]): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push("root (network namespaces, tap devices)");
  for (const command of commands) {
    const found = spawnSync("sh", ["-c", 'command -v "$1"', "sh", command], { stdio: "ignore" }).status === 0;
    if (!found) missing.push(`command ${command}`);
  }
  for (const file of files) if (!existsSync(file)) missing.push(`file ${file}`);
  return missing;
}

/** Run a command to completion; throws with its output when it fails. */
export function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) {
  const result = spawnSync(command, args, {
    env: options.env ?? process.env,
    timeout: options.timeoutMs ?? 120_000,
    encoding: "utf8",
    maxBuffer: 16 * 1024 * 1024,
  });
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} failed (status ${result.status}, signal ${result.signal}):\n` +
        `${result.stdout ?? ""}\n${result.stderr ?? ""}`.slice(-4000),
    );
  }
  return result.stdout;
}

/** A long-running child whose stdout/stderr are kept (in memory and in a file). */
export class LoggedProcess {
  readonly child: ChildProcess;
  readonly #lines: string[] = [];
  readonly #exited: Promise<number | null>;

  constructor(command: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env) {
    const sink = createWriteStream(logFile);
    this.child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let partial = "";
    const collect = (chunk: Buffer) => {
      sink.write(chunk);
      const text = partial + chunk.toString("utf8");
      const lines = text.split("\n");
      partial = lines.pop() ?? "";
      this.#lines.push(...lines);
    };
    this.child.stdout?.on("data", collect);
    this.child.stderr?.on("data", collect);
    this.#exited = new Promise((resolve) => {
      this.child.on("close", (code) => {
        if (partial !== "") this.#lines.push(partial);
        sink.end();
        resolve(code);
      });
      this.child.on("error", () => resolve(null));
    });
  }

  get lines(): readonly string[] {
    return this.#lines;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  exited(): Promise<number | null> {
    return this.#exited;
  }

  tail(count = 40): string {
    return this.#lines.slice(-count).join("\n");
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running || this.child.pid === undefined) return;
    this.child.kill("SIGTERM");
    const done = await Promise.race([this.#exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done && this.running) {
      this.child.kill("SIGKILL");
      await this.#exited;
    }
  }
}

/** Poll `probe` every intervalMs until it returns true or timeoutMs passes (bounded). */
export async function waitUntil(probe: () => boolean, timeoutMs: number, intervalMs = 200): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (probe()) return true;
    await sleep(intervalMs);
  }
  return probe();
}

/** The pino JSON lines of a log (non-JSON lines are skipped). */
export function jsonLines(lines: readonly string[]): Record<string, unknown>[] {
  const records: Record<string, unknown>[] = [];
  for (const line of lines) {
    if (!line.startsWith("{")) continue;
    try {
      records.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a torn or foreign line: not an event
    }
  }
  return records;
}
