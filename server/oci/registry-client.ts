import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, readFileSync } from "node:fs";
import { rename, rm, stat, truncate } from "node:fs/promises";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { rootCertificates } from "node:tls";
import type { Logger } from "pino";
import { Agent, type Dispatcher } from "undici";
import { type AuthChallenge, parseWwwAuthenticate } from "./auth-challenge.js";
import { discard, readBounded } from "./bounded-read.js";
import type { RegistryCredentials } from "./docker-config.js";
import { OciError } from "./errors.js";
import { ConcurrencyLimit } from "./limiter.js";
import { type Descriptor, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, type Manifest, parseManifest } from "./manifest.js";
import { DOCKER_HUB, DOCKER_HUB_API_HOST, type ImageReference, manifestSelector } from "./reference.js";
import { isLoopbackHost, type RegistriesConfig, type RegistryHostSettings } from "./registry-config.js";

/** Where the system's CA bundle is on Debian and most distributions (Node 20 only knows its own list). */
const SYSTEM_CA_FILES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"];
const MAX_TOKEN_BYTES = 1024 * 1024;
const MAX_REDIRECTS = 5;
const MAX_RETRY_AFTER_MS = 60_000;

export interface RetryPolicy {
  /** Attempts per request in total (default 5). */
  attempts: number;
  /** First backoff (default 500 ms); doubles per attempt up to maxDelayMs, with full jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface RegistryClientOptions {
  registries: RegistriesConfig;
  log: Logger;
  /** Blob downloads at once over every pull (default 4). */
  maxConcurrentBlobs?: number;
  retry?: Partial<RetryPolicy>;
  /** Connect, headers and body-idle timeouts (default 15 s, 30 s, 60 s). */
  timeouts?: { connectMs?: number; headersMs?: number; bodyIdleMs?: number };
  /** Tests: the jitter's random source and the sleep. */
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Tests: read a CA file (default fs). */
  readFile?: (file: string) => string;
}

/** Where a repository is fetched from: the registry itself or one of its mirrors. */
export interface RepositoryEndpoint {
  /** `https://host[:port]` or `http://…`. */
  origin: string;
  /** `host[:port]`, whose credentials are used (a mirror never gets the origin's). */
  host: string;
  /** The repository on this endpoint (a mirror's prefix included). */
  repository: string;
  mirror: boolean;
}

/** A resolved manifest or index, with the endpoint that answered (blobs are fetched from it too). */
export interface FetchedManifest {
  endpoint: RepositoryEndpoint;
  digest: string;
  mediaType: string;
  body: Buffer;
  manifest: Manifest;
}

/** Credentials for a host; undefined → anonymous. Asked per request, never cached here. */
export type CredentialLookup = (host: string) => RegistryCredentials | undefined;

interface Session {
  endpoint: RepositoryEndpoint;
  credentials: CredentialLookup;
}

/**
 * A small OCI distribution client (pull only) on undici. One instance serves every pull of the
 * process: connections, Bearer tokens (per endpoint and repository) and the blob concurrency
 * limit are shared. Every request is retried on 429, 5xx and connection errors with backoff and
 * jitter; a blob download resumes with Range after an interruption and is verified against its
 * digest before it is moved into place. Redirects (blob storage) are followed by hand so that a
 * redirect to another origin never carries the registry's Authorization.
 */
export class RegistryClient {
  readonly #options: RegistryClientOptions;
  readonly #retry: RetryPolicy;
  readonly #blobs: ConcurrencyLimit;
  readonly #tokens = new Map<string, { value: string; expiresAt: number }>();
  readonly #dispatchers = new Map<string, Agent>();
  readonly #timeouts: { connectMs: number; headersMs: number; bodyIdleMs: number };
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  #systemCas: string[] | undefined;

  constructor(options: RegistryClientOptions) {
    this.#options = options;
    this.#retry = { attempts: 5, baseDelayMs: 500, maxDelayMs: 10_000, ...options.retry };
    this.#blobs = new ConcurrencyLimit(options.maxConcurrentBlobs ?? 4);
    this.#timeouts = {
      connectMs: options.timeouts?.connectMs ?? 15_000,
      headersMs: options.timeouts?.headersMs ?? 30_000,
      bodyIdleMs: options.timeouts?.bodyIdleMs ?? 60_000,
    };
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms).unref()));
    this.#random = options.random ?? Math.random;
  }

  async close(): Promise<void> {
    const agents = [...this.#dispatchers.values()];
    this.#dispatchers.clear();
    await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
  }

  /** The endpoints of a reference, in the order they are tried (mirrors first). */
  endpointsOf(ref: ImageReference): RepositoryEndpoint[] {
    const settings = this.#settings(ref.registry);
    const endpoints: RepositoryEndpoint[] = [];
    for (const mirror of settings?.mirrors ?? []) {
      endpoints.push({
        origin: this.#originOf(mirror.host),
        host: mirror.host,
        repository: mirror.prefix === "" ? ref.repository : `${mirror.prefix}/${ref.repository}`,
        mirror: true,
      });
    }
    if (!settings?.mirrorsOnly) {
      const apiHost = ref.registry === DOCKER_HUB ? DOCKER_HUB_API_HOST : ref.registry;
      endpoints.push({
        origin: this.#originOf(ref.registry, apiHost),
        host: ref.registry,
        repository: ref.repository,
        mirror: false,
      });
    }
    return endpoints;
  }

  /**
   * GET the manifest or index the reference names, from the first endpoint that has it. With a
   * digest in the reference the body must hash to it. The digest returned is always the sha256
   * of the bytes received (a registry's Docker-Content-Digest is not trusted on its own).
   */
  async resolve(ref: ImageReference, credentials: CredentialLookup, signal?: AbortSignal): Promise<FetchedManifest> {
    const errors: string[] = [];
    let last: OciError | undefined;
    const endpoints = this.endpointsOf(ref);
    for (const endpoint of endpoints) {
      try {
        return await this.fetchManifest({ endpoint, credentials }, manifestSelector(ref), signal, ref.digest);
      } catch (err) {
        if (signal?.aborted) throw err;
        last = toOciError(err, endpoint.host);
        errors.push(endpoints.length > 1 ? `${endpoint.host}: ${last.message}` : last.message);
      }
    }
    if (!last) throw new OciError(`${ref.registry}: no endpoint to pull from`, "NETWORK");
    throw new OciError(errors.join("; "), last.code, last.retryable);
  }

  /** GET a manifest by tag or digest from one endpoint (Session: endpoint + credentials). */
  async fetchManifest(
    session: Session,
    selector: string,
    signal?: AbortSignal,
    expectDigest?: string,
  ): Promise<FetchedManifest> {
    const { endpoint } = session;
    const what = `${endpoint.host}/${endpoint.repository}:${selector}`;
    return this.#withRetries(what, signal, async () => {
      const res = await this.#request(
        session,
        `/v2/${endpoint.repository}/manifests/${selector}`,
        {
          accept: MANIFEST_ACCEPT,
        },
        signal,
      );
      await this.#checkStatus(res, what);
      const body = await readBounded(res.body, MAX_MANIFEST_BYTES, what);
      const digest = `sha256:${createHash("sha256").update(body).digest("hex")}`;
      const wanted = expectDigest ?? (selector.startsWith("sha256:") ? selector : undefined);
      if (wanted !== undefined && digest !== wanted) {
        throw new OciError(`${what}: manifest hashes to ${digest}, not the digest asked for`, "DIGEST_MISMATCH");
      }
      const contentType = headerValue(res.headers["content-type"]);
      const manifest = parseManifest(body, contentType, what);
      return { endpoint, digest, mediaType: manifest.mediaType, body, manifest };
    });
  }

  /** A small blob (an image config) read into memory, verified. */
  async fetchSmallBlob(session: Session, descriptor: Descriptor, limit: number, signal?: AbortSignal): Promise<Buffer> {
    const what = `${session.endpoint.host}/${session.endpoint.repository}@${descriptor.digest}`;
    if (descriptor.size > limit) throw new OciError(`${what}: ${descriptor.size} bytes is more than ${limit}`, "SIZE");
    return this.#withRetries(what, signal, async () => {
      const res = await this.#request(
        session,
        `/v2/${session.endpoint.repository}/blobs/${descriptor.digest}`,
        {},
        signal,
      );
      await this.#checkStatus(res, what);
      const body = await readBounded(res.body, descriptor.size, what);
      const digest = `sha256:${createHash("sha256").update(body).digest("hex")}`;
      if (digest !== descriptor.digest) throw new OciError(`${what}: blob hashes to ${digest}`, "DIGEST_MISMATCH");
      return body;
    });
  }

  /**
   * Download a blob to `dest`, through `partial` (kept across attempts and restarts: a later
   * attempt resumes with Range from its length). `onBytes` is told of every chunk written. The
   * file is moved to `dest` only when its length and sha256 match the descriptor; a mismatch
   * deletes the partial file and is final (the registry holds a corrupt blob).
   */
  async fetchBlob(
    session: Session,
    descriptor: Descriptor,
    dest: string,
    partial: string,
    onBytes: (delta: number) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const what = `${session.endpoint.host}/${session.endpoint.repository}@${descriptor.digest}`;
    const path = `/v2/${session.endpoint.repository}/blobs/${descriptor.digest}`;
    let counted = 0;
    const report = (delta: number) => {
      counted += delta;
      onBytes(delta);
    };
    // sha256 of the partial file's first `hashed` bytes, kept up to date while streaming; after a
    // cut (what reached the disk is unknown) the file is hashed again from its start.
    let hash = createHash("sha256");
    let hashed = 0;
    const onChunk = (chunk: Buffer) => {
      hash.update(chunk);
      hashed += chunk.length;
    };
    await this.#withRetries(what, signal, () =>
      this.#blobs.run(async () => {
        let have = (await stat(partial).catch(() => undefined))?.size ?? 0;
        if (have > descriptor.size) {
          await truncate(partial, 0);
          have = 0;
        }
        // Progress counts what is on disk: a resume after a cut does not count bytes twice.
        if (have !== counted) report(have - counted);
        if (hashed !== have) {
          hash = createHash("sha256");
          hashed = 0;
          if (have > 0) await hashInto(partial, hash).then(() => (hashed = have));
        }
        if (have === descriptor.size) return;
        const res = await this.#request(session, path, have > 0 ? { range: `bytes=${have}-` } : {}, signal);
        if (res.statusCode === 206) {
          const range = /^bytes (\d+)-/.exec(headerValue(res.headers["content-range"]) ?? "");
          if (!range || Number(range[1]) !== have) {
            await discard(res.body);
            await truncate(partial, 0);
            report(-have);
            hash = createHash("sha256");
            hashed = 0;
            throw new OciError(`${what}: the registry answered another range than asked; starting over`, "HTTP", true);
          }
        } else {
          await this.#checkStatus(res, what);
          if (have > 0) {
            // The server ignored Range: take the whole blob again.
            await truncate(partial, 0);
            report(-have);
            have = 0;
            hash = createHash("sha256");
            hashed = 0;
          }
        }
        const declared = Number(headerValue(res.headers["content-length"]) ?? Number.NaN);
        if (Number.isFinite(declared) && declared > descriptor.size - have) {
          await discard(res.body);
          throw new OciError(
            `${what}: the registry sends ${declared} bytes, the manifest says ${descriptor.size}`,
            "SIZE",
          );
        }
        await this.#appendBody(res.body, partial, descriptor.size - have, what, report, onChunk);
      }),
    );
    const size = (await stat(partial)).size;
    const digest = hashed === size ? `sha256:${hash.digest("hex")}` : await hashFile(partial);
    if (size !== descriptor.size || digest !== descriptor.digest) {
      await rm(partial, { force: true });
      report(-counted);
      throw new OciError(
        `${what}: blob is corrupt (${size} bytes hashing to ${digest}, expected ${descriptor.size} bytes): refused`,
        "DIGEST_MISMATCH",
      );
    }
    await rename(partial, dest);
  }

  async #appendBody(
    body: Readable,
    file: string,
    remaining: number,
    what: string,
    report: (delta: number) => void,
    onChunk: (chunk: Buffer) => void,
  ): Promise<void> {
    let seen = 0;
    const out = createWriteStream(file, { flags: "a" });
    try {
      await pipeline(
        body,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            seen += chunk.length;
            if (seen > remaining) throw new OciError(`${what}: more bytes than the manifest says`, "SIZE");
            // Counted when handed to the file; the next attempt corrects by the file's real length.
            report(chunk.length);
            onChunk(chunk);
            yield chunk;
          }
        },
        out,
      );
    } catch (err) {
      if (err instanceof OciError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOSPC" || code === "EDQUOT") {
        throw new OciError(`${what}: no space left in the cache folder (${code})`, "SIZE");
      }
      throw new OciError(`${what}: download interrupted: ${(err as Error).message}`, "NETWORK", true);
    }
  }

  // ------------------------------------------------------------------ requests

  async #request(
    session: Session,
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<Dispatcher.ResponseData> {
    const { endpoint } = session;
    let url = new URL(endpoint.origin + path);
    let triedAuth = false;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const sameOrigin = url.origin === endpoint.origin;
      const sent: Record<string, string> = { "user-agent": "metalman", ...headers };
      if (sameOrigin) {
        const authorization = this.#authorizationFor(session);
        if (authorization) sent.authorization = authorization;
      } else if (url.protocol !== "https:" && !this.#plainHttpAllowed(url.host)) {
        throw new OciError(`${endpoint.host}: redirect to plain HTTP ${url.host} refused`, "INSECURE");
      }
      const res = await this.#dispatcher(url.host).request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: "GET",
        headers: sent,
        signal,
        headersTimeout: this.#timeouts.headersMs,
        bodyTimeout: this.#timeouts.bodyIdleMs,
      });
      if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location) {
        await discard(res.body);
        url = new URL(headerValue(res.headers.location) ?? "", url);
        continue;
      }
      if (res.statusCode === 401 && sameOrigin && !triedAuth) {
        const challenge = headerValue(res.headers["www-authenticate"]);
        await discard(res.body);
        triedAuth = true;
        await this.#authenticate(session, challenge, signal);
        continue;
      }
      return res;
    }
    throw new OciError(`${endpoint.host}${path}: more than ${MAX_REDIRECTS} redirects`, "HTTP");
  }

  async #checkStatus(res: Dispatcher.ResponseData, what: string): Promise<void> {
    const status = res.statusCode;
    if (status >= 200 && status < 300) return;
    const text = (await readBounded(res.body, 64 * 1024, what).catch(() => Buffer.alloc(0))).toString("utf8");
    const detail = registryErrorText(text);
    if (status === 404) throw new OciError(`${what}: not found${detail}`, "NOT_FOUND");
    if (status === 401 || status === 403) {
      throw new OciError(
        `${what}: access denied (${status})${detail}; give credentials with --registry-auth-file or spec.pxe.pullSecretRef`,
        "UNAUTHORIZED",
      );
    }
    const retryable = status === 429 || status >= 500;
    throw new OciError(`${what}: HTTP ${status}${detail}`, "HTTP", retryable, retryAfterMs(res.headers["retry-after"]));
  }

  #authorizationFor(session: Session): string | undefined {
    const token = this.#tokens.get(tokenKey(session.endpoint));
    if (token && token.expiresAt > Date.now()) return token.value;
    return undefined;
  }

  /** Answer a 401: Bearer → fetch a token from the realm; Basic → send the credentials. */
  async #authenticate(session: Session, header: string | undefined, signal: AbortSignal | undefined): Promise<void> {
    const { endpoint } = session;
    const challenges = header ? parseWwwAuthenticate(header) : [];
    const credentials = session.credentials(endpoint.host);
    const bearer = challenges.find((c) => c.scheme === "bearer");
    if (bearer) {
      const token = await this.#fetchToken(endpoint, bearer, credentials, signal);
      this.#tokens.set(tokenKey(endpoint), { value: `Bearer ${token.token}`, expiresAt: Date.now() + token.ttlMs });
      return;
    }
    if (challenges.some((c) => c.scheme === "basic")) {
      if (!credentials) {
        throw new OciError(
          `${endpoint.host}: the registry asks for a user name and password; give them with --registry-auth-file or spec.pxe.pullSecretRef`,
          "UNAUTHORIZED",
        );
      }
      const basic = Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64");
      // Basic credentials do not expire; kept as long as the process (re-sent per request).
      this.#tokens.set(tokenKey(endpoint), { value: `Basic ${basic}`, expiresAt: Number.MAX_SAFE_INTEGER });
      return;
    }
    throw new OciError(`${endpoint.host}: 401 without a Bearer or Basic challenge`, "UNAUTHORIZED");
  }

  async #fetchToken(
    endpoint: RepositoryEndpoint,
    challenge: AuthChallenge,
    credentials: RegistryCredentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ token: string; ttlMs: number }> {
    const realm = challenge.params.realm;
    if (!realm) throw new OciError(`${endpoint.host}: Bearer challenge without a realm`, "UNAUTHORIZED");
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new OciError(`${endpoint.host}: Bearer realm ${JSON.stringify(realm)} is not a URL`, "UNAUTHORIZED");
    }
    if (url.protocol !== "https:" && !(url.protocol === "http:" && this.#plainHttpAllowed(url.host))) {
      throw new OciError(`${endpoint.host}: token realm ${url.origin} is not HTTPS: refused`, "INSECURE");
    }
    const scope = challenge.params.scope ?? `repository:${endpoint.repository}:pull`;
    const service = challenge.params.service;
    const what = `${endpoint.host}: token from ${url.origin}`;
    const headers: Record<string, string> = { "user-agent": "metalman", accept: "application/json" };
    let method: "GET" | "POST" = "GET";
    let body: string | undefined;
    if (credentials?.identityToken) {
      method = "POST";
      headers["content-type"] = "application/x-www-form-urlencoded";
      body = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: credentials.identityToken,
        client_id: "metalman",
        scope,
        ...(service ? { service } : {}),
      }).toString();
    } else {
      if (service) url.searchParams.set("service", service);
      url.searchParams.set("scope", scope);
      if (credentials) {
        headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")}`;
      }
    }
    return this.#withRetries(what, signal, async () => {
      const res = await this.#dispatcher(url.host).request({
        origin: url.origin,
        path: url.pathname + url.search,
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        signal,
        headersTimeout: this.#timeouts.headersMs,
        bodyTimeout: this.#timeouts.bodyIdleMs,
      });
      await this.#checkStatus(res, what);
      const text = await readBounded(res.body, MAX_TOKEN_BYTES, what);
      let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
      try {
        doc = JSON.parse(text.toString("utf8"));
      } catch {
        throw new OciError(`${what}: answer is not JSON`, "UNAUTHORIZED");
      }
      const token =
        typeof doc.token === "string" ? doc.token : typeof doc.access_token === "string" ? doc.access_token : "";
      if (token === "") throw new OciError(`${what}: answer has no token`, "UNAUTHORIZED");
      // Renewed a little early; the distribution spec's default lifetime is 60 s.
      const expiresIn = typeof doc.expires_in === "number" && doc.expires_in > 0 ? doc.expires_in : 60;
      return { token, ttlMs: Math.max(10, expiresIn - 10) * 1000 };
    });
  }

  async #withRetries<T>(what: string, signal: AbortSignal | undefined, attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (raw) {
        const err = toOciError(raw, what);
        if (signal?.aborted) throw new OciError(`${what}: aborted`, "NETWORK");
        if (!err.retryable || n >= this.#retry.attempts) throw err;
        const backoff = Math.min(this.#retry.maxDelayMs, this.#retry.baseDelayMs * 2 ** (n - 1));
        // Full jitter, but never less than half: a rack of appliances must not retry in step.
        const delay = err.retryAfterMs ?? Math.round(backoff * (0.5 + this.#random() / 2));
        this.#options.log.warn(
          { what, attempt: n, delayMs: delay, err: err.message },
          "registry request failed; retrying",
        );
        await this.#sleep(delay);
      }
    }
  }

  // ------------------------------------------------------------------ hosts and TLS

  #settings(host: string): RegistryHostSettings | undefined {
    return this.#options.registries.hosts.get(host.toLowerCase());
  }

  #plainHttpAllowed(host: string): boolean {
    const h = host.toLowerCase();
    const settings = this.#settings(h);
    if (settings?.insecure || this.#options.registries.insecure.has(h)) return true;
    return isLoopbackHost(h) && !settings?.tls;
  }

  #originOf(host: string, apiHost = host): string {
    return `${this.#plainHttpAllowed(host) ? "http" : "https"}://${apiHost}`;
  }

  #dispatcher(host: string): Agent {
    const key = host.toLowerCase();
    let agent = this.#dispatchers.get(key);
    if (agent) return agent;
    const read = this.#options.readFile ?? ((f: string) => readFileSync(f, "utf8"));
    const extra = [this.#options.registries.caBundle, this.#settings(key)?.caBundle].filter(
      (f): f is string => f !== undefined,
    );
    // Node's own list plus the system bundle (so a CA installed with update-ca-certificates works), plus ours.
    const ca = [...this.#systemCaList(), ...extra.map((f) => read(f))];
    agent = new Agent({
      connect: { timeout: this.#timeouts.connectMs, ca },
      connections: 16,
      keepAliveTimeout: 10_000,
    });
    this.#dispatchers.set(key, agent);
    return agent;
  }

  /** Node's own CA list plus the system bundle (private CAs installed with update-ca-certificates). */
  #systemCaList(): string[] {
    if (this.#systemCas) return this.#systemCas;
    const list = [...rootCertificates];
    for (const file of SYSTEM_CA_FILES) {
      try {
        list.push(readFileSync(file, "utf8"));
        break;
      } catch {
        // Not on this system.
      }
    }
    this.#systemCas = list;
    return list;
  }
}

function tokenKey(endpoint: RepositoryEndpoint): string {
  return `${endpoint.origin}\0${endpoint.repository}`;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const text = headerValue(value);
  if (text === undefined) return undefined;
  const seconds = Number(text);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(MAX_RETRY_AFTER_MS, seconds * 1000);
  const date = Date.parse(text);
  if (Number.isFinite(date)) return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, date - Date.now()));
  return undefined;
}

/** The distribution spec's `{"errors":[{code,message}]}` as " (CODE: message)". */
function registryErrorText(text: string): string {
  try {
    const doc = JSON.parse(text) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const first = doc.errors?.[0];
    if (first && typeof first.code === "string") {
      return ` (${first.code}${typeof first.message === "string" ? `: ${first.message.slice(0, 200)}` : ""})`;
    }
  } catch {
    // Not the spec's error body.
  }
  return "";
}

function toOciError(err: unknown, what: string): OciError {
  if (err instanceof OciError) return err;
  const e = err as NodeJS.ErrnoException & { code?: string };
  const code = e.code ?? "";
  // undici's socket, timeout and connection errors, and the kernel's.
  const retryable =
    code.startsWith("UND_ERR") ||
    ["ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "EPIPE", "EAI_AGAIN", "ENETUNREACH", "EHOSTUNREACH"].includes(code);
  return new OciError(`${what}: ${e.message || String(err)}${code ? ` (${code})` : ""}`, "NETWORK", retryable);
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash("sha256");
  await hashInto(file, hash);
  return `sha256:${hash.digest("hex")}`;
}

async function hashInto(file: string, hash: ReturnType<typeof createHash>): Promise<void> {
  await pipeline(createReadStream(file, { highWaterMark: 1024 * 1024 }), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) hash.update(chunk);
  });
}
