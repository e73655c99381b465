import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatReference, parseReference } from "../../../server/oci/reference.js";

describe("OCI image references", () => {
  it("applies Docker's defaults: docker.io, library/, latest", () => {
    assert.deepEqual(parseReference("debian"), { registry: "docker.io", repository: "library/debian", tag: "latest" });
    assert.deepEqual(parseReference("debian:12"), { registry: "docker.io", repository: "library/debian", tag: "12" });
    assert.deepEqual(parseReference("azure/x"), { registry: "docker.io", repository: "azure/x", tag: "latest" });
    assert.equal(formatReference(parseReference("index.docker.io/library/debian:12")), "docker.io/library/debian:12");
  });

  it("takes the first part as a host when it has a dot, a port or is localhost", () => {
    assert.deepEqual(parseReference("ghcr.io/azure/images/host-ubuntu2404:v1"), {
      registry: "ghcr.io",
      repository: "azure/images/host-ubuntu2404",
      tag: "v1",
    });
    assert.deepEqual(parseReference("127.0.0.1:5000/netboot/x"), {
      registry: "127.0.0.1:5000",
      repository: "netboot/x",
      tag: "latest",
    });
    assert.equal(parseReference("localhost/x:1").registry, "localhost");
    assert.equal(parseReference("[::1]:5000/x:1").registry, "[::1]:5000");
  });

  it("keeps a digest (and the tag beside it)", () => {
    const digest = `sha256:${"a".repeat(64)}`;
    assert.deepEqual(parseReference(`reg.example:5000/n/x@${digest}`), {
      registry: "reg.example:5000",
      repository: "n/x",
      digest,
    });
    assert.deepEqual(parseReference(`reg.example/x:v1@${digest}`), {
      registry: "reg.example",
      repository: "x",
      tag: "v1",
      digest,
    });
  });

  it("refuses malformed references with a message naming the problem", () => {
    for (const [bad, why] of [
      ["", /1-4096/],
      ["Reg.example/UPPER:1", /lower-case/],
      ["reg.example/x:bad tag", /spaces/],
      ["reg.example/x@sha256:abc", /64 lower-case hex/],
      [`reg.example/x@sha512:${"a".repeat(128)}`, /only sha256/],
      ["reg.example/x:-v1", /tag/],
      ["reg.example//x", /repository/],
    ] as const) {
      assert.throws(() => parseReference(bad), why, bad);
    }
  });
});
