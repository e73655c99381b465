import { execFile } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { writeFileAtomic } from "../../util/atomic-file.js";

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
export async function selfSignedCertificate(hosts: readonly string[] = ["127.0.0.1"], days = 30): Promise<SelfSigned> {
  const dir = await mkdtemp(path.join(tmpdir(), "metalman-bmc-cert-"));
  try {
    const key = path.join(dir, "key.pem");
    const cert = path.join(dir, "cert.pem");
    const san = [...new Set(["127.0.0.1", "::1", "localhost", ...hosts])]
      .map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`))
      .join(",");
    await run(
      "openssl",
      selfSignedArgs({ keyFile: key, certFile: cert, subject: "/CN=metalman-bmc-emulator", san, days }),
      { timeout: 30_000 },
    );
    const certPem = await readFile(cert, "utf8");
    const keyPem = await readFile(key, "utf8");
    return { certPem, keyPem, fingerprint: fingerprintOf(certPem) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `openssl req -x509` for a self-signed P-256 certificate with its key (unencrypted) into
 * `keyFile`/`certFile`: `san` as openssl writes it (`IP:127.0.0.1,DNS:localhost`). The tests'
 * certificates (test/support/self-signed.ts) are made the same way.
 */
export function selfSignedArgs(request: {
  keyFile: string;
  certFile: string;
  subject: string;
  san: string;
  days: number;
}): string[] {
  return [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    request.keyFile,
    "-out",
    request.certFile,
    "-days",
    String(request.days),
    "-subj",
    request.subject,
    "-addext",
    `subjectAltName=${request.san}`,
  ];
}

export function fingerprintOf(certPem: string): string {
  const der = new X509Certificate(certPem).raw;
  const hex = createHash("sha256").update(der).digest("hex");
  return hex.match(/../g)!.join(":");
}

/**
 * `--tls-dir DIR`: the certificate survives restarts, so the fingerprint a Machine pinned at
 * first contact (trust on first use) still matches after `npm start` runs again. DIR holds
 * `cert.pem` and `key.pem` (0600, written atomically); a key others can read is refused, as a
 * Secret file would be. A certificate missing a host now listened on is replaced (and the
 * fingerprint changes: a client pinned to the old one then sees a mismatch, as with a real BMC).
 */
export async function persistentCertificate(
  dir: string,
  hosts: readonly string[] = ["127.0.0.1"],
): Promise<SelfSigned> {
  const keyFile = path.join(dir, "key.pem");
  const certFile = path.join(dir, "cert.pem");
  try {
    const info = await stat(keyFile);
    if ((info.mode & 0o077) !== 0) {
      throw new Error(`${keyFile} is readable by other users (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`);
    }
    const certPem = await readFile(certFile, "utf8");
    const keyPem = await readFile(keyFile, "utf8");
    const x509 = new X509Certificate(certPem);
    const covers = hosts.every((h) => (/^[\d.]+$|:/.test(h) ? x509.checkIP(h) : x509.checkHost(h)) !== undefined);
    if (covers && Date.parse(x509.validTo) > Date.now() + 86_400_000) {
      return { certPem, keyPem, fingerprint: fingerprintOf(certPem) };
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const fresh = await selfSignedCertificate(hosts, 3650);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(keyFile, fresh.keyPem);
  await writeFileAtomic(certFile, fresh.certPem);
  return fresh;
}
