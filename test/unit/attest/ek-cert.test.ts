/**
 * EK certificate verification against a TPM CA bundle, with certificates made by openssl for
 * software keys: verified, key mismatch, untrusted issuer (same name, other key), an issuer
 * that is not a CA, expiry, garbage, and no bundle.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { parseTrustBundle, verifyEkCertificate } from "../../../server/attest/ek-cert.js";

describe("verifyEkCertificate", () => {
  let dir: string;
  const ek = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
  let caPem: string;
  let impostorPem: string;
  let leafCaPem: string;
  let ekCert: Buffer;
  let ekCertByLeaf: Buffer;
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "m9a-ekcert-"));
    writeFileSync(path.join(dir, "ek.pem"), ek.publicKey.export({ type: "spki", format: "pem" }));
    const ca = (name: string, subject: string, isCa: boolean) =>
      openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.pem`,
        "-subj",
        subject,
        "-days",
        "3",
        "-addext",
        `basicConstraints=critical,CA:${isCa ? "TRUE" : "FALSE"}`,
      );
    ca("ca", "/CN=Test TPM Manufacturer CA", true);
    ca("impostor", "/CN=Test TPM Manufacturer CA", true);
    ca("leafca", "/CN=Not A CA", false);
    openssl("req", "-new", "-key", "ca.key", "-subj", "/CN=ek", "-out", "ek.csr");
    const issue = (issuer: string, out: string) =>
      openssl(
        "x509",
        "-req",
        "-in",
        "ek.csr",
        "-CA",
        `${issuer}.pem`,
        "-CAkey",
        `${issuer}.key`,
        "-CAcreateserial",
        "-force_pubkey",
        "ek.pem",
        "-days",
        "2",
        "-outform",
        "DER",
        "-out",
        out,
      );
    issue("ca", "ek.der");
    issue("leafca", "ek-by-leaf.der");
    caPem = readFileSync(path.join(dir, "ca.pem"), "utf8");
    impostorPem = readFileSync(path.join(dir, "impostor.pem"), "utf8");
    leafCaPem = readFileSync(path.join(dir, "leafca.pem"), "utf8");
    ekCert = readFileSync(path.join(dir, "ek.der"));
    ekCertByLeaf = readFileSync(path.join(dir, "ek-by-leaf.der"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const now = () => new Date();

  it("verifies a certificate for this EK signed by a bundle CA (any bundle certificate is an anchor)", () => {
    const result = verifyEkCertificate(ekCert, ek.publicKey, parseTrustBundle(impostorPem + caPem), now());
    assert.equal(result.status, "verified", JSON.stringify(result));
  });

  it("refuses a genuine certificate of another key", () => {
    const result = verifyEkCertificate(ekCert, other.publicKey, parseTrustBundle(caPem), now());
    assert.deepEqual([result.status, result.status === "invalid" && result.reason], ["invalid", "key-mismatch"]);
  });

  it("refuses an issuer with the right name and the wrong key, and a signer that is not a CA", () => {
    const impostor = verifyEkCertificate(ekCert, ek.publicKey, parseTrustBundle(impostorPem), now());
    assert.equal(impostor.status === "invalid" && impostor.reason, "untrusted-issuer");
    const leaf = verifyEkCertificate(ekCertByLeaf, ek.publicKey, parseTrustBundle(leafCaPem), now());
    assert.equal(leaf.status === "invalid" && leaf.reason, "issuer-not-ca");
  });

  it("refuses an expired certificate, and garbage", () => {
    const later = new Date(Date.now() + 30 * 86_400_000);
    const expired = verifyEkCertificate(ekCert, ek.publicKey, parseTrustBundle(caPem), later);
    assert.equal(expired.status === "invalid" && expired.reason, "expired");
    const garbage = verifyEkCertificate(Buffer.from("nope"), ek.publicKey, parseTrustBundle(caPem), now());
    assert.equal(garbage.status === "invalid" && garbage.reason, "unparsable");
  });

  it("without a bundle: 'unchecked' when the key matches (nothing proves the signer), absent when none was sent", () => {
    assert.equal(verifyEkCertificate(ekCert, ek.publicKey, undefined, now()).status, "unchecked");
    assert.equal(verifyEkCertificate(undefined, ek.publicKey, undefined, now()).status, "absent");
  });

  it("parseTrustBundle refuses a file without certificates", () => {
    assert.throws(() => parseTrustBundle("hello"), /no PEM CERTIFICATE/);
  });
});
