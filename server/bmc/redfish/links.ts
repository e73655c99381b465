import { BmcError } from "../driver.js";

/**
 * Redfish links (`@odata.id`, `Location`, action targets, task monitors) come from the BMC.
 * They are resolved against the BMC's origin and must stay on it: a link to another host (or a
 * protocol-relative `//host/...`) is refused, so a hostile or confused BMC can never make the
 * appliance send credentials elsewhere.
 */
export function resolveLink(origin: string, link: unknown, what = "link"): string {
  if (typeof link !== "string" || link === "") throw new BmcError("bad-response", `the BMC sent no ${what}`);
  let url: URL;
  try {
    url = new URL(link, `${origin}/`);
  } catch {
    throw new BmcError("bad-response", `the BMC sent an invalid ${what}`);
  }
  if (url.origin !== origin) {
    throw new BmcError("bad-response", `the BMC's ${what} points to ${url.origin}, outside the BMC ${origin}; refused`);
  }
  return url.pathname + url.search;
}

/** The link of a Redfish reference object: `@odata.id`, or `href` (old HP firmware). */
export function linkOf(reference: unknown): string | undefined {
  if (typeof reference !== "object" || reference === null) return undefined;
  const r = reference as Record<string, unknown>;
  if (typeof r["@odata.id"] === "string") return r["@odata.id"];
  if (typeof r.href === "string") return r.href;
  return undefined;
}

/** iLO ends every URI with `/`, and some OEM links are lower-case: compare paths normalised, never as strings. */
export function normalizePath(path: string): string {
  const bare = path.split("?")[0]!.replace(/\/+$/, "");
  return (bare === "" ? "/" : bare).toLowerCase();
}

export function samePath(a: string, b: string): boolean {
  return normalizePath(a) === normalizePath(b);
}

/** The resource id a member link ends with (`/redfish/v1/Systems/System.Embedded.1/` → `System.Embedded.1`). */
export function lastSegment(path: string): string {
  const parts = path
    .split("?")[0]!
    .split("/")
    .filter((p) => p !== "");
  return decodeURIComponent(parts[parts.length - 1] ?? "");
}
