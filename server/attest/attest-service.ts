import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { BootEvent, BootEventBus } from "../events/boot-events.js";
import type { MachineBackend } from "../inventory/backend.js";
import { setCondition } from "../inventory/conditions.js";
import type { Machine, MachineStatus } from "../inventory/types.js";
import { RateLimiter } from "../util/rate-limiter.js";
import { AttemptBudget, type AttemptBudgetOptions } from "./attempt-budget.js";
import { parseAttestRequest } from "./attest-request.js";
import { type EkCertResult, type TrustBundle, verifyEkCertificate } from "./ek-cert.js";
import { compareWithPin, ekFingerprint, ekPinPem } from "./ek-pin.js";
import { expectsAttestation, requiresEkCert } from "./expectation.js";
import { sealToken, tokenId } from "./seal.js";
import type { TokenSource } from "./token-source.js";
import type { TpmCredentialPort, TpmPublicKey } from "./tpm-port.js";

/**
 * `POST /attest` policy (spec §7.3, plus what upstream lacks, docs/attestation.md). Transport-free:
 * the Fastify plugin hands in the requester's IP and the body bytes, and sends the answer.
 *
 * Order (upstream's, with our checks between, and the EK pinned last):
 *  1. body over the limit or not JSON -> 400 `invalid request body`; a field missing -> 400
 *  2. no Machine for the IP -> 404 `node not found`
 *  3. attempt budget of that Machine spent -> 429; its state quarantined -> 403
 *  4. EK, then SRK parsed as TPM2B_PUBLIC -> 400 `invalid EK public key` / `invalid SRK public key`
 *  5. the EK compared with the pin in status.tpm.ekPublicKey -> 403 on mismatch
 *  6. EK certificate checked (when sent, or required) -> 403 when it fails
 *  7. the Machine must expect to attest (recent boot or repave) -> 403 `attestation not expected`
 *  8. K = 32 random bytes, MakeCredential(EK, Name(SRK), K); the token from the token source,
 *     sealed with AES-256-GCM under K
 *  9. status written: the EK pin on first use (re-checked inside the write, so two TPMs racing
 *     for the same Machine cannot both win), conditions `Attested` and `EKCertificate`
 * 10. 200 with the upstream JSON shape.
 * Unlike upstream the pin is written only for a request that passed every check (upstream pins
 * before checking the SRK, spec §7.3 step 5 quirk).
 */
export interface AttestServiceOptions {
  backend: MachineBackend;
  events: BootEventBus;
  tpm: TpmCredentialPort;
  /** Undefined: attestation is not configured; every request gets 503 (and an event). */
  tokens: TokenSource | undefined;
  log: Pick<Logger, "info" | "warn" | "error">;
  /** PEM sent as `clusterCA` (omitted when empty). */
  clusterCa?: string;
  /** TPM manufacturer CAs for `ekCert`; undefined: certificates are only matched against the EK. */
  trustBundle?: TrustBundle;
  /** Check a presented `ekCert` (default true). False ignores the field, as upstream does. */
  verifyEkCert?: boolean;
  /** Require a verified EK certificate from every Machine (default false; per Machine: annotation). */
  requireEkCert?: boolean;
  /** How long after its last boot or repave a Machine may attest (default 1 h; 0 = any time). */
  expectWindowMs?: number;
  attempts?: AttemptBudgetOptions;
  now?: () => Date;
  /** Injected in tests. */
  randomKey?: () => Buffer;
}

export interface AttestResponse {
  credentialBlob: string;
  encryptedSecret: string;
  encryptedToken: string;
  gcmNonce: string;
  clusterCA?: string;
}

export type AttestAnswer =
  | { status: 200; body: AttestResponse }
  | { status: 400 | 403 | 404 | 429 | 500 | 503; message: string; reason: string; retryAfterSeconds?: number };

/** Error messages: upstream's where upstream has the case (clients may match them). */
export const ATTEST_MESSAGES = {
  invalidBody: "invalid request body",
  missingFields: "missing or invalid fields",
  notFound: "node not found",
  invalidEk: "invalid EK public key",
  invalidSrk: "invalid SRK public key",
  ekMismatch: "EK public key does not match stored key",
  internal: "internal error",
  tooMany: "too many attestation attempts, retry later",
  quarantined: "machine state is quarantined; an operator must review it",
  ekCertInvalid: "EK certificate not accepted",
  ekCertRequired: "EK certificate required",
  notExpected: "attestation not expected: the machine has not booted from this server recently",
  notConfigured: "attestation is not configured on this server",
} as const;

const EK_CERT_CONDITION = "EKCertificate";
const ATTESTED_CONDITION = "Attested";

class PinRaceLost extends Error {}

export class AttestService {
  readonly #o: AttestServiceOptions;
  readonly #budget: AttemptBudget;
  /** Stranger refusals (unknown IPs) and budget refusals are reported once per interval per source. */
  readonly #quiet = new RateLimiter({ intervalMs: 10_000, maxKeys: 4096 });

  constructor(options: AttestServiceOptions) {
    this.#o = options;
    this.#budget = new AttemptBudget(options.attempts);
  }

  async attest(input: {
    ip: string | undefined;
    mac?: (machine: Machine) => string | undefined;
    body: Buffer;
    tooLarge: boolean;
  }): Promise<AttestAnswer> {
    const { backend, events } = this.#o;
    const now = (this.#o.now ?? (() => new Date()))();
    const ip = input.ip;
    const stranger = (reason: string, status: 400 | 404, message: string): AttestAnswer => {
      const quiet = this.#quiet.check(`${reason}|${ip}`);
      if (quiet.allowed)
        events.emit({
          step: "attest.refuse",
          result: status === 404 ? "not-found" : "error",
          ip,
          reason,
          detail: quiet.suppressed ? { suppressed: quiet.suppressed } : undefined,
        });
      return { status, message, reason };
    };

    // 1-2: upstream decodes the body before looking the Machine up; keep that order for status codes.
    if (input.tooLarge)
      return (
        this.#refuseByIp(ip, "body-too-large", 400, ATTEST_MESSAGES.invalidBody) ??
        stranger("body-too-large", 400, ATTEST_MESSAGES.invalidBody)
      );
    const parsed = parseAttestRequest(input.body);
    if (!parsed.ok) {
      const [reason, message] =
        parsed.reason === "invalid-body"
          ? ["invalid-body", ATTEST_MESSAGES.invalidBody]
          : ["missing-fields", ATTEST_MESSAGES.missingFields];
      return this.#refuseByIp(ip, reason, 400, message) ?? stranger(reason, 400, message);
    }
    const machine = ip === undefined ? undefined : backend.byIp(ip);
    if (machine === undefined) return stranger("unknown-client", 404, ATTEST_MESSAGES.notFound);
    const name = machine.metadata.name;
    const base = { ip, mac: input.mac?.(machine), machine: name };
    const refuse = (
      reason: string,
      status: 400 | 403 | 429 | 500 | 503,
      message: string,
      detail?: BootEvent["detail"],
    ): AttestAnswer => {
      events.emit({ ...base, step: "attest.refuse", result: "error", reason, detail });
      return { status, message, reason };
    };

    // 3: bounded work per Machine, and nothing for one whose state cannot be trusted.
    const attempt = this.#budget.take(name);
    if (!attempt.allowed) {
      const quiet = this.#quiet.check(`budget|${name}`);
      if (quiet.allowed)
        events.emit({
          ...base,
          step: "attest.refuse",
          result: "error",
          reason: "rate-limited",
          detail: { retryAfterMs: attempt.retryAfterMs, suppressed: quiet.suppressed || undefined },
        });
      return {
        status: 429,
        message: ATTEST_MESSAGES.tooMany,
        reason: "rate-limited",
        retryAfterSeconds: Math.ceil(attempt.retryAfterMs / 1000),
      };
    }
    if (backend.quarantine(name) !== undefined) return refuse("quarantined", 403, ATTEST_MESSAGES.quarantined);

    // 4: both keys parse before anything is written (upstream pinned the EK before checking the SRK).
    let ek: TpmPublicKey;
    let srk: TpmPublicKey;
    try {
      ek = this.#o.tpm.parsePublic(parsed.request.ekPub);
    } catch (error) {
      return refuse("invalid-ek", 400, ATTEST_MESSAGES.invalidEk, { error: (error as Error).message });
    }
    try {
      srk = this.#o.tpm.parsePublic(parsed.request.srkPub);
    } catch (error) {
      return refuse("invalid-srk", 400, ATTEST_MESSAGES.invalidSrk, { error: (error as Error).message });
    }
    const ekId = ekFingerprint(ek.publicKey);
    const ekDetail = { ek: ekId.slice(0, 16), ekAlgorithm: ek.algorithm };

    // 5: TOFU.
    const pin = compareWithPin(machine.status?.tpm?.ekPublicKey, ek.publicKey);
    if (pin.kind === "unreadable") {
      this.#o.log.error({ machine: name, error: pin.message }, "attest: the stored EK pin does not parse");
      return refuse("pin-unreadable", 500, ATTEST_MESSAGES.internal, { error: pin.message });
    }
    if (pin.kind === "mismatch") {
      this.#o.log.warn(
        { machine: name, ip, ek: ekId },
        "attest refused: a different TPM than the pinned one (board swap? run metalman machine repin-tpm)",
      );
      return refuse("ek-mismatch", 403, ATTEST_MESSAGES.ekMismatch, ekDetail);
    }

    // 6: the EK certificate, when sent (or required).
    const cert: EkCertResult =
      this.#o.verifyEkCert === false
        ? { status: "absent" }
        : verifyEkCertificate(parsed.request.ekCert, ek.publicKey, this.#o.trustBundle, now);
    const required = requiresEkCert(machine, this.#o.requireEkCert ?? false);
    if (cert.status !== "absent") {
      events.emit({
        ...base,
        step: "attest.ek-cert",
        result: cert.status === "invalid" ? "error" : cert.status === "verified" ? "ok" : "ignored",
        reason: cert.status === "invalid" ? cert.reason : cert.status === "unchecked" ? "no-trust-bundle" : undefined,
        detail: { ...ekDetail, ...certDetail(cert) },
      });
    }
    if (cert.status === "invalid") {
      await this.#recordRefusal(name, "EKCertificateInvalid", cert.message, cert, now);
      return refuse("ek-cert-invalid", 403, ATTEST_MESSAGES.ekCertInvalid, { ...ekDetail, certReason: cert.reason });
    }
    if (required && cert.status !== "verified") {
      const why =
        cert.status === "absent" ? "no EK certificate was presented" : "no TPM CA bundle is configured to verify it";
      await this.#recordRefusal(name, "EKCertificateRequired", why, cert, now);
      return refuse("ek-cert-required", 403, ATTEST_MESSAGES.ekCertRequired, { ...ekDetail, cert: cert.status });
    }

    // 7: a token only for a Machine that is in its attestation window.
    const expectation = expectsAttestation(
      machine,
      this.#o.events.history(name),
      now,
      this.#o.expectWindowMs ?? 3_600_000,
    );
    if (!expectation.expected) {
      await this.#recordRefusal(
        name,
        "NotExpected",
        expectation.lastActivity
          ? `last boot activity ${expectation.lastActivity} (${expectation.via}) is outside the window`
          : "no boot or repave seen",
        undefined,
        now,
      );
      return refuse("not-expected", 403, ATTEST_MESSAGES.notExpected, {
        ...ekDetail,
        lastActivity: expectation.lastActivity,
        via: expectation.via,
      });
    }

    // 8: wrap K for this TPM, get the token, seal it.
    if (this.#o.tokens === undefined) return refuse("not-configured", 503, ATTEST_MESSAGES.notConfigured);
    const key = (this.#o.randomKey ?? (() => randomBytes(32)))();
    let wrapped: { credentialBlob: Buffer; encryptedSecret: Buffer };
    try {
      wrapped = this.#o.tpm.makeCredential(ek, srk.name, key);
    } catch (error) {
      // The EK parsed but cannot wrap (e.g. an unsupported symmetric or curve): the request's fault.
      return refuse("make-credential", 400, ATTEST_MESSAGES.invalidEk, {
        ...ekDetail,
        error: (error as Error).message,
      });
    }
    let issued: Awaited<ReturnType<TokenSource["issue"]>>;
    try {
      issued = await this.#o.tokens.issue(machine);
    } catch (error) {
      const reason = (error as { reason?: unknown }).reason;
      this.#o.log.error({ machine: name, error: (error as Error).message }, "attest: the token source failed");
      return refuse("token-source", 500, ATTEST_MESSAGES.internal, {
        error: (error as Error).message,
        tokenReason: typeof reason === "string" ? reason : undefined,
      });
    }
    const sealed = sealToken(key, issued.token);
    key.fill(0);
    const tokenHash = tokenId(issued.token);

    // 9: pin on first use, re-checked at the moment of the write.
    const pinned = pin.kind === "unpinned";
    try {
      await backend.updateStatus(name, (current) => {
        const status: MachineStatus = { ...(current.status ?? {}) };
        const check = compareWithPin(status.tpm?.ekPublicKey, ek.publicKey);
        if (check.kind === "mismatch" || check.kind === "unreadable") throw new PinRaceLost();
        if (check.kind === "unpinned") status.tpm = { ...status.tpm, ekPublicKey: ekPinPem(ek.publicKey) };
        status.conditions = setCondition(status.conditions, ekCertCondition(cert, current), now);
        status.conditions = setCondition(
          status.conditions,
          {
            type: ATTESTED_CONDITION,
            status: "True",
            reason: "TokenIssued",
            message: `ek sha256:${ekId.slice(0, 16)} token ${tokenHash}`,
            observedGeneration: current.metadata.generation ?? 0,
          },
          now,
        );
        return status;
      });
    } catch (error) {
      if (error instanceof PinRaceLost)
        return refuse("ek-mismatch", 403, ATTEST_MESSAGES.ekMismatch, { ...ekDetail, race: true });
      const code = (error as { code?: unknown }).code;
      if (code === "QUARANTINED") return refuse("quarantined", 403, ATTEST_MESSAGES.quarantined);
      this.#o.log.error({ err: error, machine: name }, "attest: writing the EK pin failed");
      return refuse("status-write", 500, ATTEST_MESSAGES.internal, { error: (error as Error).message });
    }
    if (pinned) events.emit({ ...base, step: "attest.ek-pin", result: "ok", detail: ekDetail });
    this.#o.log.info(
      { machine: name, tokenID: tokenHash, source: issued.source, ek: ekId.slice(0, 16) },
      "attest: bootstrap token issued",
    );
    events.emit({
      ...base,
      step: "attest.issue",
      result: "ok",
      detail: {
        ...ekDetail,
        tokenId: tokenHash,
        tokenSource: issued.source,
        expiresAt: issued.expiresAt,
        ekCert: cert.status,
        firstUse: pinned,
      },
    });

    const body: AttestResponse = {
      credentialBlob: wrapped.credentialBlob.toString("base64"),
      encryptedSecret: wrapped.encryptedSecret.toString("base64"),
      encryptedToken: sealed.sealed.toString("base64"),
      gcmNonce: sealed.nonce.toString("base64"),
    };
    if (this.#o.clusterCa) body.clusterCA = this.#o.clusterCa;
    return { status: 200, body };
  }

  /** A malformed body from a known Machine is an event on its stream (else a stranger's, rate-limited). */
  #refuseByIp(ip: string | undefined, reason: string, status: 400, message: string): AttestAnswer | undefined {
    const machine = ip === undefined ? undefined : this.#o.backend.byIp(ip);
    if (machine === undefined) return undefined;
    const quiet = this.#quiet.check(`${reason}|${machine.metadata.name}`);
    if (quiet.allowed)
      this.#o.events.emit({
        step: "attest.refuse",
        result: "error",
        ip,
        machine: machine.metadata.name,
        reason,
        detail: quiet.suppressed ? { suppressed: quiet.suppressed } : undefined,
      });
    return { status, message, reason };
  }

  /** Why the last attempt was refused, in status for the console (best effort: the answer does not wait on it failing). */
  async #recordRefusal(
    name: string,
    reason: string,
    message: string,
    cert: EkCertResult | undefined,
    now: Date,
  ): Promise<void> {
    try {
      await this.#o.backend.updateStatus(name, (current) => {
        const status: MachineStatus = { ...(current.status ?? {}) };
        if (cert !== undefined)
          status.conditions = setCondition(status.conditions, ekCertCondition(cert, current), now);
        status.conditions = setCondition(
          status.conditions,
          {
            type: ATTESTED_CONDITION,
            status: "False",
            reason,
            message,
            observedGeneration: current.metadata.generation ?? 0,
          },
          now,
        );
        return status;
      });
    } catch (error) {
      this.#o.log.warn(
        { machine: name, error: (error as Error).message },
        "attest: could not record the refusal in status",
      );
    }
  }
}

function certDetail(cert: EkCertResult): Record<string, string | undefined> {
  switch (cert.status) {
    case "verified":
      return { issuer: cert.issuer, serial: cert.serial, notAfter: cert.notAfter };
    case "unchecked":
      return { issuer: cert.issuer, serial: cert.serial };
    case "invalid":
      return { error: cert.message };
    default:
      return {};
  }
}

function ekCertCondition(cert: EkCertResult, machine: Machine) {
  const observedGeneration = machine.metadata.generation ?? 0;
  switch (cert.status) {
    case "verified":
      return {
        type: EK_CERT_CONDITION,
        status: "True" as const,
        reason: "Verified",
        message: `issuer "${cert.issuer}" serial ${cert.serial}`,
        observedGeneration,
      };
    case "unchecked":
      return {
        type: EK_CERT_CONDITION,
        status: "Unknown" as const,
        reason: "NoTrustBundle",
        message: `presented by issuer "${cert.issuer}", not verified: no --tpm-ca-bundle`,
        observedGeneration,
      };
    case "invalid":
      return {
        type: EK_CERT_CONDITION,
        status: "False" as const,
        reason: pascal(cert.reason),
        message: cert.message,
        observedGeneration,
      };
    default:
      return {
        type: EK_CERT_CONDITION,
        status: "Unknown" as const,
        reason: "NotPresented",
        message: "the agent sent no EK certificate",
        observedGeneration,
      };
  }
}

function pascal(kebab: string): string {
  return kebab.replace(/(^|-)([a-z])/g, (_m, _d, c: string) => c.toUpperCase());
}
