import { mkdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { OciError } from "../oci/errors.js";
import {
  type Descriptor,
  type LayerCompression,
  layerCompression,
  type Manifest,
  selectPlatform,
} from "../oci/manifest.js";
import type { ImageReference } from "../oci/reference.js";
import type { CredentialLookup, FetchedManifest, RegistryClient } from "../oci/registry-client.js";
import { LayerUnpacker, type UnpackLimits } from "./layer-unpack.js";
import { type OciCache, treeBytes } from "./oci-cache.js";

export interface PullProgress {
  /** Layer bytes on disk so far (verified or being downloaded). */
  bytes: number;
  /** Sum of the layer sizes (known once the manifest is read). */
  totalBytes: number;
  phase: "resolving" | "downloading" | "unpacking";
}

export interface PullResult {
  /** What the reference resolved to (an index's digest for multi-arch). */
  digest: string;
  manifestDigest: string;
  /** Whether the image folder was already in the cache (nothing downloaded). */
  cached: boolean;
  downloadBytes: number;
  bytes: number;
}

/** Resolve only: the digest a reference names now, and the platform manifest behind it. */
export interface Resolved {
  top: FetchedManifest;
  image: FetchedManifest & { manifest: Extract<Manifest, { kind: "image" }> };
}

export async function resolveImage(
  client: RegistryClient,
  ref: ImageReference,
  architecture: string,
  credentials: CredentialLookup,
  signal?: AbortSignal,
): Promise<Resolved> {
  const top = await client.resolve(ref, credentials, signal);
  let current = top;
  // An index may name another index (nested platforms); two levels at most.
  for (let depth = 0; current.manifest.kind === "index"; depth++) {
    if (depth >= 2) throw new OciError(`${ref.registry}/${ref.repository}: indexes nested too deep`, "UNSUPPORTED");
    const chosen: Descriptor = selectPlatform(current.manifest, architecture, `${ref.registry}/${ref.repository}`);
    current = await client.fetchManifest({ endpoint: top.endpoint, credentials }, chosen.digest, signal);
  }
  return { top, image: current as Resolved["image"] };
}

/**
 * Pull one image into the cache: resolve, pick the platform, download every layer (at once, up
 * to the client's blob limit; each verified against its digest), apply them in order into a
 * staging folder while later layers still download, check that `/disk` exists, and move the
 * tree into place. Nothing is served from a pull until it is complete. Layer blobs are deleted
 * once unpacked (the unpacked tree is what is served; a re-pull downloads them again).
 */
export async function pullImage(options: {
  client: RegistryClient;
  cache: OciCache;
  ref: ImageReference;
  refText: string;
  architecture: string;
  credentials: CredentialLookup;
  limits: UnpackLimits;
  onProgress: (progress: PullProgress) => void;
  signal?: AbortSignal;
  resolved?: Resolved;
}): Promise<PullResult> {
  const { client, cache, ref, architecture, credentials, signal } = options;
  options.onProgress({ bytes: 0, totalBytes: 0, phase: "resolving" });
  const resolved = options.resolved ?? (await resolveImage(client, ref, architecture, credentials, signal));
  const { top, image } = resolved;
  const what = `${ref.registry}/${ref.repository}@${image.digest}`;
  const layers = image.manifest.layers;
  // Unsupported layers fail before a byte is downloaded.
  const compressions: LayerCompression[] = layers.map((layer, i) => layerCompression(layer, `${what} layers[${i}]`));
  const totalBytes = layers.reduce((sum, layer) => sum + layer.size, 0);
  if (await cache.hasImage(image.digest)) {
    const info = cache.image(image.digest);
    return {
      digest: top.digest,
      manifestDigest: image.digest,
      cached: true,
      downloadBytes: 0,
      bytes: info?.bytes ?? 0,
    };
  }
  let bytes = 0;
  const report = (phase: PullProgress["phase"]) => options.onProgress({ bytes, totalBytes, phase });
  report("downloading");
  const session = { endpoint: image.endpoint, credentials };
  const aborter = new AbortController();
  const onAbort = () => aborter.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  // One download per distinct layer blob, shared with other pulls that need it at the same time.
  const downloads = new Map<string, Promise<string>>();
  const download = (layer: Descriptor): Promise<string> => {
    let pending = downloads.get(layer.digest);
    if (!pending) {
      pending = cache.download(layer.digest, async () => {
        const dest = cache.blobFile(layer.digest);
        const present = await stat(dest).catch(() => undefined);
        if (present?.size === layer.size) return dest;
        await client.fetchBlob(
          session,
          layer,
          dest,
          cache.partialFile(layer.digest),
          (delta) => {
            bytes += delta;
            report("downloading");
          },
          aborter.signal,
        );
        return dest;
      });
      // Failures are read where each layer is awaited; never unhandled meanwhile.
      pending.catch(() => undefined);
      downloads.set(layer.digest, pending);
    }
    return pending;
  };
  const layerDigests = layers.map((l) => l.digest);
  cache.acquireBlobs(layerDigests);
  for (const layer of layers) download(layer);
  const staging = cache.stagingDir(image.digest);
  let committed = false;
  try {
    const unpacker = new LayerUnpacker(staging, options.limits);
    await mkdir(staging, { recursive: true });
    for (const [i, layer] of layers.entries()) {
      const file = await download(layer);
      await unpacker.apply(file, compressions[i]!, `${what} layers[${i}]`);
    }
    report("unpacking");
    const disk = await stat(path.join(staging, "disk")).catch(() => undefined);
    if (!disk?.isDirectory()) {
      throw new OciError(`${what}: OCI image missing /disk directory (a netboot image serves /disk)`, "BAD_MANIFEST");
    }
    const unpackedBytes = await treeBytes(path.join(staging, "disk"));
    await cache.commitImage(staging, {
      manifestDigest: image.digest,
      bytes: unpackedBytes,
      downloadBytes: totalBytes,
      pulledAt: new Date().toISOString(),
      sourceRef: options.refText,
    });
    committed = true;
    return {
      digest: top.digest,
      manifestDigest: image.digest,
      cached: false,
      downloadBytes: totalBytes,
      bytes: unpackedBytes,
    };
  } catch (err) {
    aborter.abort();
    await Promise.allSettled(downloads.values());
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await cache.releaseBlobs(layerDigests, committed);
  }
}
