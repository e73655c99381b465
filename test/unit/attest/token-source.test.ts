/** The standalone token source: a kubeadm bootstrap-token Secret, read through SecretReader. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { KubeadmSecretTokenSource, TokenSourceError } from "../../../server/attest/token-source.js";
import type { Machine } from "../../../server/inventory/types.js";
import { makeMachine } from "../http/support.js";
import { MemorySecrets } from "./support.js";

const machine = (ref?: string): Machine => {
  const m = makeMachine("node-a", "10.0.0.11", "dir:/x");
  if (ref) m.spec.kubernetes = { bootstrapTokenRef: { name: ref } };
  return m;
};
const now = () => new Date("2026-12-01T12:00:00Z");

async function reason(source: KubeadmSecretTokenSource, m: Machine): Promise<string> {
  try {
    await source.issue(m);
  } catch (error) {
    assert.ok(error instanceof TokenSourceError, String(error));
    assert.ok(!error.message.includes("0123456789abcdef"), "the secret never appears in an error");
    return error.reason;
  }
  throw new Error("expected a refusal");
}

describe("KubeadmSecretTokenSource", () => {
  const secrets = new MemorySecrets();
  secrets.set("kube-system", "bootstrap-token-abcdef", {
    "token-id": "abcdef",
    "token-secret": "0123456789abcdef",
    expiration: "2026-12-02T00:00:00Z",
    "usage-bootstrap-authentication": "true",
  });
  secrets.set("kube-system", "bootstrap-token-zzzzzz", {
    "token-id": "zzzzzz",
    "token-secret": "0123456789abcdef",
    expiration: "2026-11-30T00:00:00Z",
  });
  secrets.set("kube-system", "bootstrap-token-yyyyyy", { "token-id": "xxxxxx", "token-secret": "0123456789abcdef" });
  secrets.set("kube-system", "bootstrap-token-wwwwww", { "token-id": "wwwwww", "token-secret": "SHORT" });
  secrets.set("kube-system", "bootstrap-token-vvvvvv", {
    "token-id": "vvvvvv",
    "token-secret": "0123456789abcdef",
    "usage-bootstrap-authentication": "false",
  });
  secrets.set("default", "bootstrap-token-uuuuuu", { "token-id": "uuuuuu", "token-secret": "0123456789abcdef" });

  it("returns <token-id>.<token-secret> of the Machine's bootstrapTokenRef, with its expiry", async () => {
    const source = new KubeadmSecretTokenSource({ secrets, now });
    assert.deepEqual(await source.issue(machine("bootstrap-token-abcdef")), {
      token: "abcdef.0123456789abcdef",
      source: "secret kube-system/bootstrap-token-abcdef",
      expiresAt: "2026-12-02T00:00:00.000Z",
    });
  });

  it("falls back to the configured Secret, and says so when there is none", async () => {
    assert.equal(
      (
        await new KubeadmSecretTokenSource({ secrets, now, defaultSecretName: "bootstrap-token-abcdef" }).issue(
          machine(),
        )
      ).token,
      "abcdef.0123456789abcdef",
    );
    assert.equal(await reason(new KubeadmSecretTokenSource({ secrets, now }), machine()), "no-token-configured");
  });

  it("refuses expired, mismatched, malformed, non-authentication and missing tokens, and other namespaces", async () => {
    const source = new KubeadmSecretTokenSource({ secrets, now });
    assert.equal(await reason(source, machine("bootstrap-token-zzzzzz")), "token-expired");
    assert.equal(await reason(source, machine("bootstrap-token-yyyyyy")), "token-malformed");
    assert.equal(await reason(source, machine("bootstrap-token-wwwwww")), "token-malformed");
    assert.equal(await reason(source, machine("bootstrap-token-vvvvvv")), "token-not-for-authentication");
    assert.equal(await reason(source, machine("bootstrap-token-uuuuuu")), "token-missing");
    assert.equal(await reason(source, machine("my-token")), "token-malformed");
  });
});
