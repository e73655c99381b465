import { setTimeout as sleep } from "node:timers/promises";
import type { TLSSocket } from "node:tls";
import { buildConnector, Pool } from "undici";
import { BmcError, BmcPinMismatchError } from "../driver.js";
import { certFingerprint, type PinStore } from "../tls-pin.js";

/**
 * HTTPS to one BMC: one undici Pool with a single connection, and one request at a time (BMCs
 * choke on parallel and pipelined requests). Owns TLS trust (pin on first use, or a CA bundle),
 * timeouts, bounded retries and the body cap. Knows nothing about Redfish resources or auth.
 *
 * Why undici and not axios: docs/decisions.md. The pin check lives in the `connect` function,
 * so it runs on every new connection and reads the pin as it is then.
 */
export interface TransportOptions {
  /** The Machine's `spec.pxe.redfish.url`: `https://host[:port][/prefix]`. */
  url: string;
  /** Trust on first use. Ignored when `ca` is set. */
  pins: PinStore;
  /** PEM CA bundle: normal chain and host name verification instead of pinning. */
  ca?: string;
  /** TCP + TLS handshake. Default 10 s. */
  connectTimeoutMs?: number;
  /** Until the response headers arrive. Default 30 s (spec §8.1). */
  headersTimeoutMs?: number;
  /** Between body chunks. Default 30 s. */
  bodyTimeoutMs?: number;
  /** Whole request, body included (a slow drip cannot hold it longer). Default 60 s. */
  requestTimeoutMs?: number;
  /** Larger bodies are refused (Redfish resources are a few KB; fixtures top out near 20 KB). Default 1 MiB. */
  maxBodyBytes?: number;
  /** Retries after the first attempt (5xx, 429, connection errors). Default 3. */
  retries?: number;
  /** Backoff base and cap: full jitter over min(cap, base * 2^attempt). Defaults 500 ms, 10 s. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  random?: () => number;
}

export interface RedfishRequest {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  /** Path on the BMC origin (already resolved by `resolveLink`). */
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** Per-request override of the whole-request timeout (session DELETE on shutdown: 2 s). */
  timeoutMs?: number;
  /** Retry count override (0 for calls that must not repeat). */
  retries?: number;
}

export interface RedfishResponse {
  status: number;
  headers: Record<string, string | undefined>;
  /** Parsed JSON body; undefined when empty (or not JSON on an error status). */
  body: unknown;
}

/** Methods whose retry after a failure mid-request cannot do an action twice. */
const IDEMPOTENT = new Set(["GET", "PATCH", "DELETE"]);
/** Errors raised before a request reached the BMC: safe to retry for any method. */
const CONNECT_PHASE = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "UND_ERR_CONNECT_TIMEOUT"]);
/** Errors after the request may have been sent. */
const MID_REQUEST = new Set(["ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "UND_ERR_CLOSED"]);

export class RedfishTransport {
  readonly origin: string;
  /** Path prefix of the configured URL (usually ""): the service root is `${prefix}/redfish/v1/`. */
  readonly prefix: string;
  private pool: Pool | undefined;
  /** The pin the current pool's connections were checked against: a changed pin means a new pool. */
  private poolPin: string | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Fingerprint seen by the last unpinned handshake (first contact). */
  private observed: string | undefined;
  /** The BMC answered 406 to `Accept-Encoding: identity` once: it is no longer sent. */
  private identityRefused = false;
  private readonly o: Required<Omit<TransportOptions, "ca">> & { ca?: string };

  constructor(options: TransportOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new BmcError("not-supported", "spec.pxe.redfish.url is not a URL");
    }
    if (url.protocol !== "https:") {
      throw new BmcError(
        "not-supported",
        `spec.pxe.redfish.url must be https:// (got ${url.protocol}//); plain HTTP cannot be pinned`,
      );
    }
    if (url.username || url.password) {
      throw new BmcError(
        "not-supported",
        "spec.pxe.redfish.url must not carry credentials; use username and passwordRef",
      );
    }
    this.origin = url.origin;
    this.prefix = url.pathname.replace(/\/+$/, "");
    this.o = {
      connectTimeoutMs: 10_000,
      headersTimeoutMs: 30_000,
      bodyTimeoutMs: 30_000,
      requestTimeoutMs: 60_000,
      maxBodyBytes: 1024 * 1024,
      retries: 3,
      retryBaseMs: 500,
      retryMaxMs: 10_000,
      random: Math.random,
      ...options,
    };
  }

  /** Whether credentials may be sent: the pin is set (or a CA verifies the BMC). */
  get trusted(): boolean {
    return this.o.ca !== undefined || this.o.pins.current() !== undefined;
  }

  /**
   * First contact (spec §8.1 TOFU): an unauthenticated GET of the service root, whose leaf
   * certificate is then pinned. Nothing secret is sent before that. Resolves to the pin.
   */
  async establishTrust(rootPath: string): Promise<void> {
    if (this.trusted) return;
    this.observed = undefined;
    await this.request({ method: "GET", path: rootPath });
    const seen = this.observed as string | undefined;
    if (seen === undefined) {
      // The root was served over a connection made before (it was pinned then); nothing new to pin.
      if (!this.trusted) throw new BmcError("bad-response", "no TLS peer certificate seen at first contact");
      return;
    }
    await this.o.pins.capture(seen);
  }

  /** One request, queued behind the others to this BMC, with retries. */
  request(req: RedfishRequest): Promise<RedfishResponse> {
    const run = () => this.withRetries(req);
    const next = this.tail.then(run, run);
    this.tail = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.tail;
    const pool = this.pool;
    this.pool = undefined;
    await pool?.destroy().catch(() => undefined);
  }

  private async withRetries(req: RedfishRequest): Promise<RedfishResponse> {
    const retries = req.retries ?? this.o.retries;
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new BmcError("unreachable", "the BMC connection is closed");
      let response: RedfishResponse | undefined;
      let failure: BmcError | undefined;
      try {
        response = await this.once(req, this.identityRefused);
        if (response.status === 406 && !this.identityRefused) {
          // HPE Gen10 Plus answers 406 to `Accept-Encoding: identity`: drop it for this BMC.
          this.identityRefused = true;
          response = await this.once(req, true);
        }
      } catch (err) {
        failure = toBmcError(err, req, this.o);
      }
      const retryable = response
        ? response.status === 429 || (response.status >= 500 && (IDEMPOTENT.has(req.method) || response.status === 503))
        : failure !== undefined && isRetryableFailure(failure, req.method);
      if (!retryable || attempt >= retries) {
        if (failure) throw failure;
        return response!;
      }
      await sleep(this.backoff(attempt, response?.headers["retry-after"]));
    }
  }

  private backoff(attempt: number, retryAfter: string | undefined): number {
    const cap = this.o.retryMaxMs;
    if (retryAfter !== undefined) {
      const seconds = Number(retryAfter);
      const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(retryAfter) - Date.now();
      if (Number.isFinite(ms) && ms >= 0) return Math.min(cap, ms);
    }
    return Math.floor(this.o.random() * Math.min(cap, this.o.retryBaseMs * 2 ** attempt));
  }

  private currentPool(): Pool {
    const pin = this.o.ca === undefined ? this.o.pins.current() : undefined;
    if (this.pool && pin !== this.poolPin) {
      // The pin changed (first contact pinned, or an operator re-pinned): connections checked
      // against the old pin are not reused.
      void this.pool.destroy().catch(() => undefined);
      this.pool = undefined;
    }
    if (!this.pool) {
      this.poolPin = pin;
      this.pool = new Pool(this.origin, {
        connections: 1,
        pipelining: 1,
        connect: this.connector(),
        headersTimeout: this.o.headersTimeoutMs,
        bodyTimeout: this.o.bodyTimeoutMs,
        keepAliveTimeout: 30_000,
      });
    }
    return this.pool;
  }

  /** undici's connector plus the pin check. The pin is read on every connection, never cached. */
  private connector(): buildConnector.connector {
    const ca = this.o.ca;
    const base = buildConnector({
      rejectUnauthorized: ca !== undefined,
      ...(ca !== undefined ? { ca } : {}),
      timeout: this.o.connectTimeoutMs,
      // No TLS session resumption: every connection does a full handshake and shows its certificate.
      maxCachedSessions: 0,
    });
    return (options, callback) => {
      base(options, (err, socket) => {
        if (err || !socket) return callback(err ?? new Error("no socket"), null);
        if (ca !== undefined) return callback(null, socket);
        const raw = (socket as TLSSocket).getPeerCertificate?.()?.raw;
        if (!raw || raw.length === 0) {
          socket.destroy();
          return callback(new BmcError("bad-response", "the BMC presented no TLS certificate"), null);
        }
        const presented = certFingerprint(raw);
        const pinned = this.o.pins.current();
        if (pinned === undefined) {
          this.observed = presented;
          return callback(null, socket);
        }
        if (pinned.toLowerCase() !== presented) {
          socket.destroy();
          this.o.pins.mismatch(presented, pinned);
          return callback(new BmcPinMismatchError(presented, pinned), null);
        }
        callback(null, socket);
      });
    };
  }

  private async once(req: RedfishRequest, noEncodingHeader = false): Promise<RedfishResponse> {
    if (!this.trusted && req.headers && ("authorization" in req.headers || "x-auth-token" in req.headers)) {
      // Never reached through RedfishSession (it pins first); a guard against a future caller.
      throw new BmcError(
        "tls-pin-mismatch",
        `${req.method} ${req.path}: no certificate pinned yet; credentials are not sent`,
      );
    }
    const headers: Record<string, string> = {
      accept: "application/json",
      "odata-version": "4.0",
      // Compression makes some BMCs weaken their ETags (sushy's connector notes it).
      "accept-encoding": "identity",
      ...req.headers,
    };
    if (noEncodingHeader) delete headers["accept-encoding"];
    let body: string | undefined;
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers["content-type"] = "application/json";
    }
    const timeoutMs = req.timeoutMs ?? this.o.requestTimeoutMs;
    const signal = AbortSignal.timeout(timeoutMs);
    const res = await this.currentPool().request({
      origin: this.origin,
      path: req.path,
      method: req.method,
      headers,
      body,
      signal,
    });
    const flat: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(res.headers)) flat[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
    const text = await readCapped(res.body, this.o.maxBodyBytes, flat["content-length"], req);
    return { status: res.statusCode, headers: flat, body: parseBody(text, res.statusCode, req) };
  }
}

async function readCapped(
  stream: AsyncIterable<Buffer> & { destroy(err?: Error): void },
  max: number,
  contentLength: string | undefined,
  req: RedfishRequest,
): Promise<string> {
  const tooLarge = () =>
    new BmcError("bad-response", `${req.method} ${req.path}: the BMC's response is larger than ${max} bytes; refused`);
  if (contentLength !== undefined && Number(contentLength) > max) {
    stream.destroy();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += chunk.length;
    if (total > max) {
      stream.destroy();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total).toString("utf8");
}

function parseBody(text: string, status: number, req: RedfishRequest): unknown {
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    // An error status may come with an HTML page (expired-token 401s do): no body then.
    if (status >= 400) return undefined;
    throw new BmcError(
      "bad-response",
      `${req.method} ${req.path}: the BMC answered ${status} with a body that is not JSON (${(err as Error).message.slice(0, 80)})`,
    );
  }
}

function isRetryableFailure(err: BmcError, method: string): boolean {
  const code = (err as BmcError & { cause?: { code?: string } }).cause?.code;
  if (code === undefined) return false;
  if (CONNECT_PHASE.has(code)) return true;
  return MID_REQUEST.has(code) && IDEMPOTENT.has(method);
}

/** Maps undici and socket errors to a BmcError that names the request, never a credential. */
function toBmcError(err: unknown, req: RedfishRequest, o: Required<Omit<TransportOptions, "ca">>): BmcError {
  if (err instanceof BmcError) return err;
  const e = err as Error & { code?: string; cause?: Error & { code?: string } };
  const code = e.code ?? e.cause?.code ?? e.name;
  const what = `${req.method} ${req.path}`;
  let out: BmcError;
  if (code === "UND_ERR_CONNECT_TIMEOUT")
    out = new BmcError("timeout", `${what}: no connection to the BMC within ${o.connectTimeoutMs} ms`);
  else if (code === "UND_ERR_HEADERS_TIMEOUT")
    out = new BmcError("timeout", `${what}: the BMC sent no response within ${o.headersTimeoutMs} ms`);
  else if (code === "UND_ERR_BODY_TIMEOUT")
    out = new BmcError("timeout", `${what}: the BMC stopped sending its response for ${o.bodyTimeoutMs} ms`);
  else if (code === "TimeoutError" || code === "AbortError" || code === "UND_ERR_ABORTED")
    out = new BmcError("timeout", `${what}: no complete response within ${req.timeoutMs ?? o.requestTimeoutMs} ms`);
  else if (typeof code === "string" && /CERT|TLS|SSL|SELF_SIGNED|HOSTNAME|ERR_SSL/.test(code))
    out = new BmcError("unreachable", `${what}: TLS verification of the BMC failed (${code})`);
  else out = new BmcError("unreachable", `${what}: ${code ?? "connection failed"}: ${e.message.slice(0, 120)}`);
  Object.defineProperty(out, "cause", { value: { code }, enumerable: false });
  return out;
}
