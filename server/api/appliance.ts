import type { FastifyPluginAsync } from "fastify";
import type { SurfaceOptions } from "./plugin.js";
import { EMPTY_QUERY } from "./schemas.js";

/** What `GET /appliance` shows: the services, the interfaces, the upstream connection, the version. */
export interface ApplianceInfo {
  version: string;
  mode: "standalone" | "cluster";
  services: Array<{ name: string; state: "ok" | "failing" | "off"; detail?: string }>;
  interfaces: Array<{ name: string; addresses: string[]; mac?: string }>;
  upstream?: Record<string, string | number | boolean>;
  console?: { fingerprint: string; url?: string };
  /** overlay (issue 12): its state in one line, when enabled. */
  overlay?: string;
  /** The appliance image (issue 11): appliance.yaml's errors and notices as its first boot read them. */
  config?: {
    file: string;
    errors: string[];
    notices: string[];
    site?: string;
    imageVersion?: string;
    slot?: string;
    /** Why the status file could not be read (then errors and notices are empty). */
    unreadable?: string;
  };
  [key: string]: unknown;
}

export interface ApplianceOptions extends SurfaceOptions {
  appliance?: () => ApplianceInfo;
}

/** `GET /appliance`: read-only facts about this appliance (never a secret: no key, no password). */
export const appliancePlugin: FastifyPluginAsync<ApplianceOptions> = async (app, options) => {
  app.get("/appliance", { schema: { querystring: EMPTY_QUERY } }, async () => {
    return options.appliance?.() ?? { version: "unknown", mode: "standalone", services: [], interfaces: [] };
  });
};
