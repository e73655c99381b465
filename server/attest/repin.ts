import { createPublicKey, type KeyObject } from "node:crypto";
import type { BootEventBus } from "../events/boot-events.js";
import { type MachineBackend, UNCHANGED } from "../inventory/backend.js";
import { removeCondition, setCondition } from "../inventory/conditions.js";
import type { MachineStatus } from "../inventory/types.js";
import { ekFingerprint, ekPinPem, pinFingerprint } from "./ek-pin.js";

/**
 * The operator's action after a board swap (or a TPM clear): `metalman tpm repin NAME`.
 * Without `ek`, the pin in status.tpm.ekPublicKey is cleared and the next attestation that
 * passes every other check pins the TPM it presents (trust on first use again, so do it just
 * before the Machine boots). With `ek` (the new TPM's EK, read on the board with
 * `tpm2_createek ... -f pem`), that key is pinned at once and no TOFU window opens.
 * Recorded as an `attest.repin` event naming the old and new fingerprints, and in the
 * `Attested` condition. A quarantined Machine is refused (lift the quarantine first).
 */
export async function repinTpm(
  backend: MachineBackend,
  events: BootEventBus,
  name: string,
  options: { ek?: KeyObject; now?: Date; by?: string } = {},
): Promise<{ previous?: string; pinned?: string }> {
  let previous: string | undefined;
  const pinned = options.ek ? ekFingerprint(options.ek) : undefined;
  const written = await backend.updateStatus(name, (current) => {
    const old = current.status?.tpm?.ekPublicKey;
    previous = pinFingerprint(old);
    if (!old && !options.ek) return UNCHANGED;
    const status: MachineStatus = { ...(current.status ?? {}) };
    if (options.ek) status.tpm = { ...status.tpm, ekPublicKey: ekPinPem(options.ek) };
    else {
      const { ekPublicKey: _dropped, ...rest } = status.tpm ?? {};
      if (Object.keys(rest).length > 0) status.tpm = rest;
      else delete status.tpm;
    }
    status.conditions = setCondition(
      removeCondition(status.conditions, "EKCertificate"),
      {
        type: "Attested",
        status: "False",
        reason: "Repinned",
        message: options.ek
          ? `EK pinned by an operator: sha256:${pinned?.slice(0, 16)}`
          : "EK pin cleared by an operator: the next attestation pins the TPM it sees",
        observedGeneration: current.metadata.generation ?? 0,
      },
      options.now,
    );
    return status;
  });
  events.emit({
    step: "attest.repin",
    result: written.outcome === "updated" ? "ok" : "ignored",
    machine: name,
    reason: written.outcome === "updated" ? undefined : "nothing-pinned",
    detail: { previous: previous?.slice(0, 16), pinned: pinned?.slice(0, 16), by: options.by },
  });
  return { previous, pinned };
}

/** An EK given by the operator: a PEM public key (`tpm2_readpublic -f pem`, `openssl pkey -pubout`). */
export function parseOperatorEk(pem: string): KeyObject {
  const key = createPublicKey({ key: pem, format: "pem" });
  if (key.asymmetricKeyType !== "rsa" && key.asymmetricKeyType !== "ec") {
    throw new Error(`an EK is an RSA or EC key, not ${key.asymmetricKeyType}`);
  }
  return key;
}
