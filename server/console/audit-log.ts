import { type FileHandle, mkdir, open, readFile } from "node:fs/promises";
import path from "node:path";

/** One audited action: who, what, when, from where, and how it ended. */
export interface AuditEntry {
  seq: number;
  time: string;
  /** The user name, or the name tried at a failed login; "-" when nobody was authenticated. */
  user: string;
  role?: string;
  /** Client address (X-Forwarded-For only from a --trusted-proxy). */
  from: string;
  /** `login`, `logout`, `machine.repave`, `user.add`... */
  action: string;
  target?: string;
  /** `ok`, `denied` (auth, role, CSRF, rate limit), `failed` (refused by validation or state), `error`. */
  result: "ok" | "denied" | "failed" | "error";
  /** HTTP status and error code, never a secret. */
  status?: number;
  detail?: string;
}

export type AuditInput = Omit<AuditEntry, "seq" | "time">;

export function auditFile(stateDir: string): string {
  return path.join(stateDir, "console", "audit.jsonl");
}

/**
 * The append-only audit log, `<stateDir>/console/audit.jsonl`: one JSON object a line, opened
 * O_APPEND, each entry fdatasync'ed before the answer goes out. It is never rewritten or
 * truncated by metalman (rotate it with logrotate's copytruncate, or keep it). A line torn by a
 * crash is skipped when read, and the next entry starts on a fresh line. The newest
 * `keepInMemory` entries are held for `GET /audit`.
 */
export class AuditLog {
  readonly file: string;
  #handle: FileHandle | undefined;
  #seq = 0;
  #recent: AuditEntry[] = [];
  readonly #keep: number;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #now: () => Date;

  constructor(options: { stateDir: string; keepInMemory?: number; now?: () => Date }) {
    this.file = auditFile(options.stateDir);
    this.#keep = options.keepInMemory ?? 10_000;
    this.#now = options.now ?? (() => new Date());
  }

  async open(): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    let text = "";
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    const entries: AuditEntry[] = [];
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      try {
        const entry = JSON.parse(line) as AuditEntry;
        if (typeof entry.seq === "number") entries.push(entry);
      } catch {
        // A torn last line (crash mid-write): skipped, kept in the file for the record.
      }
    }
    this.#seq = entries.reduce((max, e) => Math.max(max, e.seq), 0);
    this.#recent = entries.slice(-this.#keep);
    this.#handle = await open(this.file, "a", 0o600);
    if (text !== "" && !text.endsWith("\n")) await this.#handle.write("\n");
  }

  append(input: AuditInput): Promise<AuditEntry> {
    const run = this.#queue.then(async () => {
      if (!this.#handle) throw new Error("audit log is not open");
      const entry: AuditEntry = { seq: this.#seq + 1, time: this.#now().toISOString(), ...input };
      await this.#handle.write(`${JSON.stringify(entry)}\n`);
      await this.#handle.datasync();
      this.#seq = entry.seq;
      this.#recent.push(entry);
      if (this.#recent.length > this.#keep) this.#recent.splice(0, this.#recent.length - this.#keep);
      return entry;
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Newest first: at most `limit` entries with seq < `before`. */
  query(options: { limit?: number; before?: number } = {}): AuditEntry[] {
    const before = options.before ?? Number.POSITIVE_INFINITY;
    const out: AuditEntry[] = [];
    for (let i = this.#recent.length - 1; i >= 0 && out.length < (options.limit ?? 100); i--) {
      const entry = this.#recent[i]!;
      if (entry.seq < before) out.push(entry);
    }
    return out;
  }

  get lastSeq(): number {
    return this.#seq;
  }

  async close(): Promise<void> {
    await this.#queue;
    await this.#handle?.close();
    this.#handle = undefined;
  }
}
