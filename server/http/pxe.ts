import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import type { BootEvent, BootEventBus, BootResult } from "../events/boot-events.js";
import { type MachineBackend, UNCHANGED } from "../inventory/backend.js";
import { setCondition } from "../inventory/conditions.js";
import type { Machine } from "../inventory/types.js";
import { RateLimiter } from "../util/rate-limiter.js";
import { type BoundedBody, boundedBodyParser } from "./bounded-body.js";
import type { ClientIdentity } from "./client-identity.js";
import { cloudInitCondition, parseCloudInitEvent } from "./cloudinit-event.js";
import { sendPlainError } from "./errors.js";
import type { HttpMetrics } from "./http-metrics.js";
import { leaseMac, machineForIp, requesterIp } from "./request-identity.js";

export interface PxePluginOptions {
  backend: MachineBackend;
  events: BootEventBus;
  identify: ClientIdentity;
  metrics: HttpMetrics;
  /** Clock for condition transition times. */
  now?: () => Date;
  /** Bytes of a webhook body that are read (spec §5.7: 1 MiB). */
  bodyLimitBytes?: number;
}

export const CLOUD_INIT_BODY_LIMIT = 1024 * 1024;
const WEBHOOK_ROUTE = "/cloudinit/log";

/**
 * Machine-facing status routes: `GET|POST /pxe/disable` (spec §5.8) and
 * `POST /cloudinit/log` (§5.7). Both accept any body of any content type (or none):
 * they have no JSON schema on purpose, because the clients (busybox wget in the
 * installer, cloud-init's webhook reporter) are fixed and must never be refused for
 * their framing. The webhook always answers 200 (cloud-init does not retry) except when
 * the body cannot be read (400). Status writes go through `backend.updateStatus`, which owns
 * conflict retries (spec §12 item 17) and runs the decision on the Machine it writes over.
 */
export const pxePlugin: FastifyPluginAsync<PxePluginOptions> = async (app, options) => {
  const { backend, events, identify, metrics } = options;
  const now = options.now ?? (() => new Date());
  const quiet = new RateLimiter();

  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", boundedBodyParser(options.bodyLimitBytes ?? CLOUD_INIT_BODY_LIMIT));

  const whoIs = (
    request: FastifyRequest,
  ): { ip: string | undefined; machine: Machine | undefined; mac: string | undefined } => {
    const ip = requesterIp(identify, request);
    const machine = machineForIp(backend, ip);
    return { ip, machine, mac: machine && ip ? leaseMac(machine, ip) : undefined };
  };

  const disable = async (request: FastifyRequest, reply: FastifyReply) => {
    const { ip, machine, mac } = whoIs(request);
    if (machine === undefined) {
      events.emit({ step: "pxe.disable", result: "not-found", ip, reason: "unknown-client" });
      return sendPlainError(reply, "NOT_FOUND");
    }
    const name = machine.metadata.name;
    const base = { step: "pxe.disable" as const, ip, mac, machine: name };
    try {
      // A quarantined Machine was served no install entry, so an installer finishing now is
      // stale or forged: record nothing (the operator decides what its counters are).
      const written = await backend.updateStatus(name, (current) => {
        const specRepave = current.spec.operations?.repaveCounter ?? 0;
        const status = current.status ?? {};
        const counterPending = specRepave > (status.operations?.repaveCounter ?? 0);
        // console (issue 8): a repave asked through the API is a HostReplace operation, not a
        // counter bump; its flow waits for this call (stage WaitingRepave) to see Repaved=True.
        if (!counterPending && !awaitsInstaller(backend, name)) return UNCHANGED;
        return {
          ...status,
          operations: counterPending ? { ...status.operations, repaveCounter: specRepave } : status.operations,
          conditions: setCondition(
            status.conditions,
            {
              type: "Repaved",
              status: "True",
              reason: "Succeeded",
              message: `image=${current.spec.pxe?.image ?? ""}`,
              observedGeneration: current.metadata.generation ?? 0,
            },
            now(),
          ),
        };
      });
      if (written.outcome === "unchanged") {
        events.emit({ ...base, result: "ignored", reason: "already-cleared" });
      } else {
        const repaveCounter = written.machine.status?.operations?.repaveCounter;
        request.log.info({ machine: name, repaveCounter }, "repave completed, PXE disabled");
        events.emit({ ...base, result: "ok", detail: { repaveCounter, attempts: written.attempts } });
      }
      return reply.code(200).send();
    } catch (error) {
      if (errorCode(error) === "NOT_FOUND") {
        events.emit({ ...base, result: "not-found", reason: "machine-deleted" });
        return sendPlainError(reply, "NOT_FOUND");
      }
      if (errorCode(error) === "QUARANTINED") {
        request.log.warn({ machine: name }, "/pxe/disable refused: the Machine's state is quarantined");
        events.emit({ ...base, result: "error", reason: "quarantined" });
        return sendPlainError(reply, "PXE_DISABLE_FAILED");
      }
      request.log.error({ err: error, machine: name }, "updating Machine status for /pxe/disable failed");
      events.emit({ ...base, result: "error", reason: (error as Error).message });
      return sendPlainError(reply, "PXE_DISABLE_FAILED");
    }
  };

  const webhook = async (request: FastifyRequest, reply: FastifyReply) => {
    const body = request.body as BoundedBody | undefined;
    if (body?.truncated) reply.header("connection", "close");
    const { ip, machine, mac } = whoIs(request);
    const report = (result: BootResult, reason?: string, detail?: BootEvent["detail"]) =>
      events.emit({ step: "cloudinit.event", result, ip, mac, machine: machine?.metadata.name, reason, detail });
    const event = parseCloudInitEvent(body?.bytes ?? Buffer.alloc(0));
    if (event === undefined) {
      metrics.malformed.inc({ route: WEBHOOK_ROUTE, reason: "unparsable" });
      if (quiet.check(`unparsable|${ip}`).allowed) {
        const excerpt = (body?.bytes ?? Buffer.alloc(0)).subarray(0, 256).toString("utf8");
        request.log.warn(
          { ip, body: excerpt, truncated: body?.truncated ?? false },
          "cloud-init log: unparsable event",
        );
      }
      report("ignored", "unparsable");
      return reply.code(200).send();
    }
    const detail = { stage: event.name, eventType: event.eventType, result: event.result || undefined };
    if (cloudInitCondition(event, 0) === undefined) {
      report("ignored", "event-type", detail);
      return reply.code(200).send();
    }
    if (machine === undefined) {
      if (quiet.check(`stranger|${ip}`).allowed)
        request.log.warn({ ip, stage: event.name }, "cloud-init log from an unknown client");
      report("not-found", "unknown-client", detail);
      return reply.code(200).send();
    }
    const name = machine.metadata.name;
    try {
      // Cloud-init progress carries no trust, so it is recorded for a quarantined Machine too.
      const written = await backend.updateStatus(
        name,
        (current) => {
          const condition = cloudInitCondition(event, current.metadata.generation)!;
          const status = current.status ?? {};
          return { ...status, conditions: setCondition(status.conditions, condition, now()) };
        },
        { allowQuarantined: true },
      );
      const condition = written.machine.status?.conditions?.find((c) => c.type === "CloudInitDone");
      report("ok", undefined, {
        ...detail,
        condition: condition ? `${condition.status}/${condition.reason}` : undefined,
      });
    } catch (error) {
      if (errorCode(error) === "NOT_FOUND") {
        report("not-found", "machine-deleted", detail);
        return reply.code(200).send();
      }
      // Still 200: cloud-init does not retry, and a 5xx would only add noise on the machine.
      request.log.error({ err: error, machine: name }, "cloud-init condition: updating Machine status failed");
      report("error", (error as Error).message, detail);
    }
    return reply.code(200).send();
  };

  app.route({ method: ["GET", "POST"], url: "/pxe/disable", exposeHeadRoute: false, handler: disable });
  app.route({ method: "POST", url: WEBHOOK_ROUTE, handler: webhook });
};

/** Backend errors are told apart by `code` (NOT_FOUND, QUARANTINED, CONFLICT), not by class. */
/** console (issue 8): a HostReplace operation on this Machine waits for the installer's /pxe/disable. */
function awaitsInstaller(backend: MachineBackend, name: string): boolean {
  return backend.operations
    .list()
    .some(
      (op) =>
        op.spec.operationKind === "HostReplace" &&
        (op.status?.targets ?? []).some((t) => t.machineRef === name && t.stage === "WaitingRepave"),
    );
}

function errorCode(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code;
}
