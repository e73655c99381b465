import type { FastifyPluginAsync } from "fastify";
import type { Registry } from "prom-client";

export interface MetricsPluginOptions {
  registry: Registry;
}

/** `GET /metrics`: Prometheus text exposition of the registry passed in. */
export const metricsPlugin: FastifyPluginAsync<MetricsPluginOptions> = async (app, options) => {
  app.get("/metrics", async (_request, reply) => {
    const text = await options.registry.metrics();
    return reply.type(options.registry.contentType).send(text);
  });
};
