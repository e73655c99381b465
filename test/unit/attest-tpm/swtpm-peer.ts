/**
 * A real TPM for tests: swtpm (libtpms) on loopback TCP, driven with tpm2-tools, as in the shared
 * lab's tpm.sh. The swtpm process is our child and is stopped by its PID; its state lives in a
 * temp dir that is removed. Every wait is bounded.
 *
 * swtpm has 3 transient object slots and there is no resource manager between tpm2-tools and
 * swtpm, so every tool call is followed by a flush of transient objects and sessions.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

export const TPM_TOOLS = [
  "swtpm",
  "tpm2_createek",
  "tpm2_createak",
  "tpm2_createprimary",
  "tpm2_readpublic",
  "tpm2_makecredential",
  "tpm2_activatecredential",
  "tpm2_startauthsession",
  "tpm2_policysecret",
  "tpm2_flushcontext",
  "tpm2_getcap",
  "openssl",
] as const;

function inCi(): boolean {
  return process.env.CI === "true" || process.env.CI === "1";
}

export function missingTools(tools: readonly string[] = TPM_TOOLS): string[] {
  return tools.filter((t) => spawnSync("sh", ["-c", `command -v ${t}`], { stdio: "ignore" }).status !== 0);
}

/**
 * `describe()` for real-TPM tests that need `tools`: skips with the reason when some are missing,
 * but under CI=true registers a failing test instead (CI installs them: scripts/install-test-deps.sh).
 */
export function tpmToolSuite(name: string, tools: readonly string[], body: () => void): void {
  const missing = missingTools(tools);
  if (missing.length === 0) describe(name, body);
  else if (inCi()) {
    describe(name, () => {
      it("swtpm and tpm2-tools are installed", () => {
        throw new Error(`missing tools: ${missing.join(", ")} (apt-get install swtpm swtpm-tools tpm2-tools openssl)`);
      });
    });
  } else describe(name, { skip: `missing tools: ${missing.join(", ")}` }, () => it("skipped", () => {}));
}

/** `tpmToolSuite` for the tests of this folder (TPM_TOOLS). */
export function swtpmSuite(name: string, body: () => void): void {
  tpmToolSuite(name, TPM_TOOLS, body);
}

export interface ToolResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

export function runTool(argv: readonly string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(
      argv[0],
      argv.slice(1),
      { env: { ...process.env, ...env }, timeout: timeoutMs, encoding: "buffer", maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === "number"
            ? (err as { code: number }).code
            : -1
          : 0;
        resolve({ code, stdout, stderr: stderr.toString() });
      },
    );
  });
}

/** Two consecutive free loopback TCP ports (swtpm: command port, control port = port + 1). */
export async function freePortPair(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    if (port >= 65535) continue;
    const nextFree = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once("error", () => resolve(false));
      s.listen(port + 1, "127.0.0.1", () => s.close(() => resolve(true)));
    });
    if (nextFree) return port;
  }
  throw new Error("no free loopback port pair for swtpm");
}

/** swtpm (TPM 2.0, state in `stateDir`) serving on 127.0.0.1 `port` (commands) and `port + 1` (control). */
export function spawnSwtpm(stateDir: string, port: number): ChildProcess {
  return spawn(
    "swtpm",
    [
      "socket",
      "--tpm2",
      "--tpmstate",
      `dir=${stateDir}`,
      "--server",
      `type=tcp,port=${port},bindaddr=127.0.0.1`,
      "--ctrl",
      `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
      "--flags",
      "not-need-init,startup-clear",
    ],
    { stdio: "ignore" },
  );
}

export class Swtpm {
  private constructor(
    readonly dir: string,
    readonly tcti: string,
    private readonly child: ChildProcess,
  ) {}

  /** Start a fresh swtpm (new state = a new TPM with new EKs) and wait until it answers. */
  static async start(): Promise<Swtpm> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "metalman-swtpm-"));
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePortPair();
      const child = spawnSwtpm(dir, port);
      const tpm = new Swtpm(dir, `swtpm:host=127.0.0.1,port=${port}`, child);
      for (let i = 0; i < 50 && child.exitCode === null; i++) {
        if ((await runTool(["tpm2_getcap", "-T", tpm.tcti, "properties-fixed"], {}, 5000)).code === 0) return tpm;
        await sleep(100);
      }
      await tpm.stopProcess();
    }
    await rm(dir, { recursive: true, force: true });
    throw new Error("swtpm did not start");
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  read(name: string): Promise<Buffer> {
    return readFile(this.file(name));
  }

  /** Run a tpm2 tool against this TPM, then flush transient objects (3 slots only). Throws on failure. */
  async tool(argv: readonly string[]): Promise<ToolResult> {
    const r = await this.tryTool(argv);
    if (r.code !== 0) throw new Error(`${argv.join(" ")} failed (${r.code}): ${r.stderr}`);
    return r;
  }

  async tryTool(argv: readonly string[]): Promise<ToolResult> {
    const r = await runTool(argv, { TPM2TOOLS_TCTI: this.tcti });
    await runTool(["tpm2_flushcontext", "-t"], { TPM2TOOLS_TCTI: this.tcti });
    return r;
  }

  /**
   * tpm2_activatecredential of `credFile` with `target` (the credentialed object) and `ek`.
   * With `policy`, the EK is authorised by PolicySecret(TPM_RH_ENDORSEMENT) as the TCG EK
   * templates require (what the upstream agent does, spec §7.7); else by its empty password.
   * Returns the recovered credential, or undefined when the TPM refused it.
   */
  async activate(ek: string, target: string, credFile: string, policy: boolean): Promise<Buffer | undefined> {
    const out = this.file(`activated-${process.hrtime.bigint()}.bin`);
    const session = this.file("session.ctx");
    const argv = ["tpm2_activatecredential", "-c", this.file(target), "-C", this.file(ek), "-i", credFile, "-o", out];
    try {
      if (policy) {
        await this.tool(["tpm2_startauthsession", "--policy-session", "-S", session]);
        await this.tool(["tpm2_policysecret", "-S", session, "-c", "e"]);
        argv.push("-P", `session:${session}`);
      }
      const r = await this.tryTool(argv);
      return r.code === 0 ? await readFile(out) : undefined;
    } finally {
      if (policy) await this.tryTool(["tpm2_flushcontext", session]);
      await this.tryTool(["tpm2_flushcontext", "-s"]);
      await rm(out, { force: true });
    }
  }

  private async stopProcess(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.kill("SIGTERM");
    const t = sleep(3000).then(() => "timeout");
    if ((await Promise.race([exited.then(() => "exit"), t])) === "timeout") {
      this.child.kill("SIGKILL");
      await exited;
    }
  }

  async stop(): Promise<void> {
    await this.stopProcess();
    await rm(this.dir, { recursive: true, force: true });
  }
}
