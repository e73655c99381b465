import { constants as fsConstants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import type { OutgoingHttpHeaders } from "node:http";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import type { BootEventBus, BootResult, BootStep } from "../events/boot-events.js";
import type { MachineBackend } from "../inventory/backend.js";
import type { Machine } from "../inventory/types.js";
import type { Artifact, ArtifactResolver } from "../netboot/artifact.js";
import { RateLimiter } from "../util/rate-limiter.js";
import type { ClientIdentity } from "./client-identity.js";
import { sendPlainError } from "./errors.js";
import {
  contentTypeFor,
  etagFor,
  evaluatePreconditions,
  lastModifiedFor,
  type RangeSelection,
  selectRange,
} from "./file-response.js";
import type { HttpMetrics } from "./http-metrics.js";
import { leaseMac, machineForIp, requesterIp } from "./request-identity.js";
import { loadSendfileAddon, sendFileBody, zeroCopySocketFd } from "./sendfile-body.js";

export interface ArtifactsPluginOptions {
  backend: MachineBackend;
  resolver: ArtifactResolver;
  events: BootEventBus;
  identify: ClientIdentity;
  metrics: HttpMetrics;
  /**
   * Read chunk size for file streaming. Default 256 KiB: on loopback with 8/32 clients it
   * beat 1 MiB and 4 MiB (the chunk stays in CPU cache between the file read and the
   * socket write), while still needing only 4 reads per MiB.
   */
  streamChunkBytes?: number;
  /**
   * Send file bodies with sendfile(2) when the native addon is built and the connection is
   * plain TCP (default true); otherwise, and always for TLS or `inject`, stream.
   */
  zeroCopy?: boolean;
  /** Where the sendfile addon is (default: server/native/build/Release). A missing file means streams. */
  sendfileAddonPath?: string;
  /** A zero-copy body gives up when the client accepts nothing for this long (the server's idle timeout). */
  idleMs: number;
}

const DEFAULT_CHUNK_BYTES = 256 * 1024;
/** Per thread-pool job: 8 MiB keeps the per-job overhead negligible and a pool thread busy < 1 s per turn on a LAN. */
const SENDFILE_JOB_BYTES = 8 * 1024 * 1024;

interface RequestContext {
  path: string;
  ip: string | undefined;
  machine: Machine | undefined;
  mac: string | undefined;
  head: boolean;
}

/**
 * Catch-all `GET|HEAD /*`: source IP → Machine → ArtifactResolver (spec §5.3). Files are
 * streamed with validators, single ranges and conditionals; templates come back rendered.
 */
export const artifactsPlugin: FastifyPluginAsync<ArtifactsPluginOptions> = async (app, options) => {
  const { backend, resolver, events, identify, metrics } = options;
  const chunkBytes = options.streamChunkBytes ?? DEFAULT_CHUNK_BYTES;
  const errorLog = new RateLimiter();
  const sendfileAddon = options.zeroCopy === false ? undefined : loadSendfileAddon(options.sendfileAddonPath);

  const emit = (
    ctx: RequestContext,
    step: BootStep,
    result: BootResult,
    extra: { reason?: string; detail?: Record<string, string | number | boolean | undefined> } = {},
  ) => {
    events.emit({
      step,
      result,
      ip: ctx.ip,
      machine: ctx.machine?.metadata.name,
      mac: ctx.mac,
      reason: extra.reason,
      detail: { path: ctx.path, method: ctx.head ? "HEAD" : "GET", ...extra.detail },
    });
  };

  app.route({
    method: ["GET", "HEAD"],
    url: "/*",
    exposeHeadRoute: false,
    handler: async (request, reply) => {
      const path = (request.params as { "*"?: string })["*"] ?? "";
      const ip = requesterIp(identify, request);
      const machine = path === "" ? undefined : machineForIp(backend, ip);
      const ctx: RequestContext = {
        path,
        ip,
        machine,
        mac: machine && ip ? leaseMac(machine, ip) : undefined,
        head: request.method === "HEAD",
      };
      if (machine === undefined) {
        emit(ctx, "http.artifact", "not-found", {
          reason: path === "" ? "empty-path" : "unknown-client",
          detail: { status: 404 },
        });
        return sendPlainError(reply, "NOT_FOUND");
      }
      const artifact = await resolver.resolve(machine, path);
      return answer(request, reply, ctx, artifact);
    },
  });

  async function answer(request: FastifyRequest, reply: FastifyReply, ctx: RequestContext, artifact: Artifact) {
    switch (artifact.kind) {
      case "file":
        return serveFile(request, reply, ctx, artifact);
      case "rendered": {
        reply.code(200).header("content-type", artifact.contentType).header("content-length", artifact.body.length);
        metrics.artifactBytes.inc({ kind: "rendered" }, ctx.head ? 0 : artifact.body.length);
        emit(ctx, "http.template", "ok", { detail: { status: 200, bytes: ctx.head ? 0 : artifact.body.length } });
        return reply.send(ctx.head ? undefined : artifact.body);
      }
      case "not-ready":
        emit(ctx, "http.artifact", "not-ready", { reason: artifact.reason, detail: { status: 503 } });
        return sendPlainError(reply, "ARTIFACT_NOT_READY", {
          headers: { "retry-after": String(artifact.retryAfterSeconds) },
        });
      case "not-found":
        emit(ctx, "http.artifact", "not-found", { reason: artifact.reason, detail: { status: 404 } });
        return sendPlainError(reply, "NOT_FOUND");
      case "error":
        if (errorLog.check(`${ctx.ip}|${artifact.reason}`).allowed) {
          request.log.warn(
            { ip: ctx.ip, machine: ctx.machine?.metadata.name, path: ctx.path, reason: artifact.reason },
            "artifact failed",
          );
        }
        emit(ctx, "http.artifact", "error", { reason: artifact.reason, detail: { status: 404 } });
        // 404, not 500: see the decision in errors.ts.
        return sendPlainError(reply, "NOT_FOUND");
    }
  }

  async function serveFile(
    request: FastifyRequest,
    reply: FastifyReply,
    ctx: RequestContext,
    artifact: Extract<Artifact, { kind: "file" }>,
  ) {
    let handle: FileHandle;
    try {
      // A fresh lookup beneath the image root (docs/security.md); a bare path (test doubles) at least refuses a final symlink.
      handle = artifact.open
        ? await artifact.open()
        : await open(artifact.absPath, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    } catch {
      emit(ctx, "http.artifact", "not-found", { reason: "vanished", detail: { status: 404 } });
      return sendPlainError(reply, "NOT_FOUND");
    }
    let keepHandle = false;
    try {
      // Validators and length come from the opened file, so headers and bytes agree.
      const stat = await handle.stat();
      if (!stat.isFile()) {
        emit(ctx, "http.artifact", "not-found", { reason: "not-a-file", detail: { status: 404 } });
        return sendPlainError(reply, "NOT_FOUND");
      }
      const file = { size: stat.size, mtime: stat.mtime };
      reply
        .header("accept-ranges", "bytes")
        .header("etag", etagFor(file))
        .header("last-modified", lastModifiedFor(file));
      const precondition = evaluatePreconditions(request.headers, file);
      if (precondition === "not-modified") {
        emit(ctx, "http.artifact", "ok", { reason: "not-modified", detail: { status: 304, bytes: 0 } });
        return reply.code(304).send();
      }
      if (precondition === "precondition-failed") {
        emit(ctx, "http.artifact", "ignored", { reason: "precondition-failed", detail: { status: 412 } });
        return sendPlainError(reply, "PRECONDITION_FAILED");
      }
      const range: RangeSelection = selectRange(request.headers, file);
      if (range.kind === "unsatisfiable") {
        emit(ctx, "http.artifact", "ignored", { reason: "range-not-satisfiable", detail: { status: 416 } });
        return sendPlainError(reply, "RANGE_NOT_SATISFIABLE", { headers: { "content-range": `bytes */${file.size}` } });
      }
      const start = range.kind === "partial" ? range.start : 0;
      const end = range.kind === "partial" ? range.end : file.size - 1;
      const length = end - start + 1;
      const status = range.kind === "partial" ? 206 : 200;
      reply.code(status).header("content-type", contentTypeFor(ctx.path)).header("content-length", length);
      if (range.kind === "partial") reply.header("content-range", `bytes ${start}-${end}/${file.size}`);
      if (ctx.head || length === 0) {
        emit(ctx, "http.artifact", "ok", { detail: { status, bytes: 0, size: file.size } });
        return reply.send(ctx.head ? undefined : Buffer.alloc(0));
      }
      // "finish": the last byte went to the socket; "close" without it: the client left early.
      let reported = false;
      let bytesSoFar = () => 0;
      const report = (complete: boolean, transfer: "sendfile" | "stream") => {
        if (reported) return;
        reported = true;
        const bytes = complete ? length : bytesSoFar();
        metrics.artifactBytes.inc({ kind: "file" }, bytes);
        emit(ctx, "http.artifact", complete ? "ok" : "aborted", {
          // The connection closed before the last byte: the client left, or the idle timeout cut a stall.
          reason: complete ? undefined : "incomplete",
          detail: {
            status,
            bytes,
            size: file.size,
            transfer,
            ...(range.kind === "partial" ? { range: `${start}-${end}` } : {}),
          },
        });
      };
      if (sendfileAddon !== undefined && zeroCopySocketFd(reply.raw.socket) !== undefined) {
        // Fastify steps aside (onResponse still runs on "finish"); the handle lives until the body is done.
        keepHandle = true;
        reply.hijack();
        void sendFileBody({
          addon: sendfileAddon,
          response: reply.raw,
          statusCode: status,
          headers: reply.getHeaders() as OutgoingHttpHeaders,
          fileFd: handle.fd,
          start,
          length,
          jobBytes: SENDFILE_JOB_BYTES,
          idleMs: options.idleMs,
        })
          .then((result) => {
            // Success means every byte is in the kernel, as "finish" means for a stream.
            bytesSoFar = () => result.bytes;
            report(result.error === undefined, "sendfile");
          })
          .finally(() => handle.close().catch(() => undefined));
        return reply;
      }
      const stream = handle.createReadStream({ start, end, highWaterMark: chunkBytes, autoClose: true });
      keepHandle = true;
      bytesSoFar = () => stream.bytesRead;
      reply.raw.once("finish", () => report(true, "stream"));
      reply.raw.once("close", () => {
        report(false, "stream");
        if (!stream.destroyed) stream.destroy();
      });
      return reply.send(stream);
    } finally {
      if (!keepHandle) await handle.close().catch(() => undefined);
    }
  }
};
