/**
 * String formats of our strict Machine validation (spec §12 item 11: upstream's CRD has no
 * pattern validation, and these strings end up in DHCP options, kernel command lines and YAML).
 * Each format has a checker and the human message shown when a value fails it.
 */
import { isSubnetMask as isContiguousMask, isIpv4, parseIpv4 } from "../util/ipv4.js";

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
// OCI distribution reference: [registry[:port]/]repository[:tag][@algorithm:hex].
const OCI_REFERENCE =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$/;

export function isMac(value: string): boolean {
  return MAC.test(value);
}

/** Dotted-quad without leading zeros, so the verbatim IP index (§2.6) never misses a lookup. */
export function isIPv4(value: string): boolean {
  return isIpv4(value);
}

/** A contiguous netmask (`/1` … `/32`); `0.0.0.0` is refused because no lease can use it. */
export function isSubnetMask(value: string): boolean {
  return isContiguousMask(value) && parseIpv4(value) !== 0;
}

export function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === "https:" || url.protocol === "http:") && url.hostname !== "";
  } catch {
    return false;
  }
}

/** Kubernetes object names (DNS-1123 subdomain): they become file names and template strings. */
export function isDns1123Subdomain(value: string): boolean {
  return value.length <= 253 && value.split(".").every((label) => DNS1123_LABEL.test(label));
}

export function isDns1123Label(value: string): boolean {
  return value.length <= 63 && DNS1123_LABEL.test(value);
}

export function isLabelValue(value: string): boolean {
  return value.length <= 63 && LABEL_VALUE.test(value);
}

/** `spec.pxe.image`: an OCI reference, or `dir:PATH` for a local image folder. */
export function isImageReference(value: string): boolean {
  if (value.startsWith("dir:")) return value.length > 4 && !value.includes("\0");
  return value.length <= 4096 && OCI_REFERENCE.test(value);
}

export interface FormatSpec {
  check(value: string): boolean;
  message: string;
}

export const MACHINE_FORMATS: Record<string, FormatSpec> = {
  mac: { check: isMac, message: "must be a MAC address like aa:bb:cc:dd:ee:ff" },
  ipv4: { check: isIPv4, message: "must be an IPv4 address like 10.0.0.11" },
  "subnet-mask": { check: isSubnetMask, message: "must be a contiguous subnet mask like 255.255.255.0" },
  "http-url": { check: isHttpUrl, message: "must be an http:// or https:// URL like https://10.0.10.11" },
  "dns1123-subdomain": {
    check: isDns1123Subdomain,
    message: "must be a DNS-1123 name: lower-case letters, digits, '-' and '.', at most 253 characters",
  },
  "dns1123-label": {
    check: isDns1123Label,
    message: "must be a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters",
  },
  "label-value": {
    check: isLabelValue,
    message: "must be a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric",
  },
  "image-ref": {
    check: isImageReference,
    message: "must be an OCI image reference like ghcr.io/azure/images/host-ubuntu2404:v1, or dir:PATH",
  },
};
