import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { loadAddon } from "../native/addon-loader.js";

/**
 * Zero-copy response bodies with Linux sendfile(2) (server/native/src/sendfile.c). A plain
 * stream copies every byte through a Buffer twice; on a 2-core appliance serving 512 MiB
 * images to dozens of machines that copy is the bottleneck, not the network.
 */

/** File name node-gyp gives the addon (target_name in server/native/binding.gyp). */
export const SENDFILE_ADDON_FILE = "metalman_sendfile.node";

export interface SendfileJob {
  /** Idempotent: shuts the socket down so a job waiting for a stalled client ends at once. */
  cancel(): void;
}

export interface SendfileAddon {
  /** `code` is null on success, else an errno name ("EPIPE", "ETIMEDOUT", "ECANCELED", ...). */
  sendfile(
    socketFd: number,
    fileFd: number,
    offset: number,
    length: number,
    timeoutMs: number,
    callback: (code: string | null, bytesSent: number) => void,
  ): SendfileJob;
}

/** The addon, or undefined when it is not built or does not load: callers then stream. */
export function loadSendfileAddon(addonPath?: string): SendfileAddon | undefined {
  if (process.platform !== "linux") return undefined;
  const loaded = loadAddon<SendfileAddon>(SENDFILE_ADDON_FILE, "sendfile", addonPath);
  return loaded.ok ? loaded.addon : undefined;
}

interface SocketInternals {
  encrypted?: boolean;
  _handle?: { fd?: unknown } | null;
}

/**
 * The kernel descriptor of a plain TCP socket, or undefined (TLS, a fake socket from
 * `inject`, a pipe, a destroyed socket): sendfile would bypass TLS or has nothing to write to.
 */
export function zeroCopySocketFd(socket: Socket | null | undefined): number | undefined {
  if (!socket || socket.destroyed || !socket.writable) return undefined;
  const internals = socket as unknown as SocketInternals;
  if (internals.encrypted) return undefined;
  // remoteFamily is set only for IP sockets (not pipes).
  if (socket.remoteFamily !== "IPv4" && socket.remoteFamily !== "IPv6") return undefined;
  const fd = internals._handle?.fd;
  return typeof fd === "number" && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}

export interface SendfileBodyOptions {
  addon: SendfileAddon;
  response: ServerResponse;
  /** Status and complete headers, including content-length = length. */
  statusCode: number;
  headers: OutgoingHttpHeaders;
  fileFd: number;
  start: number;
  length: number;
  /**
   * Bytes per thread-pool job. Bounded so that many clients share the 4 pool threads
   * fairly and JS regains control (socket idle timer, cancellation) between jobs.
   */
  jobBytes: number;
  /** The body is abandoned when the client accepts nothing for this long (the server's idle timeout). */
  idleMs: number;
}

export interface SendfileBodyResult {
  /** Body bytes handed to the kernel. */
  bytes: number;
  /** Why the body is incomplete (errno name, or "closed" when the socket went away); undefined when complete. */
  error?: string;
}

/** Longest a pool thread waits for one client's full socket before it serves the next job. */
const MAX_WAIT_SLICE_MS = 250;

function headersWritten(socket: Socket): Promise<boolean> {
  if (socket.writableLength === 0) return Promise.resolve(true);
  // Writes complete in order: when this empty write is done, the headers are in the kernel.
  return new Promise((resolve) => socket.write(Buffer.alloc(0), (error) => resolve(!error)));
}

/**
 * Writes the head through Node, then the body with sendfile(2) straight from the file to
 * the socket, then ends the response (no body bytes through Node, so `finish` still fires
 * and keep-alive works). On failure the socket is destroyed: the body is truncated.
 * Never rejects. The caller keeps `fileFd` open until the promise settles.
 */
export async function sendFileBody(options: SendfileBodyOptions): Promise<SendfileBodyResult> {
  const { addon, response, fileFd, start, length } = options;
  const socket = response.socket;
  let current: SendfileJob | undefined;
  let closed = false;
  const onClose = () => {
    closed = true;
    current?.cancel();
  };
  response.once("close", onClose);
  let sent = 0;
  try {
    response.writeHead(options.statusCode, options.headers);
    response.flushHeaders();
    const socketFd = zeroCopySocketFd(socket);
    if (socket === null || socketFd === undefined || !(await headersWritten(socket)) || closed) {
      return fail(response, sent, "closed");
    }
    let lastProgress = Date.now();
    while (sent < length) {
      // Same tick as the dup() in the addon: Node has not closed (and the kernel not reused) the fd.
      if (closed || zeroCopySocketFd(socket) !== socketFd) return fail(response, sent, "closed");
      const jobLength = Math.min(options.jobBytes, length - sent);
      // A job waits for a full socket at most one slice, so stalled clients cannot occupy the pool.
      const waitMs = Math.max(1, Math.min(MAX_WAIT_SLICE_MS, lastProgress + options.idleMs - Date.now()));
      const outcome = await new Promise<{ code: string | null; bytes: number }>((resolve) => {
        current = addon.sendfile(socketFd, fileFd, start + sent, jobLength, waitMs, (code, bytes) =>
          resolve({ code, bytes }),
        );
      });
      current = undefined;
      sent += outcome.bytes;
      if (outcome.bytes > 0) {
        lastProgress = Date.now();
        // Node saw no traffic on this socket while the kernel sent: re-arm its idle timer.
        if (socket.timeout) socket.setTimeout(socket.timeout);
      }
      if (outcome.code === "ETIMEDOUT" && Date.now() - lastProgress < options.idleMs) continue;
      if (outcome.code !== null) return fail(response, sent, closed ? "closed" : outcome.code);
    }
    response.end();
    return { bytes: sent };
  } catch (error) {
    return fail(response, sent, (error as NodeJS.ErrnoException).code ?? "EIO");
  } finally {
    response.removeListener("close", onClose);
  }
}

function fail(response: ServerResponse, bytes: number, error: string): SendfileBodyResult {
  response.destroy();
  return { bytes, error };
}
