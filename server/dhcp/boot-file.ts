import type { BootFileKey, ImageLookup, ImageMetadata } from "../images/image-store.js";
import { ClientArch } from "./client-arch.js";

/**
 * Which boot file a client gets (spec §3.3, §12 item 26, issue 5 §1.1; docs/boot-files.md).
 * Strictly by client architecture (option 93, RFC 4578): a PXE ROM handed a binary for
 * another architecture jumps into it and hangs, so an architecture without a file gets no
 * boot options at all. Pure: no I/O, the image metadata comes in with the lookup.
 */
export interface BootClient {
  /** First entry of option 93. */
  arch?: number;
  /** Option 60. */
  vendorClass?: string;
  /** Option 77 class names. */
  userClasses?: readonly string[];
}

/** `ipxe-script`: the iPXE script; `default`: no architecture known (upstream file); else the arch key. */
export type BootRule = "ipxe-script" | "default" | BootFileKey;

/** Machine-readable reason for `kind: "none"`; it becomes the event's `reason`. */
export type BootSkipCode =
  | "image-not-ready"
  | "image-error"
  | "no-boot-file-for-arch"
  /** The client already runs iPXE and the only file for it is an iPXE binary (it would chainload forever). */
  | "ipxe-chainload-loop";

export type BootChoice =
  | { kind: "none"; code: BootSkipCode; reason: string }
  | {
      kind: "file";
      /** Bare TFTP file name or an absolute `http://` URL. */
      file: string;
      rule: BootRule;
      /** Option 60 to send back: PXE and HTTP boot firmware match on it. */
      vendorClassEcho?: "PXEClient" | "HTTPClient";
    };

/** Option 93 value → the `bootFiles` key that serves it (RFC 4578 §2.1, IANA registry). */
const ARCH_KEYS: ReadonlyMap<number, BootFileKey> = new Map([
  [ClientArch.X86Bios, "bios"],
  [ClientArch.X86Uefi, "efi-ia32"],
  [ClientArch.X64Uefi, "efi-x64"],
  [ClientArch.EfiBc, "efi-x64"],
  [ClientArch.Arm64Uefi, "efi-arm64"],
  [ClientArch.X64UefiHttp, "http-x64"],
  [ClientArch.Arm64UefiHttp, "http-arm64"],
]);

export function bootFileKeyOf(arch: number): BootFileKey | undefined {
  return ARCH_KEYS.get(arch);
}

export function isIpxe(client: BootClient): boolean {
  return client.userClasses?.includes("iPXE") === true;
}

export function isHttpBootClient(client: BootClient): boolean {
  return client.vendorClass?.startsWith("HTTPClient") === true;
}

export function isPxeClient(client: BootClient): boolean {
  return client.vendorClass?.startsWith("PXEClient") === true;
}

/**
 * The client's architecture: option 93, else the `Arch:NNNNN` field of option 60 (PXE 2.1
 * §2.2.1: `PXEClient:Arch:xxxxx:UNDI:yyyzzz`, decimal), which some ROMs send without 93.
 */
export function clientArchOf(client: BootClient): number | undefined {
  if (client.arch !== undefined) return client.arch;
  const match = /^(?:PXEClient|HTTPClient):Arch:(\d{5})/.exec(client.vendorClass ?? "");
  return match ? Number(match[1]) : undefined;
}

/**
 * Which UEFI architecture a file name says it is for, by the suffixes of the UEFI removable
 * media names (BOOTX64.EFI, BOOTIA32.EFI, BOOTAA64.EFI, BOOTARM.EFI, BOOTRISCV64.EFI; UEFI 2.10
 * §3.5.1.1) that shim, GRUB and systemd-boot builds follow (`shimaa64.efi`, `grubx64.efi`).
 * `other` is an architecture without a `bootFiles` key; undefined: the name does not say.
 */
export function uefiArchOfName(file: string): "efi-x64" | "efi-ia32" | "efi-arm64" | "other" | undefined {
  const base = file.slice(file.lastIndexOf("/") + 1).toLowerCase();
  if (base.endsWith("x64.efi")) return "efi-x64";
  if (base.endsWith("ia32.efi")) return "efi-ia32";
  if (base.endsWith("aa64.efi")) return "efi-arm64";
  if (/(?:arm|riscv64|loongarch64)\.efi$/.test(base)) return "other";
  return undefined;
}

/**
 * The architecture of the upstream `dhcpBootImageName`: x64 UEFI (the rule for upstream
 * images), unless its name says otherwise. Upstream arm64 images name `shimaa64.efi` there
 * ("one image = one architecture"); that file must reach arm64 clients and never x64 ones.
 */
function upstreamFileKey(md: ImageMetadata): BootFileKey | undefined {
  if (!nonEmpty(md.dhcpBootImageName)) return undefined;
  const arch = uefiArchOfName(md.dhcpBootImageName) ?? "efi-x64";
  return arch === "other" ? undefined : arch;
}

/** The file named for `key`, with the fallbacks of docs/boot-files.md. */
export function bootFileFor(md: ImageMetadata, key: BootFileKey): string | undefined {
  const listed = md.bootFiles?.[key];
  if (nonEmpty(listed)) return listed;
  switch (key) {
    case "bios":
      return nonEmpty(md.biosBootImageName) ? md.biosBootImageName : undefined;
    case "efi-x64":
    case "efi-ia32":
    case "efi-arm64":
      return upstreamFileKey(md) === key ? md.dhcpBootImageName : undefined;
    // UEFI HTTP boot loads the same PE binary as UEFI PXE on that CPU, only over HTTP.
    case "http-x64":
      return bootFileFor(md, "efi-x64");
    case "http-arm64":
      return bootFileFor(md, "efi-arm64");
    default:
      return undefined;
  }
}

/**
 * iPXE builds by their conventional names (`undionly.kpxe`, `ipxe.pxe`, `ipxe.lkrn`,
 * `ipxe.efi`, `snponly.efi`, ...). Handing one to a client that already runs iPXE restarts
 * iPXE, which asks DHCP again and gets the same file: a loop.
 */
export function looksLikeIpxeBinary(file: string): boolean {
  const base = file.slice(file.lastIndexOf("/") + 1).toLowerCase();
  return /\.(?:k{0,3}pxe|lkrn)$/.test(base) || /^(?:ipxe|snponly|snp|undionly)(?:[-_.].*)?\.efi$/.test(base);
}

export function chooseBootFile(lookup: ImageLookup, client: BootClient, serveUrl: string): BootChoice {
  if (lookup.state !== "ready") {
    return {
      kind: "none",
      code: lookup.state === "not-ready" ? "image-not-ready" : "image-error",
      reason: `image-${lookup.state}: ${lookup.reason}`,
    };
  }
  const md = lookup.metadata;
  const base = serveUrl.endsWith("/") ? serveUrl.slice(0, -1) : serveUrl;
  const pxeEcho = isPxeClient(client) ? ("PXEClient" as const) : undefined;
  const ipxe = isIpxe(client);

  if (ipxe && nonEmpty(md.ipxeScriptName)) {
    return { kind: "file", file: httpUrl(base, md.ipxeScriptName), rule: "ipxe-script", vendorClassEcho: pxeEcho };
  }

  const arch = clientArchOf(client);
  let rule: BootRule;
  let file: string | undefined;
  if (arch === undefined) {
    // No option 93 and no Arch in option 60: not PXE firmware (udhcpc, an installed OS).
    // An HTTP boot client must say its architecture; everything else keeps the upstream file.
    if (isHttpBootClient(client)) {
      return { kind: "none", code: "no-boot-file-for-arch", reason: "HTTP boot client sent no architecture" };
    }
    rule = "default";
    file = bootFileFor(md, "efi-x64") ?? (nonEmpty(md.dhcpBootImageName) ? md.dhcpBootImageName : undefined);
    if (file === undefined) return { kind: "none", code: "no-boot-file-for-arch", reason: "image has no UEFI file" };
  } else {
    const key = bootFileKeyOf(arch);
    if (key === undefined) {
      return { kind: "none", code: "no-boot-file-for-arch", reason: `no boot file key for architecture ${arch}` };
    }
    rule = key;
    file = bootFileFor(md, key);
    if (file === undefined) return { kind: "none", code: "no-boot-file-for-arch", reason: `image has no ${key} file` };
  }

  if (ipxe && looksLikeIpxeBinary(file)) {
    return {
      kind: "none",
      code: "ipxe-chainload-loop",
      reason: `client already runs iPXE and ${file} is iPXE; set ipxeScriptName`,
    };
  }
  if (rule === "http-x64" || rule === "http-arm64") {
    return { kind: "file", file: httpUrl(base, file), rule, vendorClassEcho: "HTTPClient" };
  }
  return { kind: "file", file, rule, vendorClassEcho: pxeEcho };
}

function httpUrl(base: string, name: string): string {
  if (/^https?:\/\//i.test(name)) return name;
  return `${base}/${name.startsWith("/") ? name.slice(1) : name}`;
}

function nonEmpty(value: unknown): value is string {
  return typeof value === "string" && value.length > 0;
}
