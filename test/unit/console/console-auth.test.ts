// biome-ignore-all lint/suspicious/noExplicitAny: the tests read JSON answers loosely; the assertions check their shape
/**
 * The console's gate through inject(): login (right, wrong, rate-limited), the session cookie's
 * attributes, CSRF on every state-changing request, the roles (a viewer cannot repave), the
 * audit entries, and the route listing: no registered route is reachable without a session
 * except login and the static assets.
 */
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { type ConsoleFixture, consoleFixture, login, PASSWORDS } from "./helpers.js";

describe("console gate (inject)", () => {
  let f: ConsoleFixture;
  before(async () => {
    f = await consoleFixture({ loginLimit: { maxFailures: 3, windowMs: 60_000 } });
  });
  after(async () => {
    await f.close();
  });

  it("lists every registered route, and none answers without a session except login and static assets", async () => {
    const PUBLIC = new Set(["POST /api/v1/session", "GET /api/v1/session", "HEAD /api/v1/session"]);
    const routes = f.console.routes.filter((r) => r.url.startsWith("/api"));
    // The API surfaces are all there (a refactor that drops the gate's view of them fails here).
    for (const expected of [
      "GET /api/v1/machines",
      "POST /api/v1/machines/:name/repave",
      "GET /api/v1/users",
      "GET /api/v1/audit",
      "POST /api/v1/operations",
    ]) {
      assert.ok(
        routes.some((r) => `${r.method} ${r.url}` === expected),
        `route ${expected} registered`,
      );
    }
    const nonApi = f.console.routes.filter((r) => !r.url.startsWith("/api"));
    for (const route of nonApi)
      assert.ok(
        ["GET", "HEAD"].includes(route.method),
        `non-API route ${route.method} ${route.url} is read-only (static)`,
      );
    for (const route of routes) {
      const url = route.url.replace(/:name/g, "node-01").replace(/:mac/g, "aa:bb:cc:dd:ee:99").replace(/\*/g, "x");
      const key = `${route.method} ${route.url}`;
      const res = await f.app.inject({
        method: route.method as any,
        url,
        payload: route.method === "GET" || route.method === "HEAD" ? undefined : {},
      });
      if (PUBLIC.has(key)) {
        if (route.method === "POST") assert.equal(res.statusCode, 400, `${key} validates its body`);
        continue;
      }
      assert.equal(res.statusCode, 401, `${key} answered ${res.statusCode} without a session`);
      if (route.method !== "HEAD") assert.equal(res.json().error.code, "UNAUTHENTICATED", key);
    }
    // Even a route that does not exist says nothing but 401.
    const missing = await f.app.inject({ method: "GET", url: "/api/v1/no-such-thing" });
    assert.equal(missing.statusCode, 401);
  });

  it("logs in with the right password: HttpOnly Secure SameSite=Strict cookie, user and CSRF token, no secret", async () => {
    const res = await f.app.inject({
      method: "POST",
      url: "/api/v1/session",
      payload: { username: "ops", password: PASSWORDS.ops },
    });
    assert.equal(res.statusCode, 200);
    const cookie = String(res.headers["set-cookie"]);
    assert.match(cookie, /^metalman_session=[A-Za-z0-9_-]{43}; /);
    for (const attribute of ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"])
      assert.ok(cookie.includes(attribute), cookie);
    const body = res.json();
    assert.deepEqual(body.user, { name: "ops", role: "operator" });
    assert.equal(typeof body.csrfToken, "string");
    assert.ok(!res.body.includes(cookie.split(";")[0]!.split("=")[1]!), "the session id is only in the cookie");
    assert.ok(!res.body.includes("scrypt"), "no hash in the answer");
    const again = await f.app.inject({
      method: "GET",
      url: "/api/v1/session",
      headers: { cookie: cookie.split(";")[0]! },
    });
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().csrfToken, body.csrfToken);
    const none = await f.app.inject({ method: "GET", url: "/api/v1/session" });
    assert.equal(none.statusCode, 401);
    assert.equal(none.json().error.code, "UNAUTHENTICATED");
  });

  it("refuses a wrong password (and an unknown user) with BAD_CREDENTIALS, then rate-limits with RATE_LIMITED", async () => {
    const attempt = (username: string, password: string) =>
      f.app.inject({
        method: "POST",
        url: "/api/v1/session",
        payload: { username, password },
        remoteAddress: "192.0.2.50",
      });
    const wrong = await attempt("view", "not-the-password");
    assert.equal(wrong.statusCode, 401);
    assert.equal(wrong.json().error.code, "BAD_CREDENTIALS");
    assert.equal(wrong.headers["set-cookie"], undefined);
    const unknown = await attempt("nobody", "whatever-password");
    assert.equal(unknown.json().error.code, "BAD_CREDENTIALS", "an unknown user looks the same");
    await attempt("view", "still-wrong");
    // Three failures from this address: even the right password is refused now.
    const limited = await attempt("view", PASSWORDS.view);
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.json().error.code, "RATE_LIMITED");
    assert.ok(limited.json().error.retryAfterSeconds > 0);
    assert.ok(Number(limited.headers["retry-after"]) > 0);
    // Another address may still log in as someone else.
    await login(f.app, "ops", PASSWORDS.ops, "192.0.2.51");
  });

  it("refuses a state-changing request without the session's CSRF token", async () => {
    const ops = await login(f.app, "ops", PASSWORDS.ops);
    const none = await f.app.inject({
      method: "POST",
      url: "/api/v1/machines/node-02/reboot",
      headers: { cookie: ops.cookie },
      payload: {},
    });
    assert.equal(none.statusCode, 403);
    assert.equal(none.json().error.code, "CSRF_FAILED");
    const other = await login(f.app, "view", PASSWORDS.view);
    const wrong = await f.app.inject({
      method: "POST",
      url: "/api/v1/machines/node-02/reboot",
      headers: { cookie: ops.cookie, "x-csrf-token": other.csrf },
      payload: {},
    });
    assert.equal(wrong.json().error.code, "CSRF_FAILED", "another session's token does not do");
    assert.equal(f.inventory.get("node-02")?.spec.operations?.rebootCounter ?? 0, 0, "nothing happened");
    const logout = await f.app.inject({ method: "DELETE", url: "/api/v1/session", headers: { cookie: ops.cookie } });
    assert.equal(logout.json().error.code, "CSRF_FAILED", "logout needs it too");
  });

  it("roles: a viewer reads but cannot repave; an operator repaves; only an admin reads the audit log and users", async () => {
    const view = await login(f.app, "view", PASSWORDS.view);
    const ops = await login(f.app, "ops", PASSWORDS.ops);
    const root = await login(f.app, "root", PASSWORDS.root);
    const list = await f.app.inject({ method: "GET", url: "/api/v1/machines", headers: view.headers });
    assert.equal(list.statusCode, 200);
    const denied = await f.app.inject({
      method: "POST",
      url: "/api/v1/machines/node-02/repave",
      headers: view.headers,
      payload: {},
    });
    assert.equal(denied.statusCode, 403);
    assert.equal(denied.json().error.code, "FORBIDDEN");
    assert.equal(f.backendOps().length, 0, "no operation was created");
    for (const url of ["/api/v1/audit", "/api/v1/users"]) {
      assert.equal((await f.app.inject({ method: "GET", url, headers: ops.headers })).statusCode, 403, url);
    }
    const repave = await f.app.inject({
      method: "POST",
      url: "/api/v1/machines/node-01/repave",
      headers: ops.headers,
      payload: {},
    });
    assert.equal(repave.statusCode, 202, repave.body);
    const op = repave.json();
    assert.equal(op.metadata?.annotations?.["metalman.io/requested-by"] ?? op.requestedBy ?? "ops", "ops");
    const users = await f.app.inject({ method: "GET", url: "/api/v1/users", headers: root.headers });
    assert.equal(users.statusCode, 200);
    assert.deepEqual(
      users.json().items.map((u: any) => [u.name, u.role]),
      [
        ["ops", "operator"],
        ["root", "admin"],
        ["view", "viewer"],
      ],
    );
    assert.ok(!users.body.includes("scrypt") && !users.body.includes("hash"), "no hash in the users answer");
  });

  it("audits every action: who, what, target, from where, result; login failures and refusals too; append-only file", async () => {
    const root = await login(f.app, "root", PASSWORDS.root, "198.51.100.7");
    const res = await f.app.inject({ method: "GET", url: "/api/v1/audit?limit=50", headers: root.headers });
    assert.equal(res.statusCode, 200);
    const items = res.json().items as any[];
    const find = (pred: (e: any) => boolean) => items.find(pred);
    assert.ok(find((e) => e.action === "login" && e.user === "root" && e.result === "ok" && e.from === "198.51.100.7"));
    assert.ok(
      find((e) => e.action === "login" && e.user === "view" && e.result === "denied" && e.detail === "BAD_CREDENTIALS"),
    );
    assert.ok(find((e) => e.action === "login" && e.result === "denied" && e.detail === "RATE_LIMITED"));
    const deniedRepave = find((e) => e.action === "machine.repave" && e.user === "view");
    assert.deepEqual(
      [deniedRepave.role, deniedRepave.target, deniedRepave.result, deniedRepave.status, deniedRepave.detail],
      ["viewer", "node-02", "denied", 403, "FORBIDDEN"],
    );
    const okRepave = find((e) => e.action === "machine.repave" && e.user === "ops");
    assert.deepEqual([okRepave.result, okRepave.status, okRepave.target], ["ok", 202, "node-01"]);
    assert.ok(find((e) => e.action === "machine.reboot" && e.result === "denied" && e.detail === "CSRF_FAILED"));
    // Newest first, seqs strictly decreasing; every line of the file is one entry.
    const seqs = items.map((e) => e.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => b - a),
    );
    const lines = (await readFile(f.audit.file, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(lines.at(-1).seq, f.audit.lastSeq);
    assert.ok(!(await readFile(f.audit.file, "utf8")).includes(PASSWORDS.view), "no password in the audit log");
    // Paging.
    const page = await f.app.inject({
      method: "GET",
      url: `/api/v1/audit?limit=2&before=${seqs[1]}`,
      headers: root.headers,
    });
    assert.deepEqual(
      page.json().items.map((e: any) => e.seq),
      seqs.slice(2, 4),
    );
    const bad = await f.app.inject({ method: "GET", url: "/api/v1/audit?limit=2&extra=1", headers: root.headers });
    assert.equal(bad.json().error.code, "VALIDATION_FAILED");
  });

  it("users: an admin adds and deletes; a deleted user's sessions end; the last admin stays", async () => {
    const root = await login(f.app, "root", PASSWORDS.root);
    const add = await f.app.inject({
      method: "POST",
      url: "/api/v1/users",
      headers: root.headers,
      payload: { name: "carol", role: "operator", password: "carol-password-1" },
    });
    assert.equal(add.statusCode, 201, add.body);
    assert.deepEqual([add.json().user.name, add.json().user.role], ["carol", "operator"]);
    assert.ok(!add.body.includes("carol-password-1"));
    const carol = await login(f.app, "carol", "carol-password-1");
    const extra = await f.app.inject({
      method: "POST",
      url: "/api/v1/users",
      headers: root.headers,
      payload: { name: "x", role: "admin", password: "long-enough-pw", admin: true },
    });
    assert.equal(extra.json().error.code, "VALIDATION_FAILED", "additional properties are refused");
    const del = await f.app.inject({ method: "DELETE", url: "/api/v1/users/carol", headers: root.headers });
    assert.equal(del.statusCode, 204);
    const after = await f.app.inject({ method: "GET", url: "/api/v1/machines", headers: carol.headers });
    assert.equal(after.statusCode, 401, "carol's session ended");
    const last = await f.app.inject({ method: "DELETE", url: "/api/v1/users/root", headers: root.headers });
    assert.equal(last.json().error.code, "LAST_ADMIN");
  });

  it("serves a page saying how to build the console when dist/console is missing, with security headers", async () => {
    const res = await f.app.inject({ method: "GET", url: "/machines/node-01" });
    assert.equal(res.statusCode, 503);
    assert.match(res.body, /console is not built/);
    assert.match(String(res.headers["content-security-policy"]), /default-src 'self'/);
    assert.equal(res.headers["x-frame-options"], "DENY");
  });

  it("serves the built console: files, SPA fallback for deep links, never for /api", async () => {
    const assets = path.join(f.scratch.root, "built-console");
    await mkdir(path.join(assets, "assets"), { recursive: true });
    await writeFile(path.join(assets, "index.html"), "<!doctype html><title>metalman</title><div id=app></div>");
    await writeFile(path.join(assets, "assets", "app.js"), "console.log('app')");
    const g = await consoleFixture({ assetsDir: assets });
    try {
      const index = await g.app.inject({ method: "GET", url: "/" });
      assert.equal(index.statusCode, 200);
      assert.match(index.body, /<div id=app>/);
      const js = await g.app.inject({ method: "GET", url: "/assets/app.js" });
      assert.equal(js.statusCode, 200);
      assert.match(String(js.headers["content-type"]), /javascript/);
      const deep = await g.app.inject({ method: "GET", url: "/machines/node-01" });
      assert.equal(deep.statusCode, 200);
      assert.match(deep.body, /<div id=app>/, "a deep link answers the app");
      const api = await g.app.inject({ method: "GET", url: "/api/v1/nope" });
      assert.equal(api.statusCode, 401, "no SPA fallback under /api");
      const traversal = await g.app.inject({ method: "GET", url: "/../package.json" });
      assert.ok(!traversal.body.includes('"name"'), "no file outside the build");
    } finally {
      await g.close();
    }
  });

  it("records X-Forwarded-For as the client address only from a --trusted-proxy", async () => {
    const g = await consoleFixture({ trustedProxies: ["10.9.9.9"] });
    try {
      const headers = { "x-forwarded-for": "203.0.113.5" };
      const viaProxy = await g.app.inject({
        method: "POST",
        url: "/api/v1/session",
        headers,
        remoteAddress: "10.9.9.9",
        payload: { username: "view", password: PASSWORDS.view },
      });
      assert.equal(viaProxy.statusCode, 200);
      const direct = await g.app.inject({
        method: "POST",
        url: "/api/v1/session",
        headers,
        remoteAddress: "10.1.1.1",
        payload: { username: "view", password: "wrong-password" },
      });
      assert.equal(direct.statusCode, 401);
      const [failed, ok] = g.audit.query({ limit: 2 });
      assert.deepEqual([ok?.from, ok?.result, ok?.role], ["203.0.113.5", "ok", "viewer"]);
      assert.deepEqual(
        [failed?.from, failed?.result],
        ["10.1.1.1", "denied"],
        "a forged header from anyone else is ignored",
      );
    } finally {
      await g.close();
    }
  });
});
