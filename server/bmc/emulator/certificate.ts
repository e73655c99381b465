import { execFile } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface SelfSigned {
  certPem: string;
  keyPem: string;
  /** SHA-256 of the leaf DER, lowercase hex pairs joined by `:` (the `status.redfish.certFingerprint` format). */
  fingerprint: string;
}

/**
 * A fresh self-signed P-256 certificate for the emulator, made with openssl at start-up (a
 * dev tool: no key is ever stored in the repository). SANs cover the loopback names and the
 * addresses the emulator listens on, so a client that does verify against it can.
 */
export async function selfSignedCertificate(hosts: readonly string[] = ["127.0.0.1"]): Promise<SelfSigned> {
  const dir = await mkdtemp(path.join(tmpdir(), "metalman-bmc-cert-"));
  try {
    const key = path.join(dir, "key.pem");
    const cert = path.join(dir, "cert.pem");
    const san = [...new Set(["127.0.0.1", "::1", "localhost", ...hosts])]
      .map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`))
      .join(",");
    await run(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "30",
        "-subj",
        "/CN=metalman-bmc-emulator",
        "-addext",
        `subjectAltName=${san}`,
      ],
      { timeout: 30_000 },
    );
    const certPem = await readFile(cert, "utf8");
    const keyPem = await readFile(key, "utf8");
    return { certPem, keyPem, fingerprint: fingerprintOf(certPem) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function fingerprintOf(certPem: string): string {
  const der = new X509Certificate(certPem).raw;
  const hex = createHash("sha256").update(der).digest("hex");
  return hex.match(/../g)!.join(":");
}
