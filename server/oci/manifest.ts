import { OciError } from "./errors.js";
import { isDigest } from "./reference.js";

/** Media types of manifests and indexes we accept (OCI and Docker v2 schema 2). */
export const MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const SCHEMA1 =
  /^application\/vnd\.docker\.distribution\.manifest\.v1\+(prettyj|j)ws$|^application\/vnd\.docker\.distribution\.manifest\.v1\+json$/;

/** Sent as Accept: a registry then never converts to (or guesses) another format. */
export const MANIFEST_ACCEPT = [MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST].join(
  ", ",
);

/** Layer compression as read by the unpacker. */
export type LayerCompression = "none" | "gzip" | "zstd";

const LAYER_MEDIA: Record<string, LayerCompression> = {
  "application/vnd.oci.image.layer.v1.tar": "none",
  "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
  "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
  "application/vnd.docker.image.rootfs.diff.tar": "none",
  "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
  "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
};

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

export type Manifest =
  | { kind: "index"; mediaType: string; manifests: Descriptor[] }
  | { kind: "image"; mediaType: string; config: Descriptor; layers: Descriptor[] };

/** A manifest or index is JSON of at most this size (the distribution spec suggests 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * Parse a manifest or index. The media type comes from the document (`mediaType`), else from
 * the Content-Type the registry sent; unknown fields are ignored, unknown media types are an
 * error that names them.
 */
export function parseManifest(body: Buffer, contentType: string | undefined, what: string): Manifest {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
  } catch {
    throw new OciError(`${what}: manifest is not JSON`, "BAD_MANIFEST");
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new OciError(`${what}: manifest is not a JSON object`, "BAD_MANIFEST");
  }
  const headerType = contentType?.split(";", 1)[0]?.trim().toLowerCase();
  const mediaType = typeof doc.mediaType === "string" ? doc.mediaType : (headerType ?? "");
  if (SCHEMA1.test(mediaType) || doc.schemaVersion === 1) {
    throw new OciError(
      `${what}: Docker schema 1 manifests are not supported (push the image again with a current tool)`,
      "UNSUPPORTED",
    );
  }
  if (doc.schemaVersion !== 2) throw new OciError(`${what}: schemaVersion must be 2`, "BAD_MANIFEST");
  const isIndex =
    mediaType === MEDIA_OCI_INDEX ||
    mediaType === MEDIA_DOCKER_LIST ||
    (mediaType === "" && Array.isArray(doc.manifests));
  const isImage =
    mediaType === MEDIA_OCI_MANIFEST ||
    mediaType === MEDIA_DOCKER_MANIFEST ||
    (mediaType === "" && Array.isArray(doc.layers));
  if (isIndex) {
    if (!Array.isArray(doc.manifests)) throw new OciError(`${what}: index has no manifests list`, "BAD_MANIFEST");
    return {
      kind: "index",
      mediaType: mediaType || MEDIA_OCI_INDEX,
      manifests: doc.manifests.map((d, i) => parseDescriptor(d, `${what}: manifests[${i}]`)),
    };
  }
  if (isImage) {
    if (!Array.isArray(doc.layers)) throw new OciError(`${what}: manifest has no layers list`, "BAD_MANIFEST");
    return {
      kind: "image",
      mediaType: mediaType || MEDIA_OCI_MANIFEST,
      config: parseDescriptor(doc.config, `${what}: config`),
      layers: doc.layers.map((d, i) => parseDescriptor(d, `${what}: layers[${i}]`)),
    };
  }
  throw new OciError(
    `${what}: unsupported manifest media type ${JSON.stringify(mediaType)} (expected an OCI or Docker v2 image manifest or index)`,
    "UNSUPPORTED",
  );
}

function parseDescriptor(value: unknown, what: string): Descriptor {
  if (typeof value !== "object" || value === null) throw new OciError(`${what}: not a descriptor`, "BAD_MANIFEST");
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== "string") throw new OciError(`${what}: mediaType missing`, "BAD_MANIFEST");
  if (typeof d.digest !== "string" || !isDigest(d.digest)) {
    throw new OciError(`${what}: digest ${JSON.stringify(d.digest)} is not sha256:<hex>`, "UNSUPPORTED");
  }
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw new OciError(`${what}: size must be a non-negative integer`, "BAD_MANIFEST");
  }
  const descriptor: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  const p = d.platform as Record<string, unknown> | undefined;
  if (p && typeof p === "object" && typeof p.architecture === "string" && typeof p.os === "string") {
    descriptor.platform = {
      architecture: p.architecture,
      os: p.os,
      ...(typeof p.variant === "string" ? { variant: p.variant } : {}),
    };
  }
  if (d.annotations && typeof d.annotations === "object")
    descriptor.annotations = d.annotations as Record<string, string>;
  return descriptor;
}

/**
 * The image of `architecture` (`amd64`, `arm64`) for linux in an index. Attestation entries
 * (`unknown/unknown`) are never picked. An index whose only entry has no platform is a
 * single-platform image. No match is an error listing what the index holds.
 */
export function selectPlatform(
  index: Extract<Manifest, { kind: "index" }>,
  architecture: string,
  what: string,
): Descriptor {
  const images = index.manifests.filter(
    (d) =>
      d.annotations?.["vnd.docker.reference.type"] !== "attestation-manifest" &&
      (d.mediaType === MEDIA_OCI_MANIFEST ||
        d.mediaType === MEDIA_DOCKER_MANIFEST ||
        d.mediaType === MEDIA_OCI_INDEX ||
        d.mediaType === MEDIA_DOCKER_LIST),
  );
  const matching = images.filter(
    (d) =>
      d.platform !== undefined &&
      d.platform.architecture === architecture &&
      (d.platform.os === "linux" || d.platform.os === ""),
  );
  // arm64: prefer v8 (or no variant) over others, as containerd does.
  matching.sort((a, b) => variantRank(a.platform?.variant) - variantRank(b.platform?.variant));
  const chosen = matching[0];
  if (chosen) return chosen;
  if (images.length === 1 && images[0]!.platform === undefined) return images[0]!;
  const offered = images.map((d) =>
    d.platform
      ? `${d.platform.os}/${d.platform.architecture}${d.platform.variant ? `/${d.platform.variant}` : ""}`
      : "no platform",
  );
  throw new OciError(
    `${what}: no linux/${architecture} image in the index (it has: ${offered.join(", ") || "nothing"})`,
    "NO_PLATFORM",
  );
}

function variantRank(variant: string | undefined): number {
  return variant === undefined || variant === "" || variant === "v8" ? 0 : 1;
}

/** How a layer is compressed, or an error naming an unsupported (or non-distributable) layer. */
export function layerCompression(layer: Descriptor, what: string): LayerCompression {
  const known = LAYER_MEDIA[layer.mediaType];
  if (known !== undefined) return known;
  if (/foreign|nondistributable/.test(layer.mediaType)) {
    throw new OciError(`${what}: non-distributable (foreign) layer ${layer.digest} is not supported`, "UNSUPPORTED");
  }
  throw new OciError(
    `${what}: unsupported layer media type ${JSON.stringify(layer.mediaType)} (tar, tar+gzip or tar+zstd expected)`,
    "UNSUPPORTED",
  );
}
