/**
 * The real appliance (`dist/server/main.js serve-pxe`) with its console listener, as the browser
 * proofs run it: a child process whose banner gives the console URL, the TLS fingerprint and
 * the first admin's generated password (printed once, never logged).
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import type { Page } from "playwright-core";
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

export interface FetchAnswer {
  status: number;
  body: unknown;
}

/**
 * A request made by the page itself (its origin, its cookies, its network namespace: Playwright's
 * own request context runs in the test process, which may not reach a console in a netns).
 * The page must be on the console's origin.
 */
export async function pageFetch(
  page: Page,
  method: string,
  path: string,
  body?: unknown,
  csrf?: string,
): Promise<FetchAnswer> {
  const script = `(async () => {
    const headers = { accept: "application/json" };
    if (${JSON.stringify(body !== undefined)}) headers["content-type"] = "application/json";
    if (${JSON.stringify(csrf ?? "")}) headers["x-csrf-token"] = ${JSON.stringify(csrf ?? "")};
    const r = await fetch(${JSON.stringify(path)}, {
      method: ${JSON.stringify(method)}, headers, credentials: "same-origin",
      body: ${body === undefined ? "undefined" : JSON.stringify(JSON.stringify(body))},
    });
    const text = await r.text();
    let parsed; try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = text; }
    return { status: r.status, body: parsed };
  })()`;
  return (await page.evaluate(script)) as FetchAnswer;
}

/** Log in through the API from the page (sets the page's session cookie); returns the CSRF token. */
export async function apiLogin(page: Page, username: string, password: string): Promise<string> {
  const answer = await pageFetch(page, "POST", "/api/v1/session", { username, password });
  if (answer.status !== 200) throw new Error(`login as ${username}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return (answer.body as { csrfToken: string }).csrfToken;
}

export async function apiAddUser(
  page: Page,
  csrf: string,
  user: { name: string; role: string; password: string },
): Promise<void> {
  const answer = await pageFetch(page, "POST", "/api/v1/users", user, csrf);
  if (answer.status !== 201 && answer.status !== 200) {
    throw new Error(`add user ${user.name}: ${answer.status} ${JSON.stringify(answer.body)}`);
  }
}
