import type { ImageLookup } from "../images/image-store.js";
import { ClientArch } from "./client-arch.js";

/**
 * Which boot file a client gets (spec §3.3 plus §12 item 26). Upstream always hands out
 * `dhcpBootImageName`; that stays the default, the other rules only apply when the client
 * identifies itself and the image provides the matching file.
 */
export interface BootClient {
  /** First entry of option 93. */
  arch?: number;
  /** Option 60. */
  vendorClass?: string;
  /** Option 77 class names. */
  userClasses?: readonly string[];
}

export type BootRule = "ipxe-script" | "uefi-http" | "bios" | "default";

export type BootChoice =
  | { kind: "none"; reason: string }
  | {
      kind: "file";
      /** Bare TFTP file name or an absolute `http://` URL. */
      file: string;
      rule: BootRule;
      /** Option 60 to send back: PXE and HTTP boot firmware match on it. */
      vendorClassEcho?: "PXEClient" | "HTTPClient";
    };

export function isIpxe(client: BootClient): boolean {
  return client.userClasses?.includes("iPXE") === true;
}

export function isHttpBootClient(client: BootClient): boolean {
  return client.vendorClass?.startsWith("HTTPClient") === true;
}

export function isPxeClient(client: BootClient): boolean {
  return client.vendorClass?.startsWith("PXEClient") === true;
}

export function chooseBootFile(lookup: ImageLookup, client: BootClient, serveUrl: string): BootChoice {
  if (lookup.state !== "ready") return { kind: "none", reason: `image-${lookup.state}: ${lookup.reason}` };
  const md = lookup.metadata;
  const base = serveUrl.endsWith("/") ? serveUrl.slice(0, -1) : serveUrl;
  const pxeEcho = isPxeClient(client) ? ("PXEClient" as const) : undefined;

  if (isIpxe(client) && nonEmpty(md.ipxeScriptName)) {
    return {
      kind: "file",
      file: `${base}/${trimSlash(md.ipxeScriptName)}`,
      rule: "ipxe-script",
      vendorClassEcho: pxeEcho,
    };
  }
  if (isHttpBootClient(client)) {
    if (!nonEmpty(md.dhcpBootImageName)) return { kind: "none", reason: "image has no dhcpBootImageName" };
    return {
      kind: "file",
      file: `${base}/${trimSlash(md.dhcpBootImageName)}`,
      rule: "uefi-http",
      vendorClassEcho: "HTTPClient",
    };
  }
  if (client.arch === ClientArch.X86Bios && nonEmpty(md.biosBootImageName)) {
    return { kind: "file", file: md.biosBootImageName, rule: "bios", vendorClassEcho: pxeEcho };
  }
  if (!nonEmpty(md.dhcpBootImageName)) return { kind: "none", reason: "image has no dhcpBootImageName" };
  return { kind: "file", file: md.dhcpBootImageName, rule: "default", vendorClassEcho: pxeEcho };
}

function nonEmpty(value: unknown): value is string {
  return typeof value === "string" && value.length > 0;
}

function trimSlash(name: string): string {
  return name.startsWith("/") ? name.slice(1) : name;
}
