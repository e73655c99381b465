import { OciError } from "./errors.js";

/**
 * An image reference `host[:port]/repo[:tag][@sha256:hex]` with Docker's defaults: no host →
 * `docker.io`, a one-part Docker Hub name → `library/NAME`, no tag and no digest → `latest`.
 * The first part is a host when it has a `.` or a `:` or is `localhost` (Docker's rule).
 */
export interface ImageReference {
  /** As written in the reference (`docker.io` for Docker Hub), lower-case. */
  registry: string;
  repository: string;
  tag?: string;
  /** `sha256:<64 hex>`. With a tag too, the digest wins and the tag is only informative. */
  digest?: string;
}

export const DOCKER_HUB = "docker.io";
/** Where Docker Hub's registry API really is. */
export const DOCKER_HUB_API_HOST = "registry-1.docker.io";

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const MAX_REFERENCE = 4096;

export function parseReference(text: string): ImageReference {
  const bad = (why: string) => new OciError(`image reference ${JSON.stringify(text)}: ${why}`, "BAD_REFERENCE");
  if (text.length === 0 || text.length > MAX_REFERENCE) throw bad("must be 1-4096 characters");
  if (/[\s\0]/.test(text)) throw bad("must not contain spaces or control characters");
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) {
      throw bad(
        digest.startsWith("sha256:")
          ? "digest must be sha256: and 64 lower-case hex digits"
          : `unsupported digest algorithm in ${JSON.stringify(digest)} (only sha256)`,
      );
    }
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`tag ${JSON.stringify(tag)} is not valid (letters, digits, _ . -, at most 128)`);
  }
  const parts = rest.split("/");
  let registry = DOCKER_HUB;
  const first = parts[0] ?? "";
  if (parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost")) {
    if (!HOST.test(first)) throw bad(`registry host ${JSON.stringify(first)} is not valid`);
    registry = first.toLowerCase();
    parts.shift();
  }
  if (registry === "index.docker.io" || registry === DOCKER_HUB_API_HOST) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift("library");
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) {
    throw bad("repository must be lower-case path components (a-z 0-9 separated by . _ __ or -)");
  }
  const repository = parts.join("/");
  if (repository.length > 255) throw bad("repository name is longer than 255 characters");
  if (tag === undefined && digest === undefined) tag = "latest";
  return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** The canonical text of a reference (`docker.io/library/debian:12`), used as the cache key. */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ""}${ref.digest !== undefined ? `@${ref.digest}` : ""}`;
}

/** What to ask the registry's manifest endpoint for: the digest when there is one, else the tag. */
export function manifestSelector(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? "latest";
}

export function isDigest(text: string): boolean {
  return DIGEST.test(text);
}
