import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseByteSize, parseServePxeArgs } from "../../../server/config/serve-pxe-config.js";
import { isLoopbackHost, parseRegistriesConfig } from "../../../server/oci/registry-config.js";

describe("registry settings", () => {
  it("parses mirrors (with a repository prefix), mirrorsOnly, insecure and a CA path relative to the file", () => {
    const hosts = parseRegistriesConfig(
      'registries:\n  ghcr.io:\n    mirrors: ["registry.lab:5000/ghcr", "http://m2.lab"]\n    mirrorsOnly: true\n  registry.lab:5000:\n    insecure: true\n    caBundle: ca.pem\n',
      "f.yaml",
      (p) => `/etc/metalman/${p}`,
    );
    assert.deepEqual(hosts.get("ghcr.io"), {
      insecure: false,
      tls: false,
      mirrors: [
        { host: "registry.lab:5000", prefix: "ghcr" },
        { host: "m2.lab", prefix: "" },
      ],
      mirrorsOnly: true,
    });
    assert.equal(hosts.get("registry.lab:5000")?.caBundle, "/etc/metalman/ca.pem");
    assert.equal(hosts.get("registry.lab:5000")?.insecure, true);
  });

  it("refuses unknown keys, mirrorsOnly without mirrors, and bad mirrors, naming the field", () => {
    assert.throws(
      () => parseRegistriesConfig("registries:\n  a.io: {mirror: x}\n", "f", (p) => p),
      /registries\.a\.io\.mirror: unknown key/,
    );
    assert.throws(
      () => parseRegistriesConfig("registries:\n  a.io: {mirrorsOnly: true}\n", "f", (p) => p),
      /needs at least one mirror/,
    );
    assert.throws(
      () => parseRegistriesConfig('registries:\n  a.io: {mirrors: ["bad host"]}\n', "f", (p) => p),
      /host\[:port\]\[\/prefix\]/,
    );
    assert.throws(() => parseRegistriesConfig("other: 1\n", "f", (p) => p), /other: unknown key/);
  });

  it("knows loopback hosts", () => {
    for (const h of ["localhost:5000", "127.0.0.1", "127.9.8.7:1", "[::1]:5000"]) assert.ok(isLoopbackHost(h), h);
    for (const h of ["10.0.0.1", "registry.example", "127.0.0.1.nip.io"]) assert.ok(!isLoopbackHost(h), h);
  });
});

describe("serve-pxe image flags", () => {
  it("reads the registry and cache flags", () => {
    const c = parseServePxeArgs(
      [
        "--registry-config=/etc/r.yaml",
        "--registry-auth-file=/etc/auth.json",
        "--registry-ca-bundle=/etc/ca.pem",
        "--insecure-registry=lab:5000,other.lab",
        "--image-cache-budget=20GiB",
        "--image-refresh-interval=1m",
        "--image-pull-concurrency=3",
      ],
      {},
    );
    assert.equal(c.registryConfigFile, "/etc/r.yaml");
    assert.equal(c.registryAuthFile, "/etc/auth.json");
    assert.equal(c.registryCaBundle, "/etc/ca.pem");
    assert.deepEqual(c.insecureRegistries, ["lab:5000", "other.lab"]);
    assert.equal(c.imageCacheBudgetBytes, 20 * 1024 ** 3);
    assert.equal(c.imageRefreshIntervalMs, 60_000);
    assert.equal(c.imagePullConcurrency, 3);
    assert.throws(() => parseServePxeArgs(["--image-cache-budget=lots"], {}), /--image-cache-budget: must be a size/);
    assert.throws(() => parseServePxeArgs(["--insecure-registry=http://x"], {}), /registry host\[:port\]/);
  });

  it("parses sizes", () => {
    assert.equal(parseByteSize("0"), 0);
    assert.equal(parseByteSize("500MB"), 500e6);
    assert.equal(parseByteSize("1.5GiB"), 1.5 * 1024 ** 3);
    assert.equal(parseByteSize("2k"), 2000);
    assert.equal(parseByteSize("x"), undefined);
  });
});
