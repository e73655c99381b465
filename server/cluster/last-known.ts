/**
 * The appliance's promise while the uplink is down: it keeps serving from the last state it saw.
 * `<stateDir>/cluster/last-known.json` holds the Machines, the Secrets and ConfigMaps they
 * referenced, and the cluster facts, written crash-safe (temp + fsync + rename). Secret data is
 * encrypted at rest (AES-256-GCM, key `<stateDir>/cluster/cache.key`, 0600). A file that does not
 * parse is moved to `.corrupt` (never overwritten) and reported; the appliance then starts empty
 * and waits for the API server.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { moveAside } from "../inventory/corrupt-file.js";
import { writeFileAtomic } from "../util/atomic-file.js";

export interface ClusterFacts {
  /** API server URL from kube-public/cluster-info (or METALMAN_APISERVER_URL). */
  apiserverUrl?: string;
  /** base64 of the cluster CA PEM from cluster-info (what AgentConfig carries). */
  caCertBase64?: string;
  /** kube-system/kube-dns spec.clusterIP. */
  clusterDNS?: string;
  /** /version gitVersion. */
  version?: string;
}

export interface LastKnownState {
  savedAt: string;
  site: string;
  resourceVersion: string;
  /** Machine objects as the API returned them. */
  machines: Record<string, unknown>[];
  /** `<namespace>/<name>` → data (null: known not to exist). */
  configMaps: Record<string, Record<string, string> | null>;
  /** `<namespace>/<name>` → base64 data (null: known not to exist). Encrypted on disk. */
  secrets: Record<string, Record<string, string> | null>;
  facts: ClusterFacts;
}

interface OnDisk {
  format: "metalman-last-known/1";
  savedAt: string;
  site: string;
  resourceVersion: string;
  machines: Record<string, unknown>[];
  configMaps: LastKnownState["configMaps"];
  /** AES-256-GCM of JSON(secrets): iv, tag and ciphertext, base64. */
  secrets: { iv: string; tag: string; data: string };
  facts: ClusterFacts;
}

export type LoadResult =
  | { ok: true; state: LastKnownState }
  | { ok: false; missing: true }
  | { ok: false; missing: false; file: string; movedTo?: string; message: string };

export class LastKnownStore {
  readonly file: string;
  readonly #keyFile: string;
  #key: Buffer | undefined;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, "cluster", "last-known.json");
    this.#keyFile = path.join(stateDir, "cluster", "cache.key");
  }

  async #loadKey(create: boolean): Promise<Buffer | undefined> {
    if (this.#key) return this.#key;
    try {
      const key = Buffer.from((await readFile(this.#keyFile, "utf8")).trim(), "base64");
      if (key.length === 32) {
        this.#key = key;
        return key;
      }
      throw new Error(`${this.#keyFile}: not a 32-byte key`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
        // A damaged key is kept aside; the encrypted cache it protected is unreadable anyway.
        await moveAside(this.#keyFile).catch(() => undefined);
      }
      if (!create) return undefined;
      const key = randomBytes(32);
      await writeFileAtomic(this.#keyFile, `${key.toString("base64")}\n`);
      this.#key = key;
      return key;
    }
  }

  async load(): Promise<LoadResult> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return { ok: false, missing: true };
      return { ok: false, missing: false, file: this.file, message: `cannot read ${this.file}: ${String(err)}` };
    }
    try {
      const disk = JSON.parse(text) as OnDisk;
      if (
        disk.format !== "metalman-last-known/1" ||
        !Array.isArray(disk.machines) ||
        typeof disk.secrets !== "object"
      ) {
        throw new Error("not a metalman last-known state");
      }
      const key = await this.#loadKey(false);
      if (!key) throw new Error(`the key ${this.#keyFile} is missing or damaged`);
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(disk.secrets.iv, "base64"));
      decipher.setAuthTag(Buffer.from(disk.secrets.tag, "base64"));
      const secrets = JSON.parse(
        Buffer.concat([decipher.update(Buffer.from(disk.secrets.data, "base64")), decipher.final()]).toString("utf8"),
      ) as LastKnownState["secrets"];
      return {
        ok: true,
        state: {
          savedAt: disk.savedAt,
          site: disk.site,
          resourceVersion: disk.resourceVersion,
          machines: disk.machines,
          configMaps: disk.configMaps ?? {},
          secrets,
          facts: disk.facts ?? {},
        },
      };
    } catch (err) {
      const movedTo = await moveAside(this.file).catch(() => undefined);
      return {
        ok: false,
        missing: false,
        file: this.file,
        movedTo,
        message: `last-known cluster state ${this.file} is unreadable (${(err as Error).message}); kept as ${movedTo ?? "(could not move it)"}; serving nothing until the API server answers`,
      };
    }
  }

  async save(state: LastKnownState): Promise<void> {
    const key = (await this.#loadKey(true))!;
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    const data = Buffer.concat([cipher.update(JSON.stringify(state.secrets), "utf8"), cipher.final()]);
    const disk: OnDisk = {
      format: "metalman-last-known/1",
      savedAt: state.savedAt,
      site: state.site,
      resourceVersion: state.resourceVersion,
      machines: state.machines,
      configMaps: state.configMaps,
      secrets: {
        iv: iv.toString("base64"),
        tag: cipher.getAuthTag().toString("base64"),
        data: data.toString("base64"),
      },
      facts: state.facts,
    };
    await writeFileAtomic(this.file, JSON.stringify(disk));
  }
}
