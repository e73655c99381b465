/**
 * The console's small parts: the serve-pxe flags (--console-port 0 turns it off, the TLS pair
 * goes together), session expiry, the login limiter's window, the audit log surviving a torn
 * last line, and the role table failing closed.
 */
import assert from "node:assert/strict";
import { appendFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { ConfigError, parseServePxeArgs } from "../../../server/config/serve-pxe-config.js";
import { policyFor } from "../../../server/console/access-policy.js";
import { AuditLog } from "../../../server/console/audit-log.js";
import { LoginLimiter } from "../../../server/console/login-limiter.js";
import { hashPassword, verifyPassword } from "../../../server/console/password-hash.js";
import { SessionStore } from "../../../server/console/sessions.js";

describe("console settings", () => {
  it("defaults to 127.0.0.1:8443; 0 turns the console off; cert and key go together", () => {
    const defaults = parseServePxeArgs([], {}, { cwd: "/srv" });
    assert.deepEqual([defaults.consoleAddress, defaults.consolePort], ["127.0.0.1", 8443]);
    assert.equal(parseServePxeArgs(["--console-port=0"], {}).consolePort, 0);
    const own = parseServePxeArgs(["--console-tls-cert=c.pem", "--console-tls-key=k.pem"], {}, { cwd: "/etc/mm" });
    assert.deepEqual([own.consoleTlsCert, own.consoleTlsKey], ["/etc/mm/c.pem", "/etc/mm/k.pem"]);
    assert.throws(() => parseServePxeArgs(["--console-tls-cert=c.pem"], {}), ConfigError);
    assert.throws(() => parseServePxeArgs(["--console-port=70000"], {}), /0-65535/);
    assert.throws(() => parseServePxeArgs(["--console-address=localhost"], {}), /IPv4/);
  });
});

describe("console sessions and login limit", () => {
  it("ends a session after its idle time and after its maximum age", () => {
    let now = 0;
    const store = new SessionStore({ idleMs: 1000, maxAgeMs: 5000, now: () => now });
    const { id } = store.create("ops", "operator");
    now = 900;
    assert.ok(store.get(id), "used within the idle time");
    now = 1800;
    assert.ok(store.get(id));
    now = 2900;
    assert.equal(store.get(id), undefined, "idle too long");
    const second = store.create("ops", "operator");
    for (now = 3000; now < 8000; now += 900) store.get(second.id);
    assert.equal(store.get(second.id), undefined, "too old, however busy");
  });

  it("refuses after maxFailures in the window, and allows again once the oldest failure leaves it", () => {
    let now = 0;
    const limiter = new LoginLimiter({ maxFailures: 2, windowMs: 10_000, now: () => now });
    limiter.fail(["ip:a"]);
    now = 1000;
    limiter.fail(["ip:a"]);
    assert.equal(limiter.retryAfterSeconds(["ip:a"]), 9);
    assert.equal(limiter.retryAfterSeconds(["ip:b"]), 0);
    now = 10_001;
    assert.equal(limiter.retryAfterSeconds(["ip:a"]), 0);
  });

  it("hashes with scrypt and a per-hash salt; a wrong password or a malformed hash never matches", async () => {
    const cost = { log2N: 10, r: 8, p: 1 };
    const a = await hashPassword("correct horse battery", cost);
    const b = await hashPassword("correct horse battery", cost);
    assert.notEqual(a, b);
    assert.match(a, /^scrypt\$10\$8\$1\$/);
    assert.ok(await verifyPassword("correct horse battery", a));
    assert.ok(!(await verifyPassword("correct horse batterx", a)));
    assert.ok(!(await verifyPassword("x", "plain-text")));
  });
});

describe("console audit log and role table", () => {
  it("keeps counting after a torn last line, starting the next entry on a fresh line", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mm-audit-"));
    try {
      const log = new AuditLog({ stateDir: dir });
      await log.open();
      await log.append({ user: "root", from: "127.0.0.1", action: "login", result: "ok" });
      await log.close();
      await appendFile(log.file, '{"seq":2,"user":"ro');
      const again = new AuditLog({ stateDir: dir });
      await again.open();
      const entry = await again.append({ user: "root", from: "127.0.0.1", action: "logout", result: "ok" });
      assert.equal(entry.seq, 2);
      await again.close();
      const lines = (await readFile(log.file, "utf8")).split("\n");
      assert.equal(lines[1], '{"seq":2,"user":"ro', "the torn line is kept as it was");
      assert.equal(JSON.parse(lines[2]!).action, "logout");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("needs admin for a state-changing route it does not know", () => {
    assert.equal(policyFor("POST", "/api/v1/something-new").role, "admin");
    assert.equal(policyFor("GET", "/api/v1/something-new").role, "viewer");
    assert.equal(policyFor("POST", "/api/v1/machines/:name/repave").role, "operator");
    assert.equal(policyFor("GET", "/api/v1/audit").role, "admin");
  });
});
