import { readFile } from "node:fs/promises";
import type { ImageStore } from "../images/image-store.js";
import type { Machine } from "../inventory/types.js";
import type { Artifact, ArtifactResolver } from "./artifact.js";
import { requestPathSegments, resolveUnderRoot } from "./safe-path.js";

export const USER_DATA_PATH = "cloud-init/user-data";
export const DEFAULT_USER_DATA = "#cloud-config\n";
export const TEMPLATE_SUFFIX = ".tmpl";
const TEXT_PLAIN = "text/plain; charset=utf-8";
/** Templates are small text files; anything bigger is a broken image, not something to render per request. */
const MAX_TEMPLATE_BYTES = 4 * 1024 * 1024;

export interface NetbootResolverOptions {
  images: ImageStore;
  /** Renders a `.tmpl` source for the Machine (the lead binds the TemplateContext). Throws (TemplateError) on failure. */
  render: (source: string, machine: Machine, name: string) => string;
  /**
   * User-data for `cloud-init/user-data` (spec §5.6). Resolves undefined when the Machine
   * has none (→ `#cloud-config\n`); rejects when its configured source is broken (→ error).
   * Default: always `#cloud-config\n`.
   */
  userData?: (machine: Machine) => Promise<Buffer | undefined>;
}

/**
 * One resolution for TFTP and HTTP (spec §5.3, §6.4), in this order:
 * `cloud-init/user-data` → invalid path / `.tmpl` source request (not found) → image not
 * ready → `<path>.tmpl` (rendered) → `<path>` regular file → not found.
 */
export class NetbootResolver implements ArtifactResolver {
  readonly #images: ImageStore;
  readonly #render: NetbootResolverOptions["render"];
  readonly #userData: NonNullable<NetbootResolverOptions["userData"]>;

  constructor(options: NetbootResolverOptions) {
    this.#images = options.images;
    this.#render = options.render;
    this.#userData = options.userData ?? (async () => undefined);
  }

  async resolve(machine: Machine, path: string): Promise<Artifact> {
    try {
      return await this.#resolve(machine, path);
    } catch (error) {
      return { kind: "error", reason: `resolving ${path}: ${(error as Error).message}` };
    }
  }

  async #resolve(machine: Machine, requestPath: string): Promise<Artifact> {
    if (machine.spec.pxe === undefined) return { kind: "not-found", reason: "machine has no spec.pxe" };
    if (requestPath === USER_DATA_PATH) return this.#resolveUserData(machine);
    if (requestPathSegments(requestPath) === undefined) return { kind: "not-found", reason: "invalid-path" };
    // Template sources may hold secrets' shapes and internal URLs: never served raw (spec §12 item 8).
    if (requestPath.endsWith(TEMPLATE_SUFFIX)) return { kind: "not-found", reason: "template-source" };

    const image = this.#images.lookupForMachine(machine);
    if (image.state === "not-ready") {
      return { kind: "not-ready", reason: image.reason, retryAfterSeconds: image.retryAfterSeconds };
    }
    if (image.state === "error") return { kind: "error", reason: image.reason };

    const template = await resolveUnderRoot(image.diskDir, requestPath + TEMPLATE_SUFFIX);
    if (template.ok) {
      if (template.stat.size > MAX_TEMPLATE_BYTES) {
        return {
          kind: "error",
          reason: `template ${requestPath}${TEMPLATE_SUFFIX} is larger than ${MAX_TEMPLATE_BYTES} bytes`,
        };
      }
      const source = await readFile(template.absPath, "utf8");
      const name = requestPath + TEMPLATE_SUFFIX;
      try {
        const body = Buffer.from(this.#render(source, machine, name), "utf8");
        return { kind: "rendered", body, contentType: TEXT_PLAIN };
      } catch (error) {
        return { kind: "error", reason: `template ${name}: ${(error as Error).message}` };
      }
    }
    if (template.reason === "outside-root") return { kind: "not-found", reason: "outside-root" };

    const file = await resolveUnderRoot(image.diskDir, requestPath);
    if (!file.ok) return { kind: "not-found", reason: file.reason };
    return { kind: "file", absPath: file.absPath, size: file.stat.size, mtime: file.stat.mtime };
  }

  async #resolveUserData(machine: Machine): Promise<Artifact> {
    try {
      const data = await this.#userData(machine);
      return { kind: "rendered", body: data ?? Buffer.from(DEFAULT_USER_DATA), contentType: TEXT_PLAIN };
    } catch (error) {
      return { kind: "error", reason: `user-data: ${(error as Error).message}` };
    }
  }
}
