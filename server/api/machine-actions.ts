import type { FastifyPluginAsync } from "fastify";
import type { ActionResult, MachineAction } from "./actions.js";
import type { SurfaceOptions } from "./plugin.js";
import { ACTION_BODY, NAME_PARAMS, TTL_SCHEMA } from "./schemas.js";
import { operationView } from "./views.js";

const POWER_BODY = {
  type: "object",
  required: ["action"],
  additionalProperties: false,
  properties: { action: { type: "string", enum: ["on", "off", "cycle"] }, ttlSecondsAfterFinished: TTL_SCHEMA },
} as const;

const REPIN_BODY = {
  type: "object",
  additionalProperties: false,
  properties: {
    // SHA-256 of the BMC's leaf certificate, checked out of band; absent: capture again at the next contact.
    fingerprint: { type: "string", maxLength: 95 },
  },
} as const;

type Params = { name: string };

/**
 * Machine actions: `POST /machines/NAME/power {action: on|off|cycle}`, `/reboot`, `/repave`
 * (each becomes a MachineOperation the BMC flows execute; 202 with the operation) and
 * `/repin-bmc` (a status write; 200). Refused for unknown, quarantined and BMC-less Machines.
 */
export const machineActionsPlugin: FastifyPluginAsync<SurfaceOptions> = async (app, { actions, actor }) => {
  const answer = (result: ActionResult) => ({
    operation: operationView(result.operation),
    eventsSince: result.eventsSince,
  });

  app.post<{ Params: Params; Body: { action: "on" | "off" | "cycle"; ttlSecondsAfterFinished?: number } }>(
    "/machines/:name/power",
    { schema: { params: NAME_PARAMS, body: POWER_BODY } },
    async (request, reply) => {
      const action = `power-${request.body.action}` as MachineAction;
      const result = await actions.request(request.params.name, action, await actor(request), request.body);
      return reply.code(202).send(answer(result));
    },
  );

  for (const action of ["reboot", "repave"] as const) {
    app.post<{ Params: Params; Body: { ttlSecondsAfterFinished?: number } }>(
      `/machines/:name/${action}`,
      { schema: { params: NAME_PARAMS, body: ACTION_BODY } },
      async (request, reply) => {
        const result = await actions.request(request.params.name, action, await actor(request), request.body);
        return reply.code(202).send(answer(result));
      },
    );
  }

  app.post<{ Params: Params; Body: { fingerprint?: string } }>(
    "/machines/:name/repin-bmc",
    { schema: { params: NAME_PARAMS, body: REPIN_BODY } },
    async (request) => actions.repin(request.params.name, await actor(request), request.body.fingerprint),
  );
};
