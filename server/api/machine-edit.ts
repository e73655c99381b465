import type { FastifyPluginAsync } from "fastify";
import { InventoryWriteError, type InventoryWriter } from "../inventory/inventory-writer.js";
import type { Machine } from "../inventory/types.js";
import { ApiError } from "./errors.js";
import type { SurfaceOptions } from "./plugin.js";
import { EMPTY_QUERY, NAME_PARAMS } from "./schemas.js";
import { machineSummary, operationsFor } from "./views.js";

/** `{machine: <Machine>}`: the Machine itself is checked by the inventory's own schema (strict, names the field). */
export const MACHINE_BODY = {
  type: "object",
  required: ["machine"],
  additionalProperties: false,
  properties: { machine: { type: "object" } },
} as const;

export function writeErrorToApi(err: unknown, name: string): unknown {
  if (!(err instanceof InventoryWriteError)) return err;
  switch (err.code) {
    case "EXISTS":
      return new ApiError("MACHINE_EXISTS", err.message, { machine: name });
    case "NOT_FOUND":
      return new ApiError("MACHINE_NOT_FOUND", name, { machine: name });
    case "INVALID":
      return new ApiError("INVALID_MACHINE", err.errors.length > 1 ? err.errors.join("; ") : err.message, {
        machine: name,
      });
    default:
      return new ApiError("READ_ONLY_INVENTORY", err.message, { machine: name });
  }
}

export interface MachineEditOptions extends SurfaceOptions {
  /** Absent (cluster mode until the cluster issue): every write answers 409 READ_ONLY_INVENTORY. */
  writer?: InventoryWriter;
}

/**
 * `POST /machines`, `PUT /machines/NAME`, `DELETE /machines/NAME`: standalone, they edit the
 * YAML files of the inventory folder (comments and layout kept: file-inventory-writer.ts).
 */
export const machineEditPlugin: FastifyPluginAsync<MachineEditOptions> = async (app, options) => {
  const { backend } = options;
  const writer = (): InventoryWriter => {
    if (!options.writer)
      throw new ApiError("READ_ONLY_INVENTORY", "this backend's Machines are not written from the API");
    return options.writer;
  };
  const summary = (machine: Machine) => machineSummary(machine, operationsFor(backend, machine.metadata.name));

  app.post<{ Body: { machine: Record<string, unknown> } }>(
    "/machines",
    { schema: { body: MACHINE_BODY, querystring: EMPTY_QUERY } },
    async (request, reply) => {
      const name = String((request.body.machine.metadata as { name?: unknown } | undefined)?.name ?? "");
      try {
        return reply.code(201).send(summary(await writer().create(request.body.machine)));
      } catch (err) {
        throw writeErrorToApi(err, name);
      }
    },
  );

  app.put<{ Params: { name: string }; Body: { machine: Record<string, unknown> } }>(
    "/machines/:name",
    { schema: { params: NAME_PARAMS, body: MACHINE_BODY, querystring: EMPTY_QUERY } },
    async (request) => {
      try {
        return summary(await writer().update(request.params.name, request.body.machine));
      } catch (err) {
        throw writeErrorToApi(err, request.params.name);
      }
    },
  );

  app.delete<{ Params: { name: string } }>(
    "/machines/:name",
    { schema: { params: NAME_PARAMS, querystring: EMPTY_QUERY } },
    async (request, reply) => {
      try {
        await writer().delete(request.params.name);
      } catch (err) {
        throw writeErrorToApi(err, request.params.name);
      }
      return reply.code(204).send();
    },
  );
};
