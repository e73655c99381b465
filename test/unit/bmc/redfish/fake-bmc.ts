import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { PinStore } from "../../../../server/bmc/tls-pin.js";
import { sharedDir } from "../../../support/paths.js";
import { selfSignedSync, type TestCert } from "../../../support/self-signed.js";

/**
 * A real HTTPS server on 127.0.0.1 that answers with the Redfish fixture files
 * (../shared/fixtures/redfish): the client under test speaks TLS and HTTP to it exactly as to a
 * BMC. Routes are `"METHOD /path"` → a handler; unknown routes answer 404 with a Redfish error.
 */
export type Cert = TestCert;

/** A self-signed P-256 certificate for 127.0.0.1, made by openssl for this test run. */
export function makeCert(cn = "127.0.0.1"): Cert {
  return selfSignedSync(cn, 2);
}

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** Raw body (bypasses JSON.stringify). */
  raw?: string | Buffer;
}

export interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: unknown;
}

export type Handler = (req: Seen, res: ServerResponse) => Reply | undefined | Promise<Reply | undefined>;

export function fixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(sharedDir(), "fixtures", "redfish", name), "utf8"));
}

export class FakeBmc {
  readonly seen: Seen[] = [];
  routes = new Map<string, Handler>();
  inFlight = 0;
  maxInFlight = 0;
  private server: Server | undefined;
  url = "";

  constructor(public cert: Cert) {}

  route(key: string, handler: Handler | Reply): this {
    this.routes.set(key, typeof handler === "function" ? handler : () => handler);
    return this;
  }

  /** `GET path` answers the fixture. */
  get(pathName: string, fixtureName: string, headers?: Record<string, string>): this {
    return this.route(`GET ${pathName}`, { body: fixture(fixtureName), headers });
  }

  async start(): Promise<this> {
    this.server = createServer({ key: this.cert.key, cert: this.cert.cert }, (req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Serve another certificate from now on (new connections). */
  useCert(cert: Cert): void {
    this.cert = cert;
    this.server!.setSecureContext({ key: cert.key, cert: cert.cert });
  }

  requests(method?: string, p?: string): Seen[] {
    return this.seen.filter((s) => (!method || s.method === method) && (!p || s.path === p));
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString("utf8");
      const seen: Seen = {
        method: req.method!,
        path: req.url!,
        headers: req.headers,
        body: text ? JSON.parse(text) : undefined,
      };
      this.seen.push(seen);
      const handler = this.routes.get(`${req.method} ${req.url}`);
      const reply = handler
        ? await handler(seen, res)
        : { status: 404, body: { error: { code: "Base.1.0.ResourceMissingAtURI", message: `no ${req.url}` } } };
      if (reply === undefined) return; // the handler answered (or never will)
      const raw = reply.raw ?? (reply.body === undefined ? "" : JSON.stringify(reply.body));
      res.writeHead(reply.status ?? 200, { "content-type": "application/json", ...reply.headers });
      res.end(raw);
    } finally {
      this.inFlight--;
    }
  }
}

/** A PinStore in memory (the backend-backed one is tested in pin-store.test.ts). */
export class MemoryPins implements PinStore {
  mismatches: Array<[string, string]> = [];
  captures: string[] = [];
  constructor(public pin?: string) {}
  current(): string | undefined {
    return this.pin;
  }
  async capture(fingerprint: string): Promise<string> {
    this.captures.push(fingerprint);
    this.pin ??= fingerprint;
    return this.pin;
  }
  mismatch(presented: string, pinned: string): void {
    this.mismatches.push([presented, pinned]);
  }
}

export function normalizeOpenssl(fp: string): string {
  return fp.toLowerCase();
}

/** The DMTF catfish mockup: one System `1`, minimal. */
export function catfish(bmc: FakeBmc): FakeBmc {
  return bmc
    .get("/redfish/v1/", "dmtf-public-catfish/ServiceRoot.json")
    .get("/redfish/v1/Systems", "dmtf-public-catfish/Systems.json")
    .get("/redfish/v1/Systems/1", "dmtf-public-catfish/System-1.json");
}
