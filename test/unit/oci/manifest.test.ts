import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  layerCompression,
  type Manifest,
  MEDIA_DOCKER_LIST,
  MEDIA_DOCKER_MANIFEST,
  MEDIA_OCI_INDEX,
  MEDIA_OCI_MANIFEST,
  parseManifest,
  selectPlatform,
} from "../../../server/oci/manifest.js";

const d = (n: string) => `sha256:${n.repeat(64)}`;
const json = (doc: unknown) => Buffer.from(JSON.stringify(doc));

function index(mediaType: string, entries: Array<Record<string, unknown>>): Extract<Manifest, { kind: "index" }> {
  const m = parseManifest(json({ schemaVersion: 2, mediaType, manifests: entries }), undefined, "t");
  assert.equal(m.kind, "index");
  return m as Extract<Manifest, { kind: "index" }>;
}

describe("manifests and indexes", () => {
  it("parses OCI and Docker v2 image manifests, ignoring unknown fields", () => {
    for (const mediaType of [MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST]) {
      const m = parseManifest(
        json({
          schemaVersion: 2,
          mediaType,
          config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: d("c"), size: 2 },
          layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: d("1"), size: 10, future: 1 }],
          subject: { whatever: true },
        }),
        undefined,
        "t",
      );
      assert.equal(m.kind, "image");
      assert.equal(m.kind === "image" && m.layers[0]?.size, 10);
    }
  });

  it("takes the media type from Content-Type when the document has none", () => {
    const m = parseManifest(json({ schemaVersion: 2, manifests: [] }), `${MEDIA_DOCKER_LIST}; charset=utf-8`, "t");
    assert.equal(m.mediaType, MEDIA_DOCKER_LIST);
  });

  it("refuses schema 1, unknown media types and bad descriptors with clear errors", () => {
    assert.throws(() => parseManifest(json({ schemaVersion: 1, fsLayers: [] }), undefined, "t"), /schema 1/);
    assert.throws(
      () => parseManifest(json({ schemaVersion: 2, mediaType: "application/vnd.example+json" }), undefined, "t"),
      /unsupported manifest media type "application\/vnd.example\+json"/,
    );
    assert.throws(
      () =>
        parseManifest(
          json({
            schemaVersion: 2,
            mediaType: MEDIA_OCI_INDEX,
            manifests: [{ mediaType: "x", digest: "md5:1", size: 1 }],
          }),
          undefined,
          "t",
        ),
      /is not sha256/,
    );
    assert.throws(() => parseManifest(Buffer.from("not json"), undefined, "t"), /not JSON/);
  });

  it("picks the Machine's architecture from a multi-arch index, never an attestation entry", () => {
    const idx = index(MEDIA_OCI_INDEX, [
      {
        mediaType: MEDIA_OCI_MANIFEST,
        digest: d("0"),
        size: 1,
        platform: { architecture: "unknown", os: "unknown" },
        annotations: { "vnd.docker.reference.type": "attestation-manifest" },
      },
      { mediaType: MEDIA_OCI_MANIFEST, digest: d("a"), size: 1, platform: { architecture: "amd64", os: "linux" } },
      {
        mediaType: MEDIA_OCI_MANIFEST,
        digest: d("7"),
        size: 1,
        platform: { architecture: "arm64", os: "linux", variant: "v7" },
      },
      {
        mediaType: MEDIA_OCI_MANIFEST,
        digest: d("8"),
        size: 1,
        platform: { architecture: "arm64", os: "linux", variant: "v8" },
      },
    ]);
    assert.equal(selectPlatform(idx, "amd64", "t").digest, d("a"));
    assert.equal(selectPlatform(idx, "arm64", "t").digest, d("8"));
    assert.throws(
      () => selectPlatform(idx, "riscv64", "t"),
      /no linux\/riscv64 image in the index \(it has: linux\/amd64, linux\/arm64\/v7, linux\/arm64\/v8\)/,
    );
  });

  it("takes the only entry of a single-platform index without platform", () => {
    const idx = index(MEDIA_OCI_INDEX, [{ mediaType: MEDIA_OCI_MANIFEST, digest: d("b"), size: 1 }]);
    assert.equal(selectPlatform(idx, "arm64", "t").digest, d("b"));
  });

  it("knows tar, gzip and zstd layers (OCI and Docker), refuses foreign and unknown ones", () => {
    const layer = (mediaType: string) => ({ mediaType, digest: d("1"), size: 1 });
    assert.equal(layerCompression(layer("application/vnd.oci.image.layer.v1.tar"), "t"), "none");
    assert.equal(layerCompression(layer("application/vnd.docker.image.rootfs.diff.tar.gzip"), "t"), "gzip");
    assert.equal(layerCompression(layer("application/vnd.oci.image.layer.v1.tar+zstd"), "t"), "zstd");
    assert.throws(
      () => layerCompression(layer("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"), "t"),
      /non-distributable/,
    );
    assert.throws(() => layerCompression(layer("application/octet-stream"), "t"), /unsupported layer media type/);
  });
});
