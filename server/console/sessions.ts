import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Role } from "./user-store.js";

export const SESSION_COOKIE = "metalman_session";

export interface Session {
  user: string;
  role: Role;
  csrfToken: string;
  createdAt: number;
  lastSeen: number;
}

export interface SessionStoreOptions {
  /** A session unused this long ends (default 8 h). */
  idleMs?: number;
  /** A session ends this long after login whatever happens (default 24 h). */
  maxAgeMs?: number;
  /** Sessions held at most; the oldest goes first (default 1000). */
  maxSessions?: number;
  now?: () => number;
}

/**
 * Console sessions, in memory (a restart logs everyone out). The cookie holds 256 random bits;
 * the store is keyed by their SHA-256, so even a heap dump shows no usable cookie. Each session
 * has its own CSRF token, handed out with the session answer and checked on every
 * state-changing request (`x-csrf-token`).
 */
export class SessionStore {
  readonly #sessions = new Map<string, Session>();
  readonly #idleMs: number;
  readonly #maxAgeMs: number;
  readonly #max: number;
  readonly #now: () => number;

  constructor(options: SessionStoreOptions = {}) {
    this.#idleMs = options.idleMs ?? 8 * 3600_000;
    this.#maxAgeMs = options.maxAgeMs ?? 24 * 3600_000;
    this.#max = options.maxSessions ?? 1000;
    this.#now = options.now ?? Date.now;
  }

  get maxAgeSeconds(): number {
    return Math.floor(this.#maxAgeMs / 1000);
  }

  /** Returns the cookie value (never stored) and the session. */
  create(user: string, role: Role): { id: string; session: Session } {
    const id = randomBytes(32).toString("base64url");
    const now = this.#now();
    const session: Session = {
      user,
      role,
      csrfToken: randomBytes(32).toString("base64url"),
      createdAt: now,
      lastSeen: now,
    };
    this.#sessions.set(key(id), session);
    while (this.#sessions.size > this.#max) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest === undefined) break;
      this.#sessions.delete(oldest);
    }
    return { id, session };
  }

  /** The live session of a cookie value, touched; an expired one is removed. */
  get(id: string): Session | undefined {
    const k = key(id);
    const session = this.#sessions.get(k);
    if (!session) return undefined;
    const now = this.#now();
    if (now - session.lastSeen > this.#idleMs || now - session.createdAt > this.#maxAgeMs) {
      this.#sessions.delete(k);
      return undefined;
    }
    session.lastSeen = now;
    return session;
  }

  delete(id: string): void {
    this.#sessions.delete(key(id));
  }

  /** Ends every session of a user (deleted, password or role changed). */
  endUser(user: string): number {
    let ended = 0;
    for (const [k, session] of this.#sessions) {
      if (session.user === user) {
        this.#sessions.delete(k);
        ended++;
      }
    }
    return ended;
  }

  get size(): number {
    return this.#sessions.size;
  }
}

function key(id: string): string {
  return createHash("sha256").update(id).digest("base64url");
}

/** Constant-time comparison of a presented CSRF token with the session's. */
export function csrfMatches(session: Session, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(session.csrfToken);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The value of one cookie from a Cookie header (no cookie library: we read exactly one). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
