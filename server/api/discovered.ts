import type { FastifyPluginAsync } from "fastify";
import type { DiscoveryStore } from "../inventory/backend.js";
import type { InventoryWriter } from "../inventory/inventory-writer.js";
import { API_VERSION } from "../inventory/types.js";
import { ApiError } from "./errors.js";
import { writeErrorToApi } from "./machine-edit.js";
import type { SurfaceOptions } from "./plugin.js";
import { EMPTY_QUERY, NAME_SCHEMA } from "./schemas.js";
import { machineSummary } from "./views.js";

const MAC = { type: "string", pattern: "^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$" } as const;

const ENROLL_BODY = {
  type: "object",
  required: ["name", "ipv4", "subnetMask", "gateway"],
  additionalProperties: false,
  properties: {
    name: NAME_SCHEMA,
    image: { type: "string", minLength: 1, maxLength: 2048 },
    ipv4: { type: "string", maxLength: 15 },
    subnetMask: { type: "string", maxLength: 15 },
    gateway: { type: "string", maxLength: 15 },
    dns: { type: "array", maxItems: 8, items: { type: "string", maxLength: 15 } },
    labels: { type: "object", maxProperties: 64, additionalProperties: { type: "string", maxLength: 63 } },
  },
} as const;

interface EnrollBody {
  name: string;
  image?: string;
  ipv4: string;
  subnetMask: string;
  gateway: string;
  dns?: string[];
  labels?: Record<string, string>;
}

export interface DiscoveredOptions extends SurfaceOptions {
  discovery?: DiscoveryStore;
  writer?: InventoryWriter;
}

/**
 * `GET /discovered`: MACs that asked for DHCP and match no Machine (never answered, only
 * recorded). `POST /discovered/MAC/enroll` writes a Machine with that MAC's lease (the same
 * writer as `POST /machines`), so its next DHCP DISCOVER gets an offer.
 */
export const discoveredPlugin: FastifyPluginAsync<DiscoveredOptions> = async (app, options) => {
  const { backend } = options;
  app.get("/discovered", { schema: { querystring: EMPTY_QUERY } }, async () => {
    const items = (options.discovery?.list() ?? [])
      // A MAC enrolled since it was recorded is no longer a stranger.
      .filter((client) => !backend.byMac(client.mac))
      .map((client) => {
        const recent = options.events.recent({ mac: client.mac }).at(-1);
        return recent?.ip ? { ...client, lastIp: recent.ip } : client;
      });
    return { items };
  });

  app.post<{ Params: { mac: string }; Body: EnrollBody }>(
    "/discovered/:mac/enroll",
    {
      schema: {
        params: { type: "object", required: ["mac"], additionalProperties: false, properties: { mac: MAC } },
        body: ENROLL_BODY,
        querystring: EMPTY_QUERY,
      },
    },
    async (request, reply) => {
      const mac = request.params.mac.toLowerCase();
      const body = request.body;
      if (!options.writer)
        throw new ApiError("READ_ONLY_INVENTORY", "this backend's Machines are not written from the API");
      const client = options.discovery?.list().find((c) => c.mac === mac);
      if (!client) throw new ApiError("DISCOVERED_NOT_FOUND", mac);
      const image = body.image ?? commonImage(backend.list().map((m) => m.spec.pxe?.image));
      if (!image)
        throw new ApiError("VALIDATION_FAILED", "image: is required (no Machine to take the usual image from)");
      const lease: Record<string, unknown> = {
        mac,
        ipv4: body.ipv4,
        subnetMask: body.subnetMask,
        gateway: body.gateway,
      };
      if (body.dns) lease.dns = body.dns;
      const machine = {
        apiVersion: API_VERSION,
        kind: "Machine",
        metadata: { name: body.name, ...(body.labels ? { labels: body.labels } : {}) },
        spec: { pxe: { image, dhcpLeases: [lease] } },
      };
      try {
        const created = await options.writer.create(machine);
        options.discovery?.remove?.(mac);
        return reply.code(201).send(machineSummary(created, []));
      } catch (err) {
        throw writeErrorToApi(err, body.name);
      }
    },
  );
};

/** The image most Machines use (ties: the first in name order). */
function commonImage(images: Array<string | undefined>): string | undefined {
  const counts = new Map<string, number>();
  for (const image of images) if (image) counts.set(image, (counts.get(image) ?? 0) + 1);
  let best: string | undefined;
  for (const [image, count] of counts) if (best === undefined || count > counts.get(best)!) best = image;
  return best;
}
