import { spawn } from "node:child_process";
import { BmcError, type BmcErrorCode } from "../driver.js";

/**
 * Runs Debian's `ipmitool -I lanplus` for one BMC. The password travels in the child's
 * environment (`-E` reads `IPMI_PASSWORD`), never in argv, so `ps` never shows it; it is never
 * part of a message. Calls are serialised (one ipmitool at a time per BMC: many BMCs accept one
 * RMCP+ session per user at a time) and each is bounded: ipmitool's own per-try timeout and
 * retries (`-N`, `-R`), and a hard kill after `callTimeoutMs`.
 */
export interface IpmitoolOptions {
  host: string;
  port: number;
  username: string;
  password: string;
  /** RMCP+ cipher suite (`-C`); undefined lets ipmitool pick (it asks the BMC, then falls back to 3). */
  cipherSuite?: number;
  /** Session privilege (`-L`). */
  privilege: "CALLBACK" | "USER" | "OPERATOR" | "ADMINISTRATOR";
  /** The binary (tests may point elsewhere). Default `ipmitool`. */
  binary?: string;
  /** Seconds per try (`-N`) and retries (`-R`). Defaults 2 s and 3. */
  tryTimeoutSeconds?: number;
  retries?: number;
  /** Hard bound of one call, after which ipmitool is killed. Default 30 s. */
  callTimeoutMs?: number;
  /** Largest stdout/stderr kept per call (a BMC cannot make us buffer more). Default 64 KiB. */
  maxOutputBytes?: number;
}

export interface IpmitoolResult {
  stdout: string;
  stderr: string;
}

/**
 * ipmitool prints these on stderr while it negotiates (`-v` adds a few); they are not the error.
 * `-v` is used because only then does ipmitool say why a session failed (`RAKP 2 HMAC is
 * invalid`: wrong password; `unauthorized name`: unknown user), which the operator needs.
 */
const NOISE = [
  /^Unable to Get Channel Cipher Suites$/,
  /^Loading IANA PEN Registry\.\.\.$/,
  /^Running Get VSO Capabilities/,
  /^Discovered IPMB address/,
];

export class Ipmitool {
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  readonly #running = new Set<ReturnType<typeof spawn>>();

  constructor(private readonly o: IpmitoolOptions) {}

  /** `ipmitool ... <args>`; args never hold a credential. Rejects with a BmcError carrying ipmitool's message. */
  run(args: readonly string[]): Promise<IpmitoolResult> {
    const call = this.#queue.then(() => this.#spawn(args));
    this.#queue = call.catch(() => undefined);
    return call;
  }

  /** Kills a call in flight; later calls are refused. */
  close(): void {
    this.#closed = true;
    for (const child of this.#running) child.kill("SIGKILL");
  }

  /** The argv without the command (exported for the test that checks no secret is in it). */
  baseArgs(): string[] {
    const args = ["-v", "-I", "lanplus", "-H", this.o.host, "-p", String(this.o.port), "-U", this.o.username, "-E"];
    args.push("-L", this.o.privilege);
    if (this.o.cipherSuite !== undefined) args.push("-C", String(this.o.cipherSuite));
    args.push("-N", String(this.o.tryTimeoutSeconds ?? 2), "-R", String(this.o.retries ?? 3));
    return args;
  }

  #spawn(args: readonly string[]): Promise<IpmitoolResult> {
    if (this.#closed) return Promise.reject(new BmcError("unreachable", "IPMI driver closed"));
    const timeoutMs = this.o.callTimeoutMs ?? 30_000;
    const cap = this.o.maxOutputBytes ?? 64 * 1024;
    const what = args.join(" ");
    return new Promise((resolve, reject) => {
      // Only PATH and the locale: nothing else of ours reaches the child, the password only via IPMI_PASSWORD.
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        LC_ALL: "C",
        IPMI_PASSWORD: this.o.password,
      };
      let child: ReturnType<typeof spawn>;
      try {
        child = spawn(this.o.binary ?? "ipmitool", [...this.baseArgs(), ...args], {
          env,
          stdio: ["ignore", "pipe", "pipe"],
        });
      } catch (err) {
        reject(new BmcError("unreachable", `cannot run ipmitool: ${(err as Error).message}`));
        return;
      }
      this.#running.add(child);
      const out: Buffer[] = [];
      const errOut: Buffer[] = [];
      let outBytes = 0;
      let errBytes = 0;
      child.stdout?.on("data", (b: Buffer) => {
        if (outBytes < cap) out.push(b.subarray(0, cap - outBytes));
        outBytes += b.length;
      });
      child.stderr?.on("data", (b: Buffer) => {
        if (errBytes < cap) errOut.push(b.subarray(0, cap - errBytes));
        errBytes += b.length;
      });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, timeoutMs);
      child.once("error", (err) => {
        clearTimeout(timer);
        this.#running.delete(child);
        const code = (err as NodeJS.ErrnoException).code;
        reject(
          new BmcError(
            "unreachable",
            code === "ENOENT" ? "ipmitool is not installed (Debian package ipmitool)" : `ipmitool: ${err.message}`,
          ),
        );
      });
      child.once("close", (status) => {
        clearTimeout(timer);
        this.#running.delete(child);
        const stdout = Buffer.concat(out).toString("utf8");
        const stderr = Buffer.concat(errOut).toString("utf8");
        if (timedOut) {
          reject(new BmcError("timeout", `ipmitool ${what}: no answer within ${timeoutMs} ms`));
          return;
        }
        if (this.#closed) {
          reject(new BmcError("unreachable", "IPMI driver closed"));
          return;
        }
        const message = ipmitoolMessage(stderr, this.o.password);
        if (status !== 0) {
          reject(
            new BmcError(
              classify(message),
              `ipmitool ${what}: ${message || `exit status ${status}`}`,
              message ? [message] : [],
            ),
          );
          return;
        }
        resolve({ stdout, stderr });
      });
    });
  }
}

/** ipmitool's own error lines, negotiation noise dropped, the password scrubbed (a BMC could echo it), bounded. */
export function ipmitoolMessage(stderr: string, password: string): string {
  const lines = stderr.split(/\r?\n/).map((l) => l.trim());
  // The VSO probe's own "Invalid command" answer is part of the noise, not the call's error.
  const kept = lines.filter(
    (l, i) =>
      l !== "" &&
      !NOISE.some((n) => n.test(l)) &&
      !(/^Invalid completion code received: Invalid command$/.test(l) && /^Running Get VSO/.test(lines[i - 1] ?? "")),
  );
  let text = kept.join("; ");
  if (password !== "") text = text.split(password).join("***");
  return text.length > 512 ? `${text.slice(0, 509)}...` : text;
}

/** Maps ipmitool's messages onto BmcError codes (flows tell "unsupported" from "unreachable" by them). */
export function classify(message: string): BmcErrorCode {
  const m = message.toLowerCase();
  if (/unauthorized name|rakp 2 hmac is invalid|rakp .*error|insufficient privilege|invalid user|password/.test(m))
    return "auth";
  if (/unable to establish|no response|timeout|connection refused|insufficient resources for session/.test(m))
    return "unreachable";
  if (/invalid command|invalid data field|not supported|parameter not supported/.test(m)) return "not-supported";
  return "bmc-error";
}
