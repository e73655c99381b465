/**
 * A software TPM 2.0 (swtpm) driven with tpm2-tools, doing what the upstream agent does with
 * go-tpm (spec §7.2, §7.7): create the EK (RSA or ECC) and an SRK, read the EK certificate,
 * and ActivateCredential under an EK policy session. Also: manufacture a TPM with EK
 * certificates from a CA of its own (`swtpm_setup --create-ek-cert` with a private
 * swtpm_localca config), so tests never touch /var/lib/swtpm-localca.
 *
 * swtpm runs as our child (no --daemon) and is stopped by its PID. There is no resource
 * manager between tpm2-tools and swtpm, and swtpm has 3 transient slots: every step flushes
 * transient objects; the saved context files reload them.
 */
import { type ChildProcess, execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePortPair, spawnSwtpm, tpmToolSuite } from "../attest-tpm/swtpm-peer.js";

export const SOFT_TPM_TOOLS = [
  "swtpm",
  "swtpm_setup",
  "swtpm_localca",
  "tpm2_createek",
  "tpm2_createprimary",
  "tpm2_readpublic",
  "tpm2_startauthsession",
  "tpm2_policysecret",
  "tpm2_activatecredential",
  "tpm2_flushcontext",
  "tpm2_getcap",
  "tpm2_nvread",
  "openssl",
] as const;

/** `describe()` for these tests: skipped without swtpm/tpm2-tools, a failure under CI=true. */
export function softTpmSuite(name: string, body: () => void): void {
  tpmToolSuite(name, SOFT_TPM_TOOLS, body);
}

/** Runs a tool, bounded in time; rejects with its stderr on a non-zero exit. */
export function run(tool: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      tool,
      args,
      { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 4 << 20 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`${tool} ${args.join(" ")}: ${error.message}\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

/** A private CA for swtpm_localca: `ca/issuercert.pem` signs EK certificates, below `ca/swtpm-localca-rootca-cert.pem`. */
export async function privateSetupConfig(
  dir: string,
): Promise<{ config: string; issuerCert: string; rootCert: string }> {
  const ca = path.join(dir, "ca");
  await mkdir(ca, { recursive: true });
  const localca = path.join(dir, "swtpm-localca.conf");
  await writeFile(
    localca,
    [
      `statedir = ${ca}`,
      `signingkey = ${ca}/signkey.pem`,
      `issuercert = ${ca}/issuercert.pem`,
      `certserial = ${ca}/certserial`,
      "",
    ].join("\n"),
  );
  const config = path.join(dir, "swtpm_setup.conf");
  await writeFile(
    config,
    [
      "create_certs_tool = /usr/bin/swtpm_localca",
      `create_certs_tool_config = ${localca}`,
      "create_certs_tool_options = /etc/swtpm-localca.options",
      "active_pcr_banks = sha256",
      "",
    ].join("\n"),
  );
  return {
    config,
    issuerCert: path.join(ca, "issuercert.pem"),
    rootCert: path.join(ca, "swtpm-localca-rootca-cert.pem"),
  };
}

export interface TpmObject {
  /** TPM2B_PUBLIC, as the agent sends it. */
  pub: Buffer;
  /** Saved context for later commands. */
  ctx: string;
}

export class SoftTpm {
  readonly #child: ChildProcess;
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;

  private constructor(child: ChildProcess, dir: string, port: number) {
    this.#child = child;
    this.dir = dir;
    this.env = { TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}` };
  }

  /** A fresh TPM in `dir`; with `setupConfig`, manufactured first with EK certificates from that CA. */
  static async start(dir: string, options: { setupConfig?: string } = {}): Promise<SoftTpm> {
    const state = path.join(dir, "state");
    await mkdir(state, { recursive: true });
    if (options.setupConfig) {
      await run("swtpm_setup", [
        "--tpm2",
        "--tpmstate",
        state,
        "--config",
        options.setupConfig,
        "--create-ek-cert",
        "--lock-nvram",
        "--overwrite",
      ]);
    }
    const port = await freePortPair();
    const child = spawnSwtpm(state, port);
    const tpm = new SoftTpm(child, dir, port);
    for (let i = 0; i < 100; i++) {
      if (child.exitCode !== null) throw new Error(`swtpm exited with ${child.exitCode}`);
      try {
        await run("tpm2_getcap", ["properties-fixed"], tpm.env, 2_000);
        return tpm;
      } catch {
        await sleep(50);
      }
    }
    await tpm.stop();
    throw new Error("swtpm did not come up within 5 s");
  }

  async #tool(tool: string, args: string[]): Promise<string> {
    const out = await run(tool, args, this.env);
    await run("tpm2_flushcontext", ["-t"], this.env).catch(() => "");
    return out;
  }

  /** The endorsement key with the TCG default template (L-1 RSA-2048 or L-2 ECC P-256), like the agent's CreatePrimary. */
  async createEk(alg: "rsa" | "ecc"): Promise<TpmObject> {
    const ctx = path.join(this.dir, `ek-${alg}.ctx`);
    const pub = path.join(this.dir, `ek-${alg}.pub`);
    await this.#tool("tpm2_createek", ["-c", ctx, "-G", alg, "-u", pub, "-f", "tss"]);
    return { ctx, pub: await readFile(pub) };
  }

  /** The SRK as the agent creates it (spec §7.2): RSA-2048, SHA-256, AES-128-CFB, attributes 0x00030472. */
  async createSrk(): Promise<TpmObject & { name: Buffer }> {
    const ctx = path.join(this.dir, "srk.ctx");
    const pub = path.join(this.dir, "srk.pub");
    const name = path.join(this.dir, "srk.name");
    await this.#tool("tpm2_createprimary", [
      "-C",
      "o",
      "-g",
      "sha256",
      "-G",
      "rsa2048:null:aes128cfb",
      "-a",
      "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt",
      "-c",
      ctx,
    ]);
    await this.#tool("tpm2_readpublic", ["-c", ctx, "-o", pub, "-f", "tss", "-n", name]);
    return { ctx, pub: await readFile(pub), name: await readFile(name) };
  }

  /** The EK certificate from its NV index (RSA 0x01C00002), when the TPM was manufactured with one. */
  async readEkCert(index = "0x1c00002"): Promise<Buffer | undefined> {
    // tpm2_nvreadpublic of an absent index segfaults in tpm2-tools 5.4: list the indices instead.
    const indices = await run("tpm2_getcap", ["handles-nv-index"], this.env);
    if (!indices.toLowerCase().includes(index.toLowerCase())) return undefined;
    const out = path.join(this.dir, "ekcert.der");
    await run("tpm2_nvread", [index, "-o", out], this.env);
    return readFile(out);
  }

  /**
   * TPM2_ActivateCredential (spec §7.7): the credential file is the tpm2-tools header plus the
   * two wire blobs; the EK is authorised by PolicySecret(endorsement). Returns the secret (K).
   */
  async activate(ek: TpmObject, srk: TpmObject, credentialBlob: Buffer, encryptedSecret: Buffer): Promise<Buffer> {
    const cred = path.join(this.dir, "cred.bin");
    const out = path.join(this.dir, "key.bin");
    const session = path.join(this.dir, "session.ctx");
    await writeFile(cred, Buffer.concat([Buffer.from("badcc0de00000001", "hex"), credentialBlob, encryptedSecret]));
    await run("tpm2_startauthsession", ["--policy-session", "-S", session], this.env);
    try {
      await run("tpm2_policysecret", ["-S", session, "-c", "e"], this.env);
      await run(
        "tpm2_activatecredential",
        ["-c", srk.ctx, "-C", ek.ctx, "-i", cred, "-o", out, "-P", `session:${session}`],
        this.env,
      );
    } finally {
      await run("tpm2_flushcontext", [session], this.env).catch(() => "");
      await run("tpm2_flushcontext", ["-t"], this.env).catch(() => "");
    }
    return readFile(out);
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 2_000);
    await exited;
    clearTimeout(timer);
  }
}
