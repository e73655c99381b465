import type { FastifyPluginAsync } from "fastify";
import { type MachineOperationInput, OPERATION_KINDS } from "../inventory/machine-operation.js";
import { API_VERSION } from "../inventory/types.js";
import { operationName } from "./actions.js";
import { ApiError } from "./errors.js";
import type { SurfaceOptions } from "./plugin.js";
import { NAME_PARAMS, NAME_SCHEMA, TTL_SCHEMA } from "./schemas.js";
import { operationView } from "./views.js";

const STRING_MAP = {
  type: "object",
  maxProperties: 64,
  additionalProperties: { type: "string", maxLength: 4096 },
} as const;

/** The spec §2.7 shape; the store checks the rest (one of machineRef/selector, formats, control characters). */
const CREATE_BODY = {
  type: "object",
  required: ["spec"],
  additionalProperties: false,
  properties: {
    apiVersion: { type: "string", const: API_VERSION },
    kind: { type: "string", const: "MachineOperation" },
    metadata: {
      type: "object",
      additionalProperties: false,
      properties: { name: NAME_SCHEMA, labels: STRING_MAP, annotations: STRING_MAP },
    },
    spec: {
      type: "object",
      required: ["operationKind"],
      additionalProperties: false,
      properties: {
        machineRef: NAME_SCHEMA,
        machineSelector: {
          type: "object",
          additionalProperties: false,
          properties: {
            matchLabels: STRING_MAP,
            matchExpressions: {
              type: "array",
              maxItems: 32,
              items: {
                type: "object",
                required: ["key", "operator"],
                additionalProperties: false,
                properties: {
                  key: { type: "string", minLength: 1, maxLength: 317 },
                  operator: { type: "string", enum: ["In", "NotIn", "Exists", "DoesNotExist"] },
                  values: { type: "array", maxItems: 64, items: { type: "string", maxLength: 63 } },
                },
              },
            },
          },
        },
        operationKind: { type: "string", enum: [...OPERATION_KINDS] },
        parameters: STRING_MAP,
        ttlSecondsAfterFinished: TTL_SCHEMA,
      },
    },
  },
} as const;

const LIST_QUERY = {
  type: "object",
  additionalProperties: false,
  properties: { machine: NAME_SCHEMA },
} as const;

type CreateBody = Omit<MachineOperationInput, "metadata"> & { metadata?: Partial<MachineOperationInput["metadata"]> };

/**
 * MachineOperations: `GET /operations[?machine=NAME]`, `GET /operations/NAME`, `POST /operations`
 * (201; the name is generated when absent; who asked is recorded in the annotations
 * `metalman.io/requested-by` and `metalman.io/requested-via`, which a caller cannot forge).
 */
export const operationsPlugin: FastifyPluginAsync<SurfaceOptions> = async (
  app,
  { backend, actions, actor, events },
) => {
  app.get<{ Querystring: { machine?: string } }>(
    "/operations",
    { schema: { querystring: LIST_QUERY } },
    async (request) => {
      const list = backend.operations.list();
      const machine = request.query.machine;
      const items =
        machine === undefined
          ? list
          : list.filter(
              (op) =>
                op.spec.machineRef === machine || (op.status?.targets ?? []).some((t) => t.machineRef === machine),
            );
      return { resourceVersion: list.resourceVersion, items: items.map(operationView) };
    },
  );

  app.get<{ Params: { name: string } }>("/operations/:name", { schema: { params: NAME_PARAMS } }, async (request) => {
    const operation = backend.operations.get(request.params.name);
    if (!operation) {
      throw new ApiError("OPERATION_NOT_FOUND", request.params.name, { operation: request.params.name });
    }
    return operationView(operation);
  });

  app.post<{ Body: CreateBody }>("/operations", { schema: { body: CREATE_BODY } }, async (request, reply) => {
    const body = request.body;
    const target = body.spec.machineRef ?? "selector";
    const name = body.metadata?.name ?? operationName(target, body.spec.operationKind.toLowerCase(), new Date());
    const eventsSince = events.lastSeq;
    const operation = await actions.create(
      { ...body, metadata: { ...body.metadata, name } } as MachineOperationInput,
      await actor(request),
    );
    return reply.code(201).send({ operation: operationView(operation), eventsSince });
  });
};
