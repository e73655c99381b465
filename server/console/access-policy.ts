import type { Role } from "./user-store.js";

/** What a console route needs, and the name its audit entries carry. */
export interface RoutePolicy {
  role: Role;
  /** `machine.repave`, `user.add`...; undefined for reads (reads are not audited). */
  action?: string;
  /** Reachable without a session (login, and asking whether one is logged in). */
  public?: boolean;
}

const API = "/api/v1";

/**
 * The role table (docs/console-api.md "Roles"). Keyed by method and route pattern as Fastify
 * registered it. Reads need `viewer` except the audit log and users (`admin`); an unknown
 * state-changing route needs `admin`: a route added without a row here fails closed.
 */
const TABLE: Record<string, RoutePolicy> = {
  [`POST ${API}/session`]: { role: "viewer", action: "login", public: true },
  [`GET ${API}/session`]: { role: "viewer", public: true },
  [`DELETE ${API}/session`]: { role: "viewer", action: "logout" },
  [`POST ${API}/machines/:name/power`]: { role: "operator", action: "machine.power" },
  [`POST ${API}/machines/:name/reboot`]: { role: "operator", action: "machine.reboot" },
  [`POST ${API}/machines/:name/repave`]: { role: "operator", action: "machine.repave" },
  [`POST ${API}/machines/:name/repin-bmc`]: { role: "operator", action: "machine.repin-bmc" },
  [`POST ${API}/operations`]: { role: "operator", action: "operation.create" },
  [`POST ${API}/discovered/:mac/enroll`]: { role: "operator", action: "discovered.enroll" },
  [`POST ${API}/machines`]: { role: "admin", action: "machine.create" },
  [`PUT ${API}/machines/:name`]: { role: "admin", action: "machine.edit" },
  [`DELETE ${API}/machines/:name`]: { role: "admin", action: "machine.delete" },
  [`GET ${API}/users`]: { role: "admin" },
  [`POST ${API}/users`]: { role: "admin", action: "user.add" },
  [`PUT ${API}/users/:name`]: { role: "admin", action: "user.edit" },
  [`DELETE ${API}/users/:name`]: { role: "admin", action: "user.delete" },
  [`GET ${API}/audit`]: { role: "admin" },
  [`POST ${API}/appliance/upgrade`]: { role: "admin", action: "appliance.upgrade" },
};

export function isReadMethod(method: string): boolean {
  return method === "GET" || method === "HEAD" || method === "OPTIONS";
}

export function policyFor(method: string, routeUrl: string | undefined): RoutePolicy {
  const url = routeUrl?.replace(/\/$/, "") ?? "";
  const row = TABLE[`${method === "HEAD" ? "GET" : method} ${url}`];
  if (row) return row;
  if (isReadMethod(method)) return { role: "viewer" };
  return { role: "admin", action: `${method} ${url || "(no route)"}` };
}
