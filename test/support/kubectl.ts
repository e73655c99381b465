/**
 * Running the real kubectl against a fake API server (test/support/fake-kube-api.ts): a
 * kubeconfig in a temp folder, a private discovery cache, bounded runs. `KUBECTL` overrides
 * the binary (default: `kubectl` on PATH; CI installs Debian's kubernetes-client, kubectl 1.20).
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export function kubectlBinary(): string | undefined {
  const bin = process.env.KUBECTL ?? "kubectl";
  try {
    execFileSync(bin, ["version", "--client"], { stdio: "ignore", timeout: 20_000 });
    return bin;
  } catch {
    return undefined;
  }
}

/** A kubeconfig for `server` with a bearer token (the fake accepts any). */
export function kubeconfigYaml(server: string, token = "fake-admin-token"): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: fake",
    "  cluster:",
    `    server: ${server}`,
    // client-node refuses plain http unless TLS verification is off (the fake speaks http on loopback).
    "    insecure-skip-tls-verify: true",
    "users:",
    "- name: admin",
    "  user:",
    `    token: ${token}`,
    "contexts:",
    "- name: fake",
    "  context: {cluster: fake, user: admin}",
    "current-context: fake",
    "",
  ].join("\n");
}

export class Kubectl {
  readonly dir: string;
  readonly kubeconfig: string;

  constructor(
    readonly bin: string,
    server: string,
  ) {
    this.dir = mkdtempSync(path.join(tmpdir(), "metalman-kubectl-"));
    this.kubeconfig = path.join(this.dir, "kubeconfig");
    writeFileSync(this.kubeconfig, kubeconfigYaml(server), { mode: 0o600 });
  }

  /** Runs kubectl; resolves stdout, rejects with stderr on a non-zero exit (20 s bound). */
  run(args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = execFile(
        this.bin,
        [`--kubeconfig=${this.kubeconfig}`, `--cache-dir=${path.join(this.dir, "cache")}`, ...args],
        {
          timeout: 20_000,
          env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: this.dir, ...options.env },
          maxBuffer: 16 * 1024 * 1024,
        },
        (err, stdout, stderr) => {
          if (err) reject(new Error(`kubectl ${args.join(" ")}: ${stderr || err.message}`));
          else resolve(stdout);
        },
      );
      if (options.input !== undefined) child.stdin?.end(options.input);
    });
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
