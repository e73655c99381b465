/**
 * The real appliance (`dist/server/main.js serve-pxe`) with its console listener, as the browser
 * proofs run it: a child process whose banner gives the console URL, the TLS fingerprint and
 * the first admin's generated password (printed once, never logged).
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import type { APIRequestContext } from "playwright-core";
import { repoRoot } from "../../support/paths.js";

export interface ConsoleBanner {
  url: string;
  fingerprint: string;
  admin?: { name: string; password: string };
}

/** Parse the banner lines of serve-pxe (server/app/serve-pxe.ts consoleBanner). */
export function parseConsoleBanner(text: string): ConsoleBanner | undefined {
  const url = /console\s+(https:\/\/\S+)/.exec(text)?.[1];
  if (!url) return undefined;
  const fingerprint = /TLS SHA-256 ([0-9A-F:]+)/i.exec(text)?.[1] ?? "";
  const admin = /first login user "([^"]+)" password (\S+)/.exec(text);
  return { url, fingerprint, ...(admin ? { admin: { name: admin[1]!, password: admin[2]! } } : {}) };
}

export class ServePxe {
  readonly lines: string[] = [];
  readonly #child: ChildProcess;
  #exit: Promise<number | null>;

  constructor(argv: string[], env: NodeJS.ProcessEnv = process.env, command = process.execPath) {
    this.#child = spawn(command, argv, { env, stdio: ["ignore", "pipe", "pipe"] });
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) if (line !== "") this.lines.push(line);
      if (this.lines.length > 20_000) this.lines.splice(0, 5_000);
    };
    this.#child.stdout?.on("data", collect);
    this.#child.stderr?.on("data", collect);
    this.#exit = new Promise((resolve) => this.#child.once("exit", (code) => resolve(code)));
  }

  static mainJs(): string {
    return path.join(repoRoot(), "dist", "server", "main.js");
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  tail(n = 30): string {
    return this.lines.slice(-n).join("\n");
  }

  /** Wait (bounded) for the console's banner lines. */
  async banner(timeoutMs = 60_000): Promise<ConsoleBanner> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`serve-pxe exited:\n${this.tail()}`);
      const text = this.lines.join("\n");
      const banner = parseConsoleBanner(text);
      // The password line comes right after the URL line when there is one.
      if (banner && (banner.admin || /TLS SHA-256/.test(text))) {
        await new Promise((r) => setTimeout(r, 200));
        return parseConsoleBanner(this.lines.join("\n"))!;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no console banner within ${timeoutMs} ms:\n${this.tail()}`);
  }

  async stop(timeoutMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.#child.kill("SIGTERM");
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), timeoutMs);
    await this.#exit;
    clearTimeout(timer);
  }
}

/** Log in through the API on a Playwright request context (shares the browser's cookies). */
export async function apiLogin(
  request: APIRequestContext,
  base: string,
  username: string,
  password: string,
): Promise<string> {
  const response = await request.post(new URL("/api/v1/session", base).toString(), { data: { username, password } });
  if (response.status() !== 200) throw new Error(`login as ${username}: ${response.status()} ${await response.text()}`);
  return ((await response.json()) as { csrfToken: string }).csrfToken;
}

export async function apiAddUser(
  request: APIRequestContext,
  base: string,
  csrf: string,
  user: { name: string; role: string; password: string },
): Promise<void> {
  const response = await request.post(new URL("/api/v1/users", base).toString(), {
    data: user,
    headers: { "x-csrf-token": csrf },
  });
  if (response.status() !== 201 && response.status() !== 200) {
    throw new Error(`add user ${user.name}: ${response.status()} ${await response.text()}`);
  }
}
