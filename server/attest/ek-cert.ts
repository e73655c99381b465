import { type KeyObject, X509Certificate } from "node:crypto";

/**
 * EK certificate check (beyond upstream, spec §12.1 item 2): the TPM manufacturer signed a
 * certificate for this endorsement key. The agent may send the DER it read from the TPM's NV
 * index (0x01C00002 for RSA, 0x01C0000A / 0x01C00016 for ECC) as `ekCert`. It is accepted when
 * - it parses as X.509 and its subject public key IS the EK presented in the same request, and
 * - it is signed by a certificate of the configured bundle of TPM manufacturer CAs (`--tpm-ca-bundle`),
 *   which is a CA (basicConstraints cA), and both are valid now.
 * Every bundle certificate is a trust anchor (like `openssl verify -partial_chain`): put the
 * manufacturer's intermediate CAs in the bundle when their EK certificates are issued by one.
 * Not checked (docs/attestation.md): revocation (CRL/OCSP), the TCG EK certificate profile
 * (SAN with the TPM model, the EK-certificate EKU), platform certificates.
 *
 * X.509 parsing and signature checks are OpenSSL's, through node:crypto (@peculiar/x509 needs a
 * Reflect metadata polyfill; docs/decisions.md).
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

export type TrustBundle = readonly X509Certificate[];

/** Parses a PEM bundle (one or more `CERTIFICATE` blocks). Throws naming what is wrong. */
export function parseTrustBundle(pem: string): TrustBundle {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error("no PEM CERTIFICATE block found");
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new Error(`certificate ${index + 1}: ${(error as Error).message}`);
    }
  });
}

/** One-line distinguished name (node prints one RDN per line). */
function dn(text: string): string {
  return text.split("\n").filter(Boolean).join(", ");
}

export function verifyEkCertificate(
  der: Buffer | undefined,
  ek: KeyObject,
  bundle: TrustBundle | undefined,
  now: Date,
): EkCertResult {
  if (der === undefined) return { status: "absent" };
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (error) {
    return {
      status: "invalid",
      reason: "unparsable",
      message: `not an X.509 certificate: ${(error as Error).message}`,
    };
  }
  // A genuine certificate of some other TPM proves nothing about this one.
  if (!cert.publicKey.equals(ek)) {
    return { status: "invalid", reason: "key-mismatch", message: "the certificate's public key is not this EK" };
  }
  const issuerName = dn(cert.issuer);
  if (bundle === undefined) return { status: "unchecked", issuer: issuerName, serial: cert.serialNumber };
  const dates = validAt(cert, now, "EK certificate");
  if (dates) return dates;
  const issuer = bundle.find((candidate) => cert.checkIssued(candidate) && cert.verify(candidate.publicKey));
  if (!issuer) {
    return {
      status: "invalid",
      reason: "untrusted-issuer",
      message: `issuer "${issuerName}" is not in the TPM CA bundle, or did not sign this certificate`,
    };
  }
  if (!issuer.ca) {
    return { status: "invalid", reason: "issuer-not-ca", message: `"${dn(issuer.subject)}" is not a CA certificate` };
  }
  const issuerDates = validAt(issuer, now, "issuing CA");
  if (issuerDates) return issuerDates;
  return {
    status: "verified",
    subject: dn(cert.subject),
    issuer: issuerName,
    serial: cert.serialNumber,
    notAfter: new Date(cert.validTo).toISOString(),
  };
}

function validAt(cert: X509Certificate, now: Date, what: string): EkCertResult | undefined {
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (now < from)
    return { status: "invalid", reason: "not-yet-valid", message: `${what} valid from ${from.toISOString()}` };
  if (now > to) return { status: "invalid", reason: "expired", message: `${what} expired ${to.toISOString()}` };
  return undefined;
}
