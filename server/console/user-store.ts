import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../util/atomic-file.js";
import { DEFAULT_COST, hashPassword, isPasswordHash, type ScryptCost, verifyPassword } from "./password-hash.js";

export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** viewer < operator < admin. */
export function roleAtLeast(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

export interface ConsoleUser {
  name: string;
  role: Role;
  createdAt: string;
  passwordChangedAt: string;
}

interface StoredUser extends ConsoleUser {
  hash: string;
}

export const USER_NAME_PATTERN = "^[a-z_][a-z0-9._-]{0,31}$";
const USER_NAME = new RegExp(USER_NAME_PATTERN);
export const MIN_PASSWORD = 12;
export const MAX_PASSWORD = 256;

export class UserStoreError extends Error {
  constructor(
    readonly code: "CORRUPT" | "EXISTS" | "NOT_FOUND" | "LAST_ADMIN" | "INVALID",
    message: string,
  ) {
    super(message);
  }
}

export function usersFile(stateDir: string): string {
  return path.join(stateDir, "console", "users.json");
}

/**
 * The console's local users, `<stateDir>/console/users.json` (0600): names, roles and scrypt
 * hashes. Written atomically; a file that cannot be parsed is never replaced (every call
 * fails with CORRUPT naming the file, and serve-pxe does not start) so a typo or a torn disk
 * never becomes "no users, make a new admin". The CLI (`metalman user ...`) and a running
 * server share the file: the server re-reads it when it changed (checked at most once a second).
 */
export class UserStore {
  readonly file: string;
  #users = new Map<string, StoredUser>();
  #stamp = "";
  #checkedAt = 0;
  readonly #cost: ScryptCost;
  readonly #now: () => Date;
  #queue: Promise<unknown> = Promise.resolve();
  /** A hash of a random password, checked for unknown users so timing does not tell names apart. */
  #dummy: string | undefined;

  constructor(options: { stateDir: string; cost?: ScryptCost; now?: () => Date }) {
    this.file = usersFile(options.stateDir);
    this.#cost = options.cost ?? DEFAULT_COST;
    this.#now = options.now ?? (() => new Date());
  }

  /** Reads the file (a missing file is no users). Throws UserStoreError CORRUPT. */
  async load(): Promise<void> {
    this.#checkedAt = Date.now();
    const info = await stat(this.file).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return undefined;
      throw err;
    });
    const stamp = info ? `${info.ino}:${info.mtimeMs}:${info.size}` : "";
    if (stamp === this.#stamp && stamp !== "") return;
    if (!info) {
      this.#users = new Map();
      this.#stamp = "";
      return;
    }
    this.#users = parseUsers(await readFile(this.file, "utf8"), this.file);
    this.#stamp = stamp;
  }

  /** `load()` if the last check is older than `maxAgeMs`. */
  async refresh(maxAgeMs = 1000): Promise<void> {
    if (Date.now() - this.#checkedAt >= maxAgeMs) await this.load();
  }

  list(): ConsoleUser[] {
    return [...this.#users.values()].sort((a, b) => a.name.localeCompare(b.name)).map(publicUser);
  }

  get(name: string): ConsoleUser | undefined {
    const user = this.#users.get(name);
    return user ? publicUser(user) : undefined;
  }

  get size(): number {
    return this.#users.size;
  }

  /** The user if the password is theirs. Takes about as long for an unknown name. */
  async authenticate(name: string, password: string): Promise<ConsoleUser | undefined> {
    await this.refresh();
    const user = this.#users.get(name);
    if (!user) {
      this.#dummy ??= await hashPassword("not-a-user-password", this.#cost);
      await verifyPassword(password, this.#dummy);
      return undefined;
    }
    return (await verifyPassword(password, user.hash)) ? publicUser(user) : undefined;
  }

  add(name: string, role: Role, password: string): Promise<ConsoleUser> {
    return this.#change(async (users) => {
      checkName(name);
      checkPassword(password);
      if (users.has(name)) throw new UserStoreError("EXISTS", `user ${name} already exists`);
      const at = this.#now().toISOString();
      const user: StoredUser = {
        name,
        role,
        createdAt: at,
        passwordChangedAt: at,
        hash: await hashPassword(password, this.#cost),
      };
      users.set(name, user);
      return publicUser(user);
    });
  }

  /**
   * Adds a user whose password hash was made elsewhere (the appliance's admin.passwordHash, made
   * with `metalman user hash`): the clear-text password never reaches this box.
   */
  addHashed(name: string, role: Role, hash: string): Promise<ConsoleUser> {
    return this.#change(async (users) => {
      checkName(name);
      if (!isPasswordHash(hash))
        throw new UserStoreError("INVALID", "not a metalman password hash (scrypt$N$r$p$salt$key)");
      if (users.has(name)) throw new UserStoreError("EXISTS", `user ${name} already exists`);
      const at = this.#now().toISOString();
      const user: StoredUser = { name, role, createdAt: at, passwordChangedAt: at, hash };
      users.set(name, user);
      return publicUser(user);
    });
  }

  setPassword(name: string, password: string): Promise<ConsoleUser> {
    return this.#change(async (users) => {
      checkPassword(password);
      const user = users.get(name);
      if (!user) throw new UserStoreError("NOT_FOUND", `no user ${name}`);
      user.hash = await hashPassword(password, this.#cost);
      user.passwordChangedAt = this.#now().toISOString();
      return publicUser(user);
    });
  }

  setRole(name: string, role: Role): Promise<ConsoleUser> {
    return this.#change(async (users) => {
      const user = users.get(name);
      if (!user) throw new UserStoreError("NOT_FOUND", `no user ${name}`);
      if (user.role === "admin" && role !== "admin" && adminCount(users) === 1) {
        throw new UserStoreError("LAST_ADMIN", `${name} is the last admin`);
      }
      user.role = role;
      return publicUser(user);
    });
  }

  remove(name: string): Promise<ConsoleUser> {
    return this.#change(async (users) => {
      const user = users.get(name);
      if (!user) throw new UserStoreError("NOT_FOUND", `no user ${name}`);
      if (user.role === "admin" && adminCount(users) === 1) {
        throw new UserStoreError("LAST_ADMIN", `${name} is the last admin`);
      }
      users.delete(name);
      return publicUser(user);
    });
  }

  /** Serialised read-modify-write on a fresh read of the file (the CLI may have written it). */
  #change<T>(mutate: (users: Map<string, StoredUser>) => Promise<T>): Promise<T> {
    const run = this.#queue.then(async () => {
      this.#stamp = "";
      await this.load();
      const users = new Map([...this.#users].map(([k, v]) => [k, { ...v }]));
      const result = await mutate(users);
      const body = { version: 1, users: [...users.values()].sort((a, b) => a.name.localeCompare(b.name)) };
      await writeFileAtomic(this.file, `${JSON.stringify(body, null, 2)}\n`);
      this.#users = users;
      this.#stamp = "";
      await this.load();
      return result;
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

function adminCount(users: Map<string, StoredUser>): number {
  return [...users.values()].filter((u) => u.role === "admin").length;
}

function checkName(name: string): void {
  if (!USER_NAME.test(name)) {
    throw new UserStoreError("INVALID", `user name must match ${USER_NAME_PATTERN} (got ${JSON.stringify(name)})`);
  }
}

function checkPassword(password: string): void {
  if (password.length < MIN_PASSWORD || password.length > MAX_PASSWORD) {
    throw new UserStoreError("INVALID", `a password has ${MIN_PASSWORD} to ${MAX_PASSWORD} characters`);
  }
}

function publicUser(user: StoredUser): ConsoleUser {
  return { name: user.name, role: user.role, createdAt: user.createdAt, passwordChangedAt: user.passwordChangedAt };
}

function parseUsers(text: string, file: string): Map<string, StoredUser> {
  const corrupt = (why: string) =>
    new UserStoreError(
      "CORRUPT",
      `${file}: ${why}; metalman will not replace it (fix it, or move it away to start without users)`,
    );
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw corrupt(`not JSON (${(err as Error).message})`);
  }
  const body = raw as { version?: unknown; users?: unknown };
  if (typeof raw !== "object" || raw === null || body.version !== 1 || !Array.isArray(body.users)) {
    throw corrupt("expected {version: 1, users: [...]}");
  }
  const users = new Map<string, StoredUser>();
  body.users.forEach((item: unknown, index) => {
    const u = item as Partial<StoredUser>;
    const ok =
      typeof u === "object" &&
      u !== null &&
      typeof u.name === "string" &&
      USER_NAME.test(u.name) &&
      typeof u.role === "string" &&
      (ROLES as readonly string[]).includes(u.role) &&
      typeof u.hash === "string" &&
      isPasswordHash(u.hash) &&
      typeof u.createdAt === "string" &&
      typeof u.passwordChangedAt === "string";
    if (!ok) throw corrupt(`users[${index}] is not a valid user`);
    if (users.has(u.name!)) throw corrupt(`user ${u.name} appears twice`);
    users.set(u.name!, u as StoredUser);
  });
  return users;
}
