import { createHash, generateKeyPairSync, randomBytes, sign, X509Certificate } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";
import {
  bitString,
  boolean,
  explicit,
  implicit,
  octetString,
  oid,
  sequence,
  set,
  time,
  unsignedInteger,
  utf8String,
} from "./der.js";

/**
 * A self-signed TLS server certificate (X.509 v3, ECDSA P-256, SHA-256) built from node:crypto
 * and a small DER encoder (docs/decisions.md: no certificate package, no openssl at runtime).
 * The browser shows it as untrusted until the operator checks the fingerprint the daemon prints.
 */
export interface SelfSignedOptions {
  /** Subject and issuer CN. */
  commonName: string;
  /** DNS names and IP addresses for subjectAltName (browsers match only these, never the CN). */
  names: string[];
  now?: Date;
  validDays?: number;
}

export interface CertificateMaterial {
  certPem: string;
  keyPem: string;
}

const OID = {
  commonName: "2.5.4.3",
  organization: "2.5.4.10",
  ecPublicKey: "1.2.840.10045.2.1",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectKeyIdentifier: "2.5.29.14",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;

function name(commonName: string): Buffer {
  return sequence(
    set(sequence(oid(OID.organization), utf8String("metalman"))),
    set(sequence(oid(OID.commonName), utf8String(commonName))),
  );
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? sequence(oid(id), boolean(true), octetString(value)) : sequence(oid(id), octetString(value));
}

function ipBytes(address: string): Buffer {
  if (isIPv4(address)) return Buffer.from(address.split(".").map(Number));
  // IPv6: expand "::" and write eight 16-bit groups.
  const [head = "", tail = ""] = address.includes("::") ? address.split("::") : [address, ""];
  const headParts = head === "" ? [] : head.split(":");
  const tailParts = tail === "" ? [] : tail.split(":");
  const groups = [...headParts, ...Array(8 - headParts.length - tailParts.length).fill("0"), ...tailParts];
  const out = Buffer.alloc(16);
  groups.forEach((group, i) => {
    out.writeUInt16BE(Number.parseInt(group, 16), i * 2);
  });
  return out;
}

export function createSelfSignedCertificate(options: SelfSignedOptions): CertificateMaterial {
  const now = options.now ?? new Date();
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  const algorithm = sequence(oid(OID.ecdsaWithSha256));
  const notBefore = new Date(now.getTime() - 60 * 60 * 1000);
  const notAfter = new Date(now.getTime() + (options.validDays ?? 825) * 24 * 60 * 60 * 1000);
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;

  const altNames = [...new Set(options.names)].map((entry) =>
    isIPv4(entry) || isIPv6(entry) ? implicit(7, ipBytes(entry)) : implicit(2, Buffer.from(entry, "ascii")),
  );
  // SKI: SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2 method 1); the last 65 bytes of a P-256 SPKI.
  const keyId = createHash("sha1")
    .update(spki.subarray(spki.length - 65))
    .digest();
  const extensions = explicit(
    3,
    sequence(
      extension(OID.basicConstraints, true, sequence()),
      // digitalSignature (bit 0) only: an ECDHE-ECDSA server key signs, it never encrypts.
      extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)),
      extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth))),
      extension(OID.subjectKeyIdentifier, false, octetString(keyId)),
      extension(OID.subjectAltName, false, sequence(...altNames)),
    ),
  );
  const tbs = sequence(
    explicit(0, unsignedInteger(Buffer.from([2]))),
    unsignedInteger(serial),
    algorithm,
    name(options.commonName),
    sequence(time(notBefore), time(notAfter)),
    name(options.commonName),
    spki,
    extensions,
  );
  const signature = sign("sha256", tbs, { key: privateKey, dsaEncoding: "der" });
  const der = sequence(tbs, algorithm, bitString(signature));
  const certPem = `-----BEGIN CERTIFICATE-----\n${der.toString("base64").replace(/.{1,64}/g, "$&\n")}-----END CERTIFICATE-----\n`;
  const keyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  // Parse what we made: a mistake in the encoder fails here, at first start, never in a browser.
  const check = new X509Certificate(certPem);
  if (!check.verify(publicKey)) throw new Error("self-signed certificate does not verify (encoder bug)");
  return { certPem, keyPem };
}

/** `AB:CD:...` SHA-256 of the certificate's DER, as browsers show it. */
export function certificateFingerprint(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}
