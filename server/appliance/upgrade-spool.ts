import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ApplianceUpgrades, UpgradeStatus } from "../api/appliance.js";
import { writeFileAtomic } from "../util/atomic-file.js";

/**
 * The appliance's upgrade spool (issue 11): the console's "upload an update bundle" lands here.
 * metalman runs unprivileged and cannot write a root slot, so it only stores the bundle; a root
 * unit (appliance/systemd/metalman-upgrade-spool.path -> appliance/bin/metalman-upgrade-spool)
 * installs it with metalman-upgrade into the other slot and reboots; the new slot is on trial and
 * rolls back by itself if it does not come up.
 *
 * Files in `dir` (on the data partition):
 * - `incoming.<random>.tar` while an upload runs (removed if it fails),
 * - `pending.json` then `pending.tar` (the tar last: the path unit starts on it),
 * - `status.json`, written by the root side (installing, rebooting, failed + message).
 */
export class UpgradeSpool implements ApplianceUpgrades {
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #now: () => Date;
  #uploading = false;

  constructor(options: { dir: string; maxBytes?: number; now?: () => Date }) {
    this.#dir = options.dir;
    // A bundle is a slot's root filesystem (1.5 GiB, sparse in the tar) plus kernel and initrd.
    this.#maxBytes = options.maxBytes ?? 4 * 1024 ** 3;
    this.#now = options.now ?? (() => new Date());
  }

  get maxBytes(): number {
    return this.#maxBytes;
  }

  async status(): Promise<UpgradeStatus> {
    if (this.#uploading) return { state: "uploading" };
    const pending = await readJson(path.join(this.#dir, "pending.json"));
    if (pending && (await exists(path.join(this.#dir, "pending.tar")))) return { ...pending, state: "pending" };
    const written = await readJson(path.join(this.#dir, "status.json"));
    return written ? { ...written, state: written.state ?? "idle" } : { state: "idle" };
  }

  async accept(body: Readable, meta: { requestedBy: string }): Promise<UpgradeStatus> {
    const current = await this.status();
    if (this.#uploading || current.state === "pending" || current.state === "installing") {
      body.resume();
      throw new UpgradeRefused("busy", `an upgrade is already ${current.state}`);
    }
    this.#uploading = true;
    await mkdir(this.#dir, { recursive: true, mode: 0o750 });
    const incoming = path.join(this.#dir, `incoming.${randomBytes(6).toString("hex")}.tar`);
    try {
      const hash = createHash("sha256");
      let bytes = 0;
      const limit = this.#maxBytes;
      await pipeline(
        body,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            bytes += chunk.length;
            if (bytes > limit) throw new UpgradeRefused("too-large", `a bundle is at most ${limit} bytes`);
            hash.update(chunk);
            yield chunk;
          }
        },
        createWriteStream(incoming, { mode: 0o640 }),
      );
      const bundle = await readBundleEnv(incoming);
      const status: UpgradeStatus = {
        state: "pending",
        version: bundle.VERSION,
        sha256: hash.digest("hex"),
        bytes,
        requestedBy: meta.requestedBy,
        at: this.#now().toISOString(),
      };
      await writeFileAtomic(path.join(this.#dir, "pending.json"), `${JSON.stringify(status, null, 2)}\n`);
      await rm(path.join(this.#dir, "status.json"), { force: true });
      await rename(incoming, path.join(this.#dir, "pending.tar"));
      return status;
    } catch (err) {
      await rm(incoming, { force: true });
      throw err;
    } finally {
      this.#uploading = false;
    }
  }
}

/** Why an upload was refused; the API maps `reason` onto its error catalogue. */
export class UpgradeRefused extends Error {
  constructor(
    readonly reason: "busy" | "too-large" | "not-a-bundle",
    message: string,
  ) {
    super(message);
    this.name = "UpgradeRefused";
  }
}

const BUNDLE_KEYS = ["VERSION", "KERNEL", "SHA256_root", "SHA256_vmlinuz", "SHA256_initrd"] as const;

/**
 * The bundle's first tar member must be `bundle.env` (build/appliance/make-update.sh writes it
 * first): read its header and body only, so a 1.5 GiB bundle is checked without reading it all.
 * metalman-upgrade verifies the members' sha256s when it installs.
 */
export async function readBundleEnv(file: string): Promise<Record<(typeof BUNDLE_KEYS)[number], string>> {
  const handle = await open(file, "r");
  try {
    const header = Buffer.alloc(512);
    const { bytesRead } = await handle.read(header, 0, 512, 0);
    if (bytesRead < 512) throw new UpgradeRefused("not-a-bundle", "shorter than one tar header");
    const name = cString(header.subarray(0, 100)).replace(/^\.\//, "");
    const magic = header.subarray(257, 262).toString("latin1");
    if (magic !== "ustar") throw new UpgradeRefused("not-a-bundle", "not a tar archive");
    if (name !== "bundle.env") {
      throw new UpgradeRefused("not-a-bundle", `first member is ${JSON.stringify(name)}, not bundle.env`);
    }
    const size = Number.parseInt(cString(header.subarray(124, 136)).trim() || "0", 8);
    if (!(size > 0 && size <= 4096)) throw new UpgradeRefused("not-a-bundle", "bundle.env has no plausible size");
    const body = Buffer.alloc(size);
    await handle.read(body, 0, size, 512);
    const values: Record<string, string> = {};
    for (const line of body.toString("utf8").split("\n")) {
      const m = /^([A-Za-z0-9_]+)=(.*)$/.exec(line.trim());
      if (m) values[m[1]!] = m[2]!;
    }
    for (const key of BUNDLE_KEYS) {
      if (!values[key]) throw new UpgradeRefused("not-a-bundle", `bundle.env has no ${key}`);
    }
    if (!/^[0-9A-Za-z][0-9A-Za-z.+~-]{0,63}$/.test(values.VERSION!)) {
      throw new UpgradeRefused("not-a-bundle", "bundle.env VERSION is not a version");
    }
    return values as Record<(typeof BUNDLE_KEYS)[number], string>;
  } finally {
    await handle.close();
  }
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end === -1 ? bytes.length : end).toString("utf8");
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

const STATES = new Set(["idle", "uploading", "pending", "installing", "rebooting", "done", "failed"]);

/** A status file as the root side or we wrote it; anything unreadable counts as absent. */
async function readJson(file: string): Promise<UpgradeStatus | undefined> {
  try {
    const doc = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
    const text = (v: unknown) => (typeof v === "string" ? v.slice(0, 2000) : undefined);
    const state = text(doc.state);
    return {
      state: (state && STATES.has(state) ? state : "idle") as UpgradeStatus["state"],
      version: text(doc.version),
      sha256: text(doc.sha256),
      bytes: typeof doc.bytes === "number" ? doc.bytes : undefined,
      requestedBy: text(doc.requestedBy),
      at: text(doc.at),
      message: text(doc.message),
    };
  } catch {
    return undefined;
  }
}
