import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { BOOT_FILE_KEYS, type BootFileKey, type ImageMetadata } from "./image-store.js";

/**
 * `disk/metadata.yaml` of an image folder (spec §6.5 plus the per-architecture `bootFiles`
 * of docs/boot-files.md). Unknown top-level keys survive (upstream images carry others); the
 * keys metalman reads are type-checked, and a typo inside `bootFiles` is an error rather than
 * a silently missing boot file.
 */
export type MetadataResult = { ok: true; metadata: ImageMetadata } | { ok: false; reason: string };

const STRING_KEYS = ["dhcpBootImageName", "biosBootImageName", "ipxeScriptName"] as const;
const BOOT_FILE_KEY_SET: ReadonlySet<string> = new Set(BOOT_FILE_KEYS);

export function readMetadataFile(file: string): MetadataResult {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    return { ok: false, reason: `${file}: ${(error as Error).message}` };
  }
  const result = parseMetadata(text);
  return result.ok ? result : { ok: false, reason: `${file}: ${result.reason}` };
}

/** Parse and check the text of a metadata.yaml; reasons do not name the file. */
export function parseMetadata(text: string): MetadataResult {
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
  if (parsed === null || parsed === undefined) return { ok: true, metadata: {} };
  if (!isMapping(parsed)) return { ok: false, reason: "expected a mapping at the top level" };
  const metadata = parsed as ImageMetadata;
  for (const key of STRING_KEYS) {
    if (metadata[key] !== undefined && typeof metadata[key] !== "string") {
      return { ok: false, reason: `${key} must be a string` };
    }
  }
  if (metadata.bootFiles !== undefined) {
    const bootFiles: unknown = metadata.bootFiles;
    if (!isMapping(bootFiles)) return { ok: false, reason: "bootFiles must be a mapping of architecture to file" };
    for (const [key, value] of Object.entries(bootFiles)) {
      if (!BOOT_FILE_KEY_SET.has(key)) {
        return { ok: false, reason: `bootFiles.${key}: unknown architecture (known: ${BOOT_FILE_KEYS.join(", ")})` };
      }
      if (typeof value !== "string" || value === "") {
        return { ok: false, reason: `bootFiles.${key as BootFileKey} must be a non-empty string` };
      }
    }
  }
  return { ok: true, metadata };
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
