import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import { writeFileAtomic } from "../util/atomic-file.js";
import { certificateFingerprint, createSelfSignedCertificate } from "./self-signed-cert.js";

export interface ConsoleTls {
  cert: string;
  key: string;
  /** SHA-256 of the certificate, `AB:CD:...`. */
  fingerprint: string;
  /** `created`: made now (first start); `reused`: the state dir's; `operator`: --console-tls-cert. */
  source: "created" | "reused" | "operator";
  certFile: string;
  keyFile: string;
  notAfter: string;
}

export interface ConsoleTlsOptions {
  stateDir: string;
  /** The operator's certificate and key (PEM files), used as they are. */
  certFile?: string;
  keyFile?: string;
  /** Names for a certificate made here: the listen address and this host's name are added. */
  listenAddress: string;
  now?: Date;
}

export function consoleTlsDir(stateDir: string): string {
  return path.join(stateDir, "console", "tls");
}

/**
 * The console listener's certificate: the operator's when configured; else the one made at
 * first start and kept in `<stateDir>/console/tls/{cert,key}.pem` (key 0600), so the
 * fingerprint an operator accepted stays the same across restarts. A pair that is half there,
 * unreadable, or whose key does not match is never silently replaced: start fails and says
 * which file to look at (delete both to make a new pair).
 */
export async function loadConsoleTls(options: ConsoleTlsOptions): Promise<ConsoleTls> {
  if (options.certFile || options.keyFile) {
    if (!options.certFile || !options.keyFile) {
      throw new Error("--console-tls-cert and --console-tls-key go together: give both, or neither");
    }
    const [cert, key] = await Promise.all([readFile(options.certFile, "utf8"), readFile(options.keyFile, "utf8")]);
    return describe(cert, key, "operator", options.certFile, options.keyFile);
  }
  const dir = consoleTlsDir(options.stateDir);
  const certFile = path.join(dir, "cert.pem");
  const keyFile = path.join(dir, "key.pem");
  const [cert, key] = await Promise.all([readIfThere(certFile), readIfThere(keyFile)]);
  if (cert !== undefined && key !== undefined) return describe(cert, key, "reused", certFile, keyFile);
  if (cert !== undefined || key !== undefined) {
    throw new Error(
      `console TLS: ${cert === undefined ? certFile : keyFile} is missing but ${cert === undefined ? keyFile : certFile} exists; ` +
        "metalman does not replace half a pair: restore it, or delete both to make a new self-signed certificate",
    );
  }
  const names = ["localhost", "127.0.0.1", "::1", hostname()];
  if (options.listenAddress !== "0.0.0.0" && options.listenAddress !== "::") names.push(options.listenAddress);
  const made = createSelfSignedCertificate({ commonName: `metalman console ${hostname()}`, names, now: options.now });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Key first: a crash between the two writes leaves a key without a certificate, which the
  // next start reports instead of serving a certificate whose key is lost.
  await writeFileAtomic(keyFile, made.keyPem);
  await writeFileAtomic(certFile, made.certPem);
  return describe(made.certPem, made.keyPem, "created", certFile, keyFile);
}

async function readIfThere(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

function describe(
  cert: string,
  key: string,
  source: ConsoleTls["source"],
  certFile: string,
  keyFile: string,
): ConsoleTls {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`console TLS: ${certFile} is not a PEM certificate: ${(err as Error).message}`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new Error(`console TLS: ${keyFile} is not a PEM private key: ${(err as Error).message}`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new Error(`console TLS: the key in ${keyFile} does not belong to the certificate in ${certFile}`);
  }
  return { cert, key, fingerprint: certificateFingerprint(cert), source, certFile, keyFile, notAfter: x509.validTo };
}
