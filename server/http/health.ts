import type { FastifyPluginAsync } from "fastify";
import { sendPlainError } from "./errors.js";

export interface ReadinessCheck {
  ok: boolean;
  detail?: string;
}

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, ReadinessCheck>;
}

export type Readiness = () => ReadinessReport | Promise<ReadinessReport>;

export interface HealthPluginOptions {
  /** Omitted → `/readyz` is not registered (the netboot port keeps only `/healthz`, like upstream). */
  readiness?: Readiness;
  /**
   * Whether failing checks carry their detail (file names, YAML messages). True only on the
   * health listener (`--health-bind-address`); the machine-facing netboot port names the failing
   * checks and nothing more (docs/security.md). Default false.
   */
  details?: boolean;
}

/**
 * `/healthz`: the process answers (200 `ok`, upstream body). `/readyz`: 200 `ok` when
 * `readiness()` says so, else 503 listing the failing checks one per line in the
 * Kubernetes style (`[-]name failed: detail`), so `kubectl describe` shows the reason. With
 * `details: false` a line is `[-]name failed` only.
 */
export const healthPlugin: FastifyPluginAsync<HealthPluginOptions> = async (app, options) => {
  app.get("/healthz", async (_request, reply) => reply.type("text/plain; charset=utf-8").send("ok"));
  const readiness = options.readiness;
  if (readiness === undefined) return;
  app.get("/readyz", async (request, reply) => {
    let report: ReadinessReport;
    try {
      report = await readiness();
    } catch (error) {
      request.log.error({ err: error }, "readiness callback failed");
      return sendPlainError(reply, "NOT_READY", { body: "[-]readiness failed: callback threw\nreadyz check failed" });
    }
    // cluster sync (issue 10): `?verbose` lists every check, kube-apiserver style, so a ready
    // appliance can still say "offline, serving the last-known state" (details on the health port only).
    if (report.ready && options.details === true && "verbose" in (request.query as object)) {
      const lines = Object.entries(report.checks).map(([name, c]) => `[+]${name} ok${c.detail ? `: ${c.detail}` : ""}`);
      return reply.type("text/plain; charset=utf-8").send([...lines, "readyz check passed"].join("\n"));
    }
    if (report.ready) return reply.type("text/plain; charset=utf-8").send("ok");
    const failing = Object.entries(report.checks)
      .filter(([, check]) => !check.ok)
      .map(([name, check]) =>
        options.details === true ? `[-]${name} failed: ${check.detail ?? "not ok"}` : `[-]${name} failed`,
      );
    return sendPlainError(reply, "NOT_READY", { body: [...failing, "readyz check failed"].join("\n") });
  });
};
