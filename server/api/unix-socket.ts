/**
 * The management API's unix socket, `<stateDir>/metalman.sock`, mode 0600. Its file mode is the
 * API's authentication (only the user metalman runs as, and root, may connect), and it is the
 * state folder's single-instance lock: it is claimed before the inventory or any state file is
 * read, so a second serve-pxe on the same state folder stops before it touches anything.
 *
 * A socket file left behind by a process that died is replaced; one that a live process
 * answers on is never taken over; anything that is not a socket is never removed.
 */
import { randomBytes } from "node:crypto";
import { chmod, link, lstat, mkdir, unlink } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect } from "node:net";
import path from "node:path";
import { apiErrorBody } from "./errors.js";

export const API_SOCKET_NAME = "metalman.sock";

/** sun_path is 108 bytes on Linux, NUL included. */
const MAX_SOCKET_PATH = 107;

export function apiSocketPath(stateDir: string): string {
  return path.join(path.resolve(stateDir), API_SOCKET_NAME);
}

export class SocketInUseError extends Error {
  readonly code = "SOCKET_IN_USE";
  constructor(readonly socketPath: string) {
    super(
      `another metalman serves ${socketPath} (the management socket of this --state-dir): ` +
        "stop it first, or give this one its own --state-dir",
    );
  }
}

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

export interface ClaimedSocket {
  readonly path: string;
  readonly server: Server;
  /** From now on requests go to `handler` (a Fastify instance's `routing`); before, 503 NOT_READY. */
  attach(handler: Handler): void;
  /**
   * Stops accepting at once, lets requests in flight finish until `deadline` settles, cuts what
   * is left, and removes the socket file if it is still ours.
   */
  release(deadline?: Promise<void>): Promise<void>;
}

/** Links `temporary` to `socketPath`; a dead socket there is replaced, a live one or a non-socket refused. */
async function publish(temporary: string, socketPath: string, probeTimeoutMs: number): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await link(temporary, socketPath);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const existing = await lstat(socketPath).catch(() => undefined);
    if (!existing) continue;
    if (!existing.isSocket()) {
      throw new Error(`${socketPath} exists and is not a socket; metalman will not remove it (move it away)`);
    }
    const probe = await answers(socketPath, probeTimeoutMs);
    if (probe === "live") throw new SocketInUseError(socketPath);
    if (probe instanceof Error) throw new Error(`cannot check ${socketPath}: ${probe.message}`);
    if (probe === "dead") {
      // Left by a process that died: nobody answers on it. Remove exactly that file, not a successor's.
      const again = await lstat(socketPath).catch(() => undefined);
      if (again && again.ino === existing.ino && again.dev === existing.dev)
        await unlink(socketPath).catch(() => undefined);
    }
  }
  throw new Error(`cannot claim ${socketPath}: it keeps changing (another metalman starting?)`);
}

/** Does a live process accept connections on `socketPath`? */
async function answers(socketPath: string, timeoutMs: number): Promise<"live" | "dead" | "gone" | Error> {
  return new Promise((resolve) => {
    const socket = connect({ path: socketPath });
    const timer = setTimeout(() => {
      socket.destroy();
      // A process that holds the socket but does not accept in time is still alive (busy): not ours to take.
      resolve("live");
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve("live");
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === "ECONNREFUSED") resolve("dead");
      else if (err.code === "ENOENT") resolve("gone");
      else resolve(err);
    });
  });
}

/**
 * Claims the socket (replacing a dead one) and listens on it with mode 0600. The socket is bound
 * under a private temporary name and published with link(2), which fails when the name exists:
 * two metalman processes starting at once cannot both win, and neither removes the other's.
 */
export async function claimUnixSocket(
  socketPath: string,
  options: { probeTimeoutMs?: number } = {},
): Promise<ClaimedSocket> {
  const dir = path.dirname(socketPath);
  const temporary = path.join(dir, `.mm-${process.pid.toString(36)}-${randomBytes(3).toString("hex")}.sock`);
  for (const candidate of [socketPath, temporary]) {
    if (Buffer.byteLength(candidate) > MAX_SOCKET_PATH) {
      throw new Error(
        `management socket path ${candidate} is longer than ${MAX_SOCKET_PATH} bytes (a unix socket limit): use a shorter --state-dir`,
      );
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });

  let handler: Handler = (_request, response) => {
    response.writeHead(503, { "content-type": "application/json; charset=utf-8", "retry-after": "1" });
    response.end(JSON.stringify(apiErrorBody("NOT_READY")));
  };
  const server = createServer((request, response) => handler(request, response));
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // bind(2) happens inside listen(), synchronously: with this umask the socket is never
    // reachable by anyone else, not even for a moment before the chmod below.
    const previous = process.umask(0o177);
    try {
      server.listen(temporary, () => {
        server.off("error", reject);
        resolve();
      });
    } finally {
      process.umask(previous);
    }
  });
  try {
    await chmod(temporary, 0o600);
    await publish(temporary, socketPath, options.probeTimeoutMs ?? 1000);
  } catch (err) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(temporary).catch(() => undefined);
    throw err;
  }
  // The listening socket lives on under its public name only.
  await unlink(temporary).catch(() => undefined);
  const mine = await lstat(socketPath);

  let released: Promise<void> | undefined;
  return {
    path: socketPath,
    server,
    attach(next) {
      handler = next;
    },
    release(deadline = Promise.resolve()) {
      released ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        const sweeper = setInterval(() => server.closeIdleConnections(), 100);
        sweeper.unref();
        server.closeIdleConnections();
        try {
          await Promise.race([closed, deadline]);
          server.closeAllConnections();
          await closed;
        } finally {
          clearInterval(sweeper);
        }
        // libuv unlinks only the (already removed) temporary name: remove the public one, if it is still ours.
        const now = await lstat(socketPath).catch(() => undefined);
        if (now && now.ino === mine.ino && now.dev === mine.dev) await unlink(socketPath).catch(() => undefined);
      })();
      return released;
    },
  };
}
