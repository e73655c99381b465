import { createPublicKey, type KeyObject, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

/**
 * EK certificate check (beyond upstream, spec §12.1 item 2): the TPM manufacturer signed a
 * certificate for this endorsement key. The agent may send the DER it read from the TPM's NV
 * index (0x01C00002 for RSA, 0x01C0000A for ECC) as `ekCert`. It is accepted when
 * - it parses as X.509 and its subject public key IS the EK presented in the same request, and
 * - it is signed by a certificate of the configured bundle of TPM manufacturer CAs (`--tpm-ca-bundle`),
 *   which is a CA (basicConstraints cA), and both are valid now.
 * Every bundle certificate is a trust anchor (like `openssl verify -partial_chain`): put the
 * manufacturer's intermediate CAs in the bundle when their EK certificates are issued by one.
 * Not checked (docs/attestation.md): revocation (CRL/OCSP), the TCG EK certificate profile
 * (SAN with the TPM model, the EK-certificate EKU), platform certificates.
 */
export type EkCertResult =
  | { status: "absent" }
  | { status: "verified"; subject: string; issuer: string; serial: string; notAfter: string }
  /** Presented and its key is the EK, but no bundle is configured: nothing proves who signed it. */
  | { status: "unchecked"; issuer: string; serial: string }
  | { status: "invalid"; reason: EkCertFailure; message: string };

export type EkCertFailure =
  | "unparsable"
  | "key-mismatch"
  | "untrusted-issuer"
  | "issuer-not-ca"
  | "expired"
  | "not-yet-valid";

export type TrustBundle = readonly x509.X509Certificate[];

const crypto = webcrypto as unknown as Parameters<x509.X509Certificate["verify"]>[1];

/** Parses a PEM bundle (one or more `CERTIFICATE` blocks). Throws naming what is wrong. */
export function parseTrustBundle(pem: string): TrustBundle {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error("no PEM CERTIFICATE block found");
  return blocks.map((block, index) => {
    try {
      return new x509.X509Certificate(block);
    } catch (error) {
      throw new Error(`certificate ${index + 1}: ${(error as Error).message}`);
    }
  });
}

export async function verifyEkCertificate(
  der: Buffer | undefined,
  ek: KeyObject,
  bundle: TrustBundle | undefined,
  now: Date,
): Promise<EkCertResult> {
  if (der === undefined) return { status: "absent" };
  let cert: x509.X509Certificate;
  let certKey: KeyObject;
  try {
    cert = new x509.X509Certificate(der);
    certKey = createPublicKey({ key: Buffer.from(cert.publicKey.rawData), format: "der", type: "spki" });
  } catch (error) {
    return {
      status: "invalid",
      reason: "unparsable",
      message: `not an X.509 certificate: ${(error as Error).message}`,
    };
  }
  // A genuine certificate of some other TPM proves nothing about this one.
  if (!certKey.equals(ek)) {
    return { status: "invalid", reason: "key-mismatch", message: "the certificate's public key is not this EK" };
  }
  if (bundle === undefined) return { status: "unchecked", issuer: cert.issuer, serial: cert.serialNumber };
  const dates = validAt(cert, now, "EK certificate");
  if (dates) return dates;
  const issuer = await findIssuer(cert, bundle);
  if (!issuer) {
    return {
      status: "invalid",
      reason: "untrusted-issuer",
      message: `issuer "${cert.issuer}" is not in the TPM CA bundle, or did not sign this certificate`,
    };
  }
  if (issuer.getExtension(x509.BasicConstraintsExtension)?.ca !== true) {
    return { status: "invalid", reason: "issuer-not-ca", message: `"${issuer.subject}" is not a CA certificate` };
  }
  const issuerDates = validAt(issuer, now, "issuing CA");
  if (issuerDates) return issuerDates;
  return {
    status: "verified",
    subject: cert.subject,
    issuer: cert.issuer,
    serial: cert.serialNumber,
    notAfter: cert.notAfter.toISOString(),
  };
}

function validAt(cert: x509.X509Certificate, now: Date, what: string): EkCertResult | undefined {
  if (now < cert.notBefore) {
    return {
      status: "invalid",
      reason: "not-yet-valid",
      message: `${what} valid from ${cert.notBefore.toISOString()}`,
    };
  }
  if (now > cert.notAfter) {
    return { status: "invalid", reason: "expired", message: `${what} expired ${cert.notAfter.toISOString()}` };
  }
  return undefined;
}

/** The bundle certificate whose subject is the issuer's name and whose key verifies the signature. */
async function findIssuer(cert: x509.X509Certificate, bundle: TrustBundle): Promise<x509.X509Certificate | undefined> {
  for (const candidate of bundle) {
    if (candidate.subject !== cert.issuer) continue;
    try {
      if (await cert.verify({ publicKey: candidate, signatureOnly: true }, crypto)) return candidate;
    } catch {
      // An algorithm WebCrypto does not know (or a broken key): not this issuer.
    }
  }
  return undefined;
}
