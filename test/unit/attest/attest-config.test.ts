/** The attestation flags of serve-pxe and what attestSetup makes of them. */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { attestSetup } from "../../../server/attest/attest-setup.js";
import { KubeadmSecretTokenSource } from "../../../server/attest/token-source.js";
import { ConfigError, parseServePxeArgs, servePxeUsage } from "../../../server/config/serve-pxe-config.js";
import { MemorySecrets } from "./support.js";

describe("serve-pxe attestation flags", () => {
  it("defaults: EK certificates checked when sent, not required, 1 h window, no bundle, no token Secret", () => {
    const config = parseServePxeArgs([], {}, { cwd: "/srv" });
    assert.equal(config.verifyEkCert, true);
    assert.equal(config.requireEkCert, false);
    assert.equal(config.attestWindowMs, 3_600_000);
    assert.equal(config.tpmCaBundle, undefined);
    assert.equal(config.bootstrapTokenSecret, "");
    for (const flag of [
      "--tpm-ca-bundle",
      "--verify-ek-cert",
      "--require-ek-cert",
      "--attest-window",
      "--bootstrap-token-secret",
      "--cluster-ca",
    ]) {
      assert.ok(servePxeUsage().includes(flag), flag);
    }
  });

  it("parses flags and config file keys, paths relative to where they were written", () => {
    const config = parseServePxeArgs(
      [
        "--tpm-ca-bundle",
        "cas.pem",
        "--require-ek-cert",
        "--attest-window=0s",
        "--bootstrap-token-secret=bootstrap-token-abc123",
        "--config=/etc/mm/m.yaml",
      ],
      {},
      { cwd: "/srv", readFile: () => "clusterCa: ca.pem\nverifyEkCert: false\n" },
    );
    assert.equal(config.tpmCaBundle, "/srv/cas.pem");
    assert.equal(config.clusterCaFile, "/etc/mm/ca.pem");
    assert.equal(config.requireEkCert, true);
    assert.equal(config.verifyEkCert, false);
    assert.equal(config.attestWindowMs, 0);
    assert.equal(config.bootstrapTokenSecret, "bootstrap-token-abc123");
  });

  it("refuses bad values naming the flag", () => {
    assert.throws(
      () => parseServePxeArgs(["--attest-window=forever"], {}),
      (e: unknown) => e instanceof ConfigError && /--attest-window/.test(e.message),
    );
    assert.throws(
      () => parseServePxeArgs(["--bootstrap-token-secret=mytoken"], {}),
      /--bootstrap-token-secret: must be/,
    );
  });
});

describe("attestSetup", () => {
  it("reads the CA bundle and cluster CA once, and stops the start on a bad bundle", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "m9a-setup-"));
    try {
      await writeFile(path.join(dir, "bad.pem"), "not a certificate\n");
      const bad = parseServePxeArgs([`--tpm-ca-bundle=${path.join(dir, "bad.pem")}`], {});
      await assert.rejects(attestSetup(bad, {}), /--tpm-ca-bundle: .*no PEM CERTIFICATE/);
      const missing = parseServePxeArgs([`--cluster-ca=${path.join(dir, "nope.pem")}`], {});
      await assert.rejects(attestSetup(missing, {}), /--cluster-ca: cannot read .*ENOENT/);
      await writeFile(path.join(dir, "ca.pem"), "PEM TEXT\n");
      const ok = await attestSetup(parseServePxeArgs([`--cluster-ca=${path.join(dir, "ca.pem")}`], {}), {
        secrets: new MemorySecrets(),
      });
      assert.equal(ok.clusterCa, "PEM TEXT\n");
      assert.ok(ok.tokens instanceof KubeadmSecretTokenSource);
      assert.equal(
        (await attestSetup(parseServePxeArgs([], {}), {})).tokens,
        undefined,
        "no Secrets, no token source: /attest answers 503",
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
