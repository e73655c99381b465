import type { FastifyPluginAsync } from "fastify";
import { ApiError } from "./errors.js";
import type { SurfaceOptions } from "./plugin.js";
import { EMPTY_QUERY, NAME_PARAMS } from "./schemas.js";
import { machineDetail, machineSummary, operationsFor } from "./views.js";

/**
 * `GET /machines` and `GET /machines/NAME`: what the backend holds, with status, quarantine and
 * the operations naming the Machine. Read-only; never a secret (views.ts scrubs).
 */
export const machinesPlugin: FastifyPluginAsync<SurfaceOptions> = async (app, { backend }) => {
  app.get("/machines", { schema: { querystring: EMPTY_QUERY } }, async () => {
    const machines = backend.list();
    const operations = backend.operations.list();
    return {
      resourceVersion: machines.resourceVersion,
      items: machines.map((machine) => {
        const name = machine.metadata.name;
        const mine = operations.filter(
          (op) => op.spec.machineRef === name || (op.status?.targets ?? []).some((t) => t.machineRef === name),
        );
        return machineSummary(machine, mine);
      }),
    };
  });

  app.get<{ Params: { name: string } }>(
    "/machines/:name",
    { schema: { params: NAME_PARAMS, querystring: EMPTY_QUERY } },
    async (request) => {
      const { name } = request.params;
      const machine = backend.get(name);
      if (!machine) throw new ApiError("MACHINE_NOT_FOUND", name, { machine: name });
      return machineDetail(machine, operationsFor(backend, name), backend.quarantine(name));
    },
  );
};
