import type { Readable } from "node:stream";
import type { FastifyPluginAsync } from "fastify";
import { ApiError } from "./errors.js";
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

/** Where an appliance upgrade is: uploaded, waiting for the root side, installing, rebooting, done. */
export interface UpgradeStatus {
  state: "idle" | "uploading" | "pending" | "installing" | "rebooting" | "done" | "failed";
  version?: string;
  sha256?: string;
  bytes?: number;
  requestedBy?: string;
  at?: string;
  message?: string;
}

/** The appliance image's upgrade spool (server/appliance/upgrade-spool.ts): what the API needs of it. */
export interface ApplianceUpgrades {
  readonly maxBytes: number;
  status(): Promise<UpgradeStatus>;
  /** Stores an update bundle for the root side; rejects with `reason` busy, too-large or not-a-bundle. */
  accept(body: Readable, meta: { requestedBy: string }): Promise<UpgradeStatus>;
}

export interface ApplianceOptions extends SurfaceOptions {
  appliance?: () => ApplianceInfo;
  /** The appliance image only (`--appliance-upgrade-dir`): upload an update bundle. */
  upgrades?: ApplianceUpgrades;
}

const UPGRADE_REFUSALS = {
  busy: "UPGRADE_IN_PROGRESS",
  "too-large": "PAYLOAD_TOO_LARGE",
  "not-a-bundle": "INVALID_BUNDLE",
} as const;

/** `GET /appliance`: read-only facts about this appliance (never a secret: no key, no password). */
export const appliancePlugin: FastifyPluginAsync<ApplianceOptions> = async (app, options) => {
  app.get("/appliance", { schema: { querystring: EMPTY_QUERY } }, async () => {
    return options.appliance?.() ?? { version: "unknown", mode: "standalone", services: [], interfaces: [] };
  });

  const { upgrades } = options;
  if (!upgrades) return;
  // An update bundle is a tar of a root filesystem: streamed to the spool, never held in memory.
  for (const type of ["application/x-tar", "application/octet-stream"]) {
    app.addContentTypeParser(type, (_request, payload, done) => done(null, payload));
  }
  app.get("/appliance/upgrade", { schema: { querystring: EMPTY_QUERY } }, async () => upgrades.status());
  app.post("/appliance/upgrade", { schema: { querystring: EMPTY_QUERY } }, async (request, reply) => {
    const actor = await options.actor(request);
    const body = request.body as Readable | Record<string, never>;
    if (typeof (body as Readable).pipe !== "function") {
      throw new ApiError("UNSUPPORTED_MEDIA_TYPE", "send the update bundle as application/x-tar");
    }
    const declared = Number(request.headers["content-length"] ?? "0");
    if (declared > upgrades.maxBytes) {
      (body as Readable).resume();
      throw new ApiError("PAYLOAD_TOO_LARGE", `a bundle is at most ${upgrades.maxBytes} bytes`);
    }
    try {
      const status = await upgrades.accept(body as Readable, { requestedBy: actor.user });
      request.log.info(
        { actor: actor.user, version: status.version, sha256: status.sha256, bytes: status.bytes },
        "appliance upgrade bundle accepted",
      );
      return reply.code(202).send(status);
    } catch (err) {
      const reason = (err as { reason?: keyof typeof UPGRADE_REFUSALS }).reason;
      if (reason && reason in UPGRADE_REFUSALS) throw new ApiError(UPGRADE_REFUSALS[reason], (err as Error).message);
      throw err;
    }
  });
};
