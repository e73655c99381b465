import { BmcError } from "../driver.js";
import { linkOf, resolveLink } from "./links.js";
import { bmcMessages, isSessionLimit } from "./messages.js";
import type { RedfishRequest, RedfishResponse, RedfishTransport } from "./transport.js";

/**
 * Authentication to one BMC (spec §8.1, fixtures README items 9 and 10):
 *
 * - A SessionService session (`X-Auth-Token`), created on first use and reused for every call.
 *   The login URI is the root's `Links.Sessions` (Dell's old roots put it at `/redfish/v1/Sessions`).
 * - On 401 with a token: log in again once and replay (the token expired or the BMC rebooted).
 * - When a session cannot be created — no SessionService, or the BMC's session table is full
 *   (iDRAC `RAC0218`, `SessionLimitExceeded`) — Basic auth for `sessionRetryMs`, then sessions
 *   are tried again. An empty username sends no credentials at all (upstream; sushy-emulator).
 * - `close()` deletes the session (2 s, best effort): BMCs have few session slots.
 *
 * Credentials are never put in a message or an error.
 */
export interface SessionOptions {
  username: string;
  password: string;
  /** The login URI (resolved from the service root). */
  sessionsPath: () => Promise<string>;
  /** First contact (or after a re-pin cleared the pin): pin the certificate before anything is sent. */
  ensureTrust: () => Promise<void>;
  /** How long Basic is used after a failed login before sessions are tried again. Default 5 min. */
  sessionRetryMs?: number;
  now?: () => number;
}

export class RedfishSession {
  private token: string | undefined;
  private sessionUri: string | undefined;
  private basicUntil = 0;
  private loggingIn: Promise<void> | undefined;
  /** What the last call used: "session", "basic" or "none" (for tests and diagnostics). */
  mode: "session" | "basic" | "none" = "none";
  private readonly now: () => number;

  constructor(
    private readonly transport: RedfishTransport,
    private readonly o: SessionOptions,
  ) {
    this.now = o.now ?? Date.now;
  }

  /** An authenticated request. Resolves to the response whatever its status (401 under Basic included). */
  async request(req: RedfishRequest): Promise<RedfishResponse> {
    await this.o.ensureTrust();
    if (this.o.username === "") {
      this.mode = "none";
      return this.transport.request(req);
    }
    if (!this.token && this.now() >= this.basicUntil) await this.login();
    const usedToken = this.token;
    const first = await this.transport.request(this.withAuth(req));
    if (first.status !== 401 || usedToken === undefined) return first;
    // The token is dead (expired, BMC restarted): one new login, one replay.
    if (this.token === usedToken) {
      this.token = undefined;
      this.sessionUri = undefined;
      await this.login();
    }
    return this.transport.request(this.withAuth(req));
  }

  /** Ends the session on the BMC (best effort, 2 s). */
  async close(): Promise<void> {
    const token = this.token;
    const uri = this.sessionUri;
    this.token = undefined;
    this.sessionUri = undefined;
    if (!token || !uri) return;
    await this.transport
      .request({ method: "DELETE", path: uri, headers: { "x-auth-token": token }, timeoutMs: 2000, retries: 0 })
      .catch(() => undefined);
  }

  /** Whether a session token is held (tests). */
  get hasSession(): boolean {
    return this.token !== undefined;
  }

  private withAuth(req: RedfishRequest): RedfishRequest {
    const headers = { ...req.headers };
    if (this.token) {
      this.mode = "session";
      headers["x-auth-token"] = this.token;
    } else {
      this.mode = "basic";
      headers.authorization = `Basic ${Buffer.from(`${this.o.username}:${this.o.password}`).toString("base64")}`;
    }
    return { ...req, headers };
  }

  private login(): Promise<void> {
    // Concurrent callers share one login (requests are serialised anyway; this keeps it to one POST).
    this.loggingIn ??= this.doLogin().finally(() => {
      this.loggingIn = undefined;
    });
    return this.loggingIn;
  }

  private async doLogin(): Promise<void> {
    let path: string;
    try {
      path = await this.o.sessionsPath();
    } catch {
      this.useBasic();
      return;
    }
    let res: RedfishResponse;
    try {
      // Retries are pointless here (a full session table does not empty in seconds): fall back instead.
      res = await this.transport.request({
        method: "POST",
        path,
        body: { UserName: this.o.username, Password: this.o.password },
        retries: 0,
      });
    } catch (err) {
      if (
        err instanceof BmcError &&
        (err.code === "tls-pin-mismatch" || err.code === "timeout" || err.code === "unreachable")
      )
        throw err;
      this.useBasic();
      return;
    }
    const token = res.headers["x-auth-token"];
    if ((res.status === 201 || res.status === 200) && token) {
      this.token = token;
      const location = res.headers.location ?? linkOf(res.body);
      try {
        this.sessionUri = location ? resolveLink(this.transport.origin, location, "session URI") : undefined;
      } catch {
        this.sessionUri = undefined;
      }
      return;
    }
    if (res.status === 401 || res.status === 403) {
      if (!isSessionLimit(res.status, bmcMessages(res.body))) {
        // Basic with the same credentials would be refused too; say so once, clearly.
        throw new BmcError(
          "auth",
          `the BMC refused the login of user ${JSON.stringify(this.o.username)} (HTTP ${res.status})`,
          bmcMessages(res.body),
        );
      }
    }
    // Session table full (isSessionLimit), no SessionService (404/405/501), or another refusal.
    this.useBasic();
  }

  private useBasic(): void {
    this.token = undefined;
    this.sessionUri = undefined;
    this.basicUntil = this.now() + (this.o.sessionRetryMs ?? 5 * 60_000);
  }
}
