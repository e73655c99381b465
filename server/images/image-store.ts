import type { Machine } from "../inventory/types.js";

/**
 * Where netboot images live on disk. An image is a folder whose `disk/` subfolder is the
 * served root (upstream layout, spec §6.3). References are `dir:PATH` (local; PATH absolute
 * or relative to the Machine file) or OCI references (pulled by the images issue; until
 * then "not yet available").
 */

/**
 * Keys of `metadata.yaml: bootFiles`, one per client architecture family that gets a boot
 * file (docs/boot-files.md has the option 93 table). Every other architecture gets none.
 */
export const BOOT_FILE_KEYS = ["bios", "efi-ia32", "efi-x64", "efi-arm64", "http-x64", "http-arm64"] as const;
export type BootFileKey = (typeof BOOT_FILE_KEYS)[number];

export interface ImageMetadata {
  /** `metadata.yaml: dhcpBootImageName`, e.g. `shimx64.efi`: the x64 UEFI boot file (upstream). */
  dhcpBootImageName?: string;
  /** Beyond upstream: BIOS boot loader (e.g. `undionly.kpxe`) and iPXE script, when the image has them. */
  biosBootImageName?: string;
  ipxeScriptName?: string;
  /** Beyond upstream: a boot file per architecture; an entry wins over the two flat keys above. */
  bootFiles?: Partial<Record<BootFileKey, string>>;
  [key: string]: unknown;
}

export type ImageLookup =
  | {
      state: "ready";
      ref: string;
      diskDir: string;
      metadata: ImageMetadata;
      /**
       * The configured image root that holds diskDir (docs/security.md): artifacts are opened
       * beneath it, so no component between the root and the file can be a symlink that leaves
       * it. Undefined: opened beneath diskDir only.
       */
      root?: string;
    }
  | { state: "not-ready"; ref: string; reason: string; retryAfterSeconds: number }
  | { state: "error"; ref: string; reason: string };

export interface ImageStore {
  /** Resolve `machine.spec.pxe.image`. Cheap enough to call per packet (results are cached). */
  lookupForMachine(machine: Machine): ImageLookup;
}
