import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import type { ImageStore } from "../images/image-store.js";
import type { Machine } from "../inventory/types.js";
import type { Artifact, ArtifactResolver } from "./artifact.js";
import {
  type BeneathOpener,
  beneathOpener,
  isTemplateSourceName,
  type OpenBeneathResult,
  openBeneath,
  requestPathSegments,
} from "./safe-path.js";

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
  /** How files are opened beneath the image root (default: openat2 when available, else the walk). */
  opener?: BeneathOpener;
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
  readonly #opener: BeneathOpener;

  constructor(options: NetbootResolverOptions) {
    this.#images = options.images;
    this.#opener = options.opener ?? beneathOpener().open;
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
    const segments = requestPathSegments(requestPath);
    if (segments === undefined) return { kind: "not-found", reason: "invalid-path" };
    // Decided on the cleaned path (`grub/grub.cfg.tmpl/`, `a//b.tmpl`, `./x.TMPL` all count):
    // template sources may hold secrets' shapes and internal URLs, never served raw (spec §12 item 8).
    // The real file's name is checked again after opening (a symlink to a source).
    const clean = segments.join("/");
    if (isTemplateSourceName(segments[segments.length - 1]!)) return { kind: "not-found", reason: "template-source" };

    const image = this.#images.lookupForMachine(machine);
    if (image.state === "not-ready") {
      return { kind: "not-ready", reason: image.reason, retryAfterSeconds: image.retryAfterSeconds };
    }
    if (image.state === "error") return { kind: "error", reason: image.reason };
    // Opened beneath the image root when there is one, so the image's own folder is confined too.
    const root = image.root ?? image.diskDir;
    const prefix = path.relative(root, image.diskDir);
    const beneath = (relative: string, allowTemplateSource = false): Promise<OpenBeneathResult> =>
      openBeneath(root, prefix === "" ? relative : `${prefix}/${relative}`, this.#opener, { allowTemplateSource });

    const name = clean + TEMPLATE_SUFFIX;
    const template = await beneath(name, true);
    if (template.ok) return this.#renderTemplate(machine, name, template.handle);
    if (template.reason === "outside-root") return { kind: "not-found", reason: "outside-root" };

    const file = await beneath(clean);
    if (!file.ok) return { kind: "not-found", reason: file.reason };
    await file.handle.close();
    const absPath = file.absPath;
    return {
      kind: "file",
      absPath,
      size: file.stat.size,
      mtime: file.stat.mtime,
      // A fresh lookup beneath the root for the consumer, which reads from that handle only.
      open: async () => {
        const again = await beneath(clean);
        if (!again.ok) throw Object.assign(new Error(`${clean}: ${again.reason}`), { code: "ENOENT" });
        return again.handle;
      },
    };
  }

  async #renderTemplate(machine: Machine, name: string, handle: FileHandle): Promise<Artifact> {
    let source: string;
    try {
      const stat = await handle.stat();
      if (stat.size > MAX_TEMPLATE_BYTES) {
        return { kind: "error", reason: `template ${name} is larger than ${MAX_TEMPLATE_BYTES} bytes` };
      }
      source = await handle.readFile("utf8");
    } finally {
      await handle.close().catch(() => undefined);
    }
    try {
      const body = Buffer.from(this.#render(source, machine, name), "utf8");
      return { kind: "rendered", body, contentType: TEXT_PLAIN };
    } catch (error) {
      return { kind: "error", reason: `template ${name}: ${(error as Error).message}` };
    }
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
