/**
 * A client of the management API over its unix socket, for the CLI (server/app/machine-cli.ts).
 * JSON requests with a bound, and the machine event stream (SSE) with an abort signal.
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { USER_HEADER } from "./actor.js";
import type { ApiErrorBody } from "./errors.js";
import { API_PREFIX } from "./plugin.js";

/** The daemon is not there: no socket file, nobody listening, or the socket is not ours to open. */
export class DaemonUnreachableError extends Error {
  constructor(
    readonly socketPath: string,
    readonly reason: string,
  ) {
    super(`cannot reach metalman at ${socketPath}: ${reason}`);
    this.name = "DaemonUnreachableError";
  }
}

/** An answer from the catalogue (server/api/errors.ts). */
export class ApiAnswerError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody["error"],
  ) {
    super(body.detail ? `${body.message}: ${body.detail}` : body.message);
    this.name = "ApiAnswerError";
  }
}

export interface SseMessage {
  id?: string;
  event?: string;
  data: string;
}

export class ApiClient {
  constructor(
    readonly socketPath: string,
    private readonly user: string,
    private readonly timeoutMs = 30_000,
  ) {}

  async get<T>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }

  async post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.request<T>("POST", path, body);
  }

  request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = httpRequest(
        {
          socketPath: this.socketPath,
          method,
          path: `${API_PREFIX}${path}`,
          headers: {
            host: "metalman",
            accept: "application/json",
            [USER_HEADER]: this.user,
            ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}),
          },
          timeout: this.timeoutMs,
          // One connection per request: a pooled keep-alive socket would hold the CLI process open.
          agent: false,
        },
        (res) => {
          readBody(res).then((text) => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(text);
            } catch {
              reject(new Error(`metalman answered ${res.statusCode} with something that is not JSON`));
              return;
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(parsed as T);
            else
              reject(new ApiAnswerError(status, (parsed as ApiErrorBody).error ?? { code: "INTERNAL", message: text }));
          }, reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`metalman did not answer within ${this.timeoutMs} ms`)));
      req.on("error", (err: NodeJS.ErrnoException) => reject(this.#unreachable(err)));
      req.end(payload);
    });
  }

  /**
   * Follows a Server-Sent Events stream until `signal` aborts or the server ends it. Resolves
   * when it ends; rejects when it cannot start (an ApiAnswerError such as EVENTS_GONE, or unreachable).
   */
  stream(path: string, onMessage: (message: SseMessage) => void, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const req = httpRequest(
        {
          socketPath: this.socketPath,
          method: "GET",
          path: `${API_PREFIX}${path}`,
          headers: { host: "metalman", accept: "text/event-stream", [USER_HEADER]: this.user },
          signal,
          agent: false,
        },
        (res) => {
          if (res.statusCode !== 200) {
            readBody(res).then((text) => {
              try {
                reject(new ApiAnswerError(res.statusCode ?? 0, (JSON.parse(text) as ApiErrorBody).error));
              } catch {
                reject(new Error(`event stream answered ${res.statusCode}`));
              }
            }, reject);
            return;
          }
          res.setEncoding("utf8");
          let buffer = "";
          res.on("data", (chunk: string) => {
            buffer += chunk;
            for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
              const block = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              const message = parseSseBlock(block);
              if (message) onMessage(message);
            }
          });
          res.on("end", () => resolve());
          res.on("error", () => resolve());
        },
      );
      req.on("error", (err: NodeJS.ErrnoException) => {
        if (signal.aborted) resolve();
        else reject(this.#unreachable(err));
      });
      req.end();
    });
  }

  #unreachable(err: NodeJS.ErrnoException): Error {
    switch (err.code) {
      case "ENOENT":
        return new DaemonUnreachableError(
          this.socketPath,
          "no socket (is metalman serve-pxe running with this --state-dir?)",
        );
      case "ECONNREFUSED":
        return new DaemonUnreachableError(this.socketPath, "nobody listening (metalman serve-pxe stopped or crashed)");
      case "EACCES":
        return new DaemonUnreachableError(
          this.socketPath,
          "permission denied (the socket is mode 0600: run as the user metalman runs as)",
        );
      case "ECONNRESET":
      case "EPIPE":
        return new DaemonUnreachableError(this.socketPath, "connection lost (metalman is stopping?)");
      default:
        return err;
    }
  }
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on("data", (chunk: Buffer) => {
      size += chunk.length;
      // An answer is small; a runaway one is cut rather than buffered without bound.
      if (size > 16 * 1024 * 1024) {
        res.destroy();
        reject(new Error("answer too large"));
        return;
      }
      chunks.push(chunk);
    });
    res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    res.on("error", reject);
  });
}

function parseSseBlock(block: string): SseMessage | undefined {
  const message: SseMessage = { data: "" };
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") data.push(value);
    else if (field === "id") message.id = value;
    else if (field === "event") message.event = value;
  }
  if (data.length === 0) return undefined;
  message.data = data.join("\n");
  return message;
}
