/** Who is logged in, and the CSRF token every state-changing request carries. */
import { type ApiClient, ApiError } from "../api/client";
import type { Role, SessionUser } from "../api/types";

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export class SessionManager {
  user = $state<SessionUser | undefined>(undefined);
  /** Until the first GET /session answered, the app shows nothing (no login flash). */
  checked = $state(false);
  error = $state("");
  busy = $state(false);

  constructor(private readonly api: ApiClient) {}

  can(role: Role): boolean {
    return this.user !== undefined && RANK[this.user.role] >= RANK[role];
  }

  async restore(): Promise<void> {
    try {
      const session = await this.api.session();
      this.api.csrfToken = session.csrfToken;
      this.user = session.user;
    } catch {
      this.user = undefined;
    } finally {
      this.checked = true;
    }
  }

  async login(username: string, password: string): Promise<boolean> {
    this.busy = true;
    this.error = "";
    try {
      const session = await this.api.login(username, password);
      this.api.csrfToken = session.csrfToken;
      this.user = session.user;
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.code === "RATE_LIMITED") {
        const wait = Number(error.body?.retryAfterSeconds ?? 0);
        this.error = `Too many attempts. Try again in ${wait > 0 ? `${wait} s` : "a moment"}.`;
      } else if (error instanceof ApiError && (error.status === 401 || error.code === "BAD_CREDENTIALS")) {
        this.error = "Wrong user name or password.";
      } else {
        this.error = `Could not log in: ${error instanceof Error ? error.message : String(error)}`;
      }
      return false;
    } finally {
      this.busy = false;
    }
  }

  async logout(): Promise<void> {
    try {
      await this.api.logout();
    } catch {
      // The session is gone either way.
    }
    this.expired();
  }

  /** A 401 anywhere: back to the login page. */
  expired(): void {
    this.user = undefined;
    this.api.csrfToken = "";
  }
}
