import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { selfSignedArgs } from "../../server/bmc/emulator/certificate.js";

export interface TestCert {
  key: string;
  cert: string;
  /** `openssl x509 -fingerprint -sha256`, as openssl prints it (upper case): an independent reference. */
  opensslFingerprint: string;
}

/** A self-signed P-256 certificate for 127.0.0.1 (subject CN `cn`), made by openssl for this test run. */
export function selfSignedSync(cn = "127.0.0.1", days = 2): TestCert {
  const dir = mkdtempSync(path.join(tmpdir(), "metalman-test-cert-"));
  try {
    const key = path.join(dir, "key.pem");
    const cert = path.join(dir, "cert.pem");
    execFileSync(
      "openssl",
      selfSignedArgs({ keyFile: key, certFile: cert, subject: `/CN=${cn}`, san: "IP:127.0.0.1", days }),
      { stdio: "ignore" },
    );
    const out = execFileSync("openssl", ["x509", "-in", cert, "-noout", "-fingerprint", "-sha256"], {
      encoding: "utf8",
    });
    return {
      key: readFileSync(key, "utf8"),
      cert: readFileSync(cert, "utf8"),
      opensslFingerprint: out.trim().split("=")[1]!,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
