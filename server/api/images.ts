import type { FastifyPluginAsync } from "fastify";
import type { ImageCatalog } from "../images/image-catalog.js";
import { ApiError } from "./errors.js";
import type { SurfaceOptions } from "./plugin.js";

/** Longest image reference accepted (server/oci/reference.ts has the same bound). */
const REF_SCHEMA = { type: "string", minLength: 1, maxLength: 4096, pattern: "^[^\\s\\u0000-\\u001f]+$" } as const;

const PULL_BODY = {
  type: "object",
  additionalProperties: false,
  properties: { ref: REF_SCHEMA },
} as const;

const GC_BODY = {
  type: "object",
  additionalProperties: false,
  properties: { all: { type: "boolean" } },
} as const;

/**
 * The images surface (docs/management-api.md, docs/images.md):
 * - `GET /images` → `{items: [{ref, state, architecture, digest?, bytes?, totalBytes?, reason?, machines}]}`;
 * - `POST /images/pull {ref?}` re-resolves now (every image without `ref`) → `{items}` as they are now;
 * - `POST /images/gc {all?}` deletes cached images no Machine uses (default all; `all: false` only
 *   beyond the --image-cache-budget) → `{removed, freedBytes, cacheBytes}`.
 */
export const imagesPlugin: FastifyPluginAsync<SurfaceOptions & { images: ImageCatalog }> = async (app, options) => {
  const { images } = options;
  app.get("/images", async () => ({ items: images.list() }));

  app.post<{ Body: { ref?: string } }>("/images/pull", { schema: { body: PULL_BODY } }, async (request) => {
    const actor = await options.actor(request);
    const items = images.pull(request.body.ref);
    if (request.body.ref !== undefined && items.length === 0) {
      throw new ApiError("IMAGE_NOT_FOUND", `no Machine uses ${request.body.ref}`);
    }
    request.log.info({ actor: actor.user, ref: request.body.ref ?? "(all)" }, "image pull requested");
    return { items };
  });

  app.post<{ Body: { all?: boolean } }>("/images/gc", { schema: { body: GC_BODY } }, async (request) => {
    const actor = await options.actor(request);
    const result = await images.gc({ all: request.body.all ?? true });
    request.log.info({ actor: actor.user, removed: result.removed.length, freedBytes: result.freedBytes }, "image gc");
    return result;
  });
};
