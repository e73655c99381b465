import { closeSync, constants, fstatSync, openSync, readlinkSync, type Stats } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import path from "node:path";
import { loadAddon } from "../native/addon-loader.js";

export type SafePathReason = "invalid-path" | "outside-root" | "not-found" | "not-a-file" | "template-source";

export type SafePathResult = { ok: true; absPath: string; stat: Stats } | { ok: false; reason: SafePathReason };

export type OpenBeneathResult =
  | { ok: true; handle: FileHandle; absPath: string; stat: Stats }
  | { ok: false; reason: SafePathReason };

/** `.tmpl` sources, in any letter case (an image on a case-insensitive file system would serve `X.TMPL` as `x.tmpl`). */
export function isTemplateSourceName(name: string): boolean {
  return /\.tmpl$/i.test(name);
}

/**
 * Checks the text of a request path (no leading `/`) and returns its clean segments, or
 * undefined when it must be refused: empty or `.`, absolute, `..` segments, NUL,
 * backslashes (a Windows separator some clients send to confuse prefix checks), control
 * characters. Empty and `.` segments (`a//b`, `./a`, a trailing `/`) are dropped, so
 * `grub/grub.cfg.tmpl/` and `grub//./grub.cfg.tmpl` clean to `grub/grub.cfg.tmpl`.
 */
export function requestPathSegments(requestPath: string): string[] | undefined {
  if (requestPath === "" || requestPath.startsWith("/")) return undefined;
  if (/[\u0000-\u001f\u007f\\]/.test(requestPath)) return undefined;
  const segments: string[] = [];
  for (const segment of requestPath.split("/")) {
    if (segment === "..") return undefined;
    if (segment !== "" && segment !== ".") segments.push(segment);
  }
  return segments.length === 0 ? undefined : segments;
}

interface OpenBeneathAddon {
  openBeneath(root: string, relativePath: string): number;
}

/** How artifact files are opened beneath their root: the kernel's openat2, or our component walk. */
export type BeneathOpener = (root: string, relativePath: string) => number;

/** Symlinks followed per lookup at most (Linux's own limit is 40). */
const MAX_SYMLINKS = 40;
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

function errnoError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

/**
 * The fallback when openat2 is missing (no addon, kernel < 5.6, a seccomp filter): the same
 * semantics as RESOLVE_BENEATH, one component at a time. Each component is opened relative
 * to the directory already open (through `/proc/self/fd/<dirfd>/<name>`, which the kernel
 * resolves from that open directory, not by path) with O_NOFOLLOW, so a directory swapped for
 * a symlink mid-walk is seen as a symlink, never followed blindly. A symlink is read and its
 * target walked the same way: absolute targets and `..` above the root are refused (EXDEV),
 * as openat2 does. Needs /proc (Linux).
 */
export function walkBeneath(root: string, relativePath: string): number {
  const stack = [openSync(root, constants.O_RDONLY | constants.O_DIRECTORY)];
  const queue = relativePath.split("/").filter((part) => part !== "" && part !== ".");
  let links = 0;
  try {
    if (queue.length === 0) return openSync(`/proc/self/fd/${stack[0]}`, OPEN_FLAGS);
    while (queue.length > 0) {
      const part = queue.shift()!;
      if (part === "..") {
        if (stack.length === 1) throw errnoError("EXDEV", `${relativePath} leaves ${root}`);
        closeSync(stack.pop()!);
        if (queue.length === 0) return openSync(`/proc/self/fd/${stack[stack.length - 1]}`, OPEN_FLAGS);
        continue;
      }
      const at = `/proc/self/fd/${stack[stack.length - 1]}/${part}`;
      const last = queue.length === 0;
      let fd: number;
      try {
        fd = openSync(at, OPEN_FLAGS | constants.O_NOFOLLOW | (last ? 0 : constants.O_DIRECTORY));
      } catch (error) {
        // O_NOFOLLOW on a symlink fails with ELOOP, or ENOTDIR when O_DIRECTORY was asked too.
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== "ELOOP" && code !== "ENOTDIR") throw error;
        let target: string;
        try {
          target = readlinkSync(at);
        } catch {
          throw error; // not a symlink: a real ENOTDIR
        }
        // A symlink: walk its target from the directory that holds it.
        if (path.isAbsolute(target)) throw errnoError("EXDEV", `${part} is an absolute symlink`);
        if (++links > MAX_SYMLINKS) throw errnoError("ELOOP", `too many symlinks in ${relativePath}`);
        queue.unshift(...target.split("/").filter((p) => p !== "" && p !== "."));
        if (queue.length === 0) throw errnoError("ENOENT", `${part} is an empty symlink`);
        continue;
      }
      if (last) return fd;
      stack.push(fd);
    }
    throw errnoError("ENOENT", relativePath);
  } finally {
    for (const fd of stack) closeSync(fd);
  }
}

/**
 * The opener to use: openat2 through the native addon when it is built and the kernel offers
 * it (probed once, on the root `/`), else the walk. `preferNative: false` forces the walk (tests).
 */
export function beneathOpener(options: { preferNative?: boolean; addonPath?: string } = {}): {
  open: BeneathOpener;
  kind: "openat2" | "walk";
} {
  if (options.preferNative !== false) {
    const loaded = loadAddon<OpenBeneathAddon>("metalman_open_beneath.node", "openBeneath", options.addonPath);
    if (loaded.ok) {
      try {
        closeSync(loaded.addon.openBeneath("/", "."));
        return { open: (root, rel) => loaded.addon.openBeneath(root, rel), kind: "openat2" };
      } catch {
        // ENOSYS/EPERM: no openat2 here; fall through to the walk.
      }
    }
  }
  return { open: walkBeneath, kind: "walk" };
}

/** Without an explicit opener: the best one available (tests and one-off callers; long-lived callers hold one). */
function openerFor(opener: BeneathOpener | undefined): BeneathOpener {
  return opener ?? beneathOpener().open;
}

function reasonFor(error: unknown): SafePathReason {
  switch ((error as NodeJS.ErrnoException).code) {
    case "EXDEV":
    case "ELOOP":
      return "outside-root";
    case "EINVAL":
    case "ENAMETOOLONG":
      return "invalid-path";
    default:
      return "not-found";
  }
}

/**
 * Opens `relativePath` (request text, checked by requestPathSegments, possibly prefixed by the
 * image's own folder below its image root) as a regular file beneath `root`. Every component
 * is resolved beneath the root in the same lookup that opens the file, so no symlink swapped in
 * during resolution can lead outside it. A file whose real name is a `.tmpl` source (a symlink
 * `foo` -> `grub.cfg.tmpl`) is refused too, unless the caller is the renderer
 * (`allowTemplateSource`). Directories are "not-a-file": we never list them.
 * The caller closes the handle.
 */
export async function openBeneath(
  root: string,
  relativePath: string,
  opener?: BeneathOpener,
  options: { allowTemplateSource?: boolean } = {},
): Promise<OpenBeneathResult> {
  if (relativePath.includes("\0")) return { ok: false, reason: "invalid-path" };
  let fd: number;
  try {
    fd = openerFor(opener)(root, relativePath);
  } catch (error) {
    return { ok: false, reason: reasonFor(error) };
  }
  let handle: FileHandle | undefined;
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) return { ok: false, reason: "not-a-file" };
    const absPath = readlinkSync(`/proc/self/fd/${fd}`);
    if (!options.allowTemplateSource && isTemplateSourceName(path.basename(absPath)))
      return { ok: false, reason: "template-source" };
    // Reopening through the magic link gives the same open file (inode), as a FileHandle.
    handle = await open(`/proc/self/fd/${fd}`, constants.O_RDONLY | constants.O_NOCTTY);
    const reopened = await handle.stat();
    if (reopened.ino !== stat.ino || reopened.dev !== stat.dev) {
      await handle.close();
      return { ok: false, reason: "not-found" };
    }
    return { ok: true, handle, absPath, stat: reopened };
  } catch (error) {
    await handle?.close().catch(() => undefined);
    return { ok: false, reason: reasonFor(error) };
  } finally {
    closeSync(fd);
  }
}

/**
 * Like openBeneath, for callers that only need to know: the file's real path and stat, the
 * handle closed again. Request text is checked first.
 */
export async function resolveUnderRoot(
  root: string,
  requestPath: string,
  opener?: BeneathOpener,
): Promise<SafePathResult> {
  const segments = requestPathSegments(requestPath);
  if (segments === undefined) return { ok: false, reason: "invalid-path" };
  const opened = await openBeneath(root, segments.join("/"), opener);
  if (!opened.ok) return opened;
  await opened.handle.close();
  return { ok: true, absPath: opened.absPath, stat: opened.stat };
}
