/**
 * The console listener for real: startConsole on 127.0.0.1 port 0 over HTTPS. The self-signed
 * certificate is made at first start, kept in the state dir (key 0600) and reused (same
 * fingerprint on the wire after a restart); a half pair or a corrupt users file stops the start
 * and is left as it was; the first admin is created with a generated password; the CLI
 * (`metalman user add`, run as a process) adds a user a running console accepts at once.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat, unlink, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { TLSSocket } from "node:tls";
import { promisify } from "node:util";
import { type RunningConsole, startConsole } from "../../../server/console/console-setup.js";
import { hashPassword } from "../../../server/console/password-hash.js";
import { BootEventBus } from "../../../server/events/boot-events.js";
import { FileInventory } from "../../../server/inventory/file-inventory.js";
import { repoRoot } from "../../support/paths.js";
import { silentLog } from "../api/helpers.js";

const run = promisify(execFile);

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  fingerprint: string;
}

function call(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = request(
      url,
      {
        method: options.method ?? "GET",
        // Self-signed: the test checks the fingerprint itself, as an operator would.
        rejectUnauthorized: false,
        agent: false,
        headers: { ...(payload ? { "content-type": "application/json" } : {}), ...options.headers },
      },
      (res) => {
        const peer = (res.socket as TLSSocket).getPeerX509Certificate();
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
            fingerprint: peer?.fingerprint256 ?? "",
          });
        });
      },
    );
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
    req.end(payload);
  });
}

describe("console listener (HTTPS on loopback)", () => {
  let root: string;
  let stateDir: string;
  let inventory: FileInventory;
  const events = new BootEventBus();
  const settings = () => ({
    stateDir,
    address: "127.0.0.1",
    port: 0,
    trustedProxies: [],
    assetsDir: path.join(root, "none"),
  });
  const api = () => ({ backend: inventory, events });

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), "mm-console-listen-"));
    stateDir = path.join(root, "state");
    await mkdir(path.join(root, "machines"));
    inventory = new FileInventory({ dir: path.join(root, "machines"), stateDir, log: silentLog, watch: false });
    await inventory.load();
  });
  after(async () => {
    await inventory.close();
    await rm(root, { recursive: true, force: true });
  });

  it("makes a self-signed certificate and a first admin at first start, and reuses the certificate after a restart", async () => {
    let first: RunningConsole | undefined = await startConsole(settings(), api(), silentLog);
    let password: string;
    let fingerprint: string;
    try {
      assert.equal(first.tls.source, "created");
      assert.match(first.tls.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      assert.ok(first.firstAdmin, "a first admin was made");
      password = first.firstAdmin.password;
      assert.ok(password.length >= 20);
      const keyMode = (await stat(first.tls.keyFile)).mode & 0o777;
      assert.equal(keyMode, 0o600, "the key is 0600");
      const cert = new X509Certificate(await readFile(first.tls.certFile, "utf8"));
      assert.ok(cert.checkHost("localhost"), "SAN localhost");
      assert.ok(cert.checkIP("127.0.0.1"), "SAN 127.0.0.1");
      assert.ok(cert.verify(cert.publicKey), "self-signed and valid");
      // OpenSSL reads what our DER encoder wrote: same fingerprint, the SAN and key usages.
      const openssl = await run("openssl", [
        "x509",
        "-in",
        first.tls.certFile,
        "-noout",
        "-text",
        "-fingerprint",
        "-sha256",
      ]);
      assert.ok(openssl.stdout.includes(`Fingerprint=${first.tls.fingerprint}`), openssl.stdout);
      assert.match(openssl.stdout, /DNS:localhost, IP Address:127\.0\.0\.1/);
      assert.match(openssl.stdout, /TLS Web Server Authentication/);
      assert.match(openssl.stdout, /ecdsa-with-SHA256/);
      const res = await call(`${first.url}api/v1/session`, { method: "POST", body: { username: "admin", password } });
      assert.equal(res.status, 200, res.body);
      assert.equal(res.fingerprint, first.tls.fingerprint, "the certificate on the wire is the one printed");
      assert.match(String(res.headers["set-cookie"]), /HttpOnly; Secure; SameSite=Strict/);
      fingerprint = first.tls.fingerprint;
    } finally {
      await first.close();
    }
    first = undefined;
    const second = await startConsole(settings(), api(), silentLog);
    try {
      assert.equal(second.tls.source, "reused");
      assert.equal(second.tls.fingerprint, fingerprint);
      assert.equal(second.firstAdmin, undefined, "the password is printed once, at first start only");
      const res = await call(`${second.url}api/v1/session`, { method: "POST", body: { username: "admin", password } });
      assert.equal(res.status, 200);
      assert.equal(res.fingerprint, fingerprint);
      const unauth = await call(`${second.url}api/v1/machines`);
      assert.equal(unauth.status, 401);
    } finally {
      await second.close();
    }
  });

  it("adds a user with the real CLI (metalman user add --admin) that the running console accepts", async () => {
    const running = await startConsole(settings(), api(), silentLog);
    try {
      const main = path.join(repoRoot(), "dist", "server", "main.js");
      const added = await run(process.execPath, [main, "user", "add", "--admin", "alice", "--state-dir", stateDir]);
      assert.match(added.stdout, /added admin alice/);
      const password = /password: (\S+)/.exec(added.stdout)?.[1];
      assert.ok(password, added.stdout);
      const listed = await run(process.execPath, [main, "user", "list", "--state-dir", stateDir]);
      assert.match(listed.stdout, /alice\s+admin/);
      assert.ok(!listed.stdout.includes("scrypt"));
      // The server re-reads the file within a second.
      let status = 0;
      for (let i = 0; i < 30 && status !== 200; i++) {
        status = (await call(`${running.url}api/v1/session`, { method: "POST", body: { username: "alice", password } }))
          .status;
        if (status !== 200) await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(status, 200);
      const dup = await run(process.execPath, [main, "user", "add", "alice", "--state-dir", stateDir]).catch((e) => e);
      assert.equal(dup.code, 1);
      assert.match(dup.stderr, /already exists/);
      const viaStdin = execFile(process.execPath, [
        main,
        "user",
        "passwd",
        "alice",
        "--password-stdin",
        "--state-dir",
        stateDir,
      ]);
      viaStdin.stdin?.end("a-new-long-password\n");
      await new Promise<void>((resolve, reject) =>
        viaStdin.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`)))),
      );
      let again = 0;
      for (let i = 0; i < 30 && again !== 200; i++) {
        again = (
          await call(`${running.url}api/v1/session`, {
            method: "POST",
            body: { username: "alice", password: "a-new-long-password" },
          })
        ).status;
        if (again !== 200) await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(again, 200);
    } finally {
      await running.close();
    }
  });

  it("takes the first admin from a pre-seeded password hash (the appliance's admin.passwordHash); a bad one falls back to a generated password, which the appliance gets in a file", async () => {
    const seeded = path.join(root, "seeded");
    const hashFile = path.join(root, "admin-password.hash");
    await writeFile(hashFile, `${await hashPassword("a long pre-seeded secret", { log2N: 10, r: 8, p: 1 })}\n`);
    const running = await startConsole(
      { ...settings(), stateDir: seeded, adminPasswordHashFile: hashFile },
      api(),
      silentLog,
    );
    try {
      assert.equal(running.firstAdmin, undefined, "nothing to print: the operator chose the password");
      const wrong = await call(`${running.url}api/v1/session`, {
        method: "POST",
        body: { username: "admin", password: "not the password at all" },
      });
      assert.equal(wrong.status, 401);
      const login = await call(`${running.url}api/v1/session`, {
        method: "POST",
        body: { username: "admin", password: "a long pre-seeded secret" },
      });
      assert.equal(login.status, 200, login.body);
    } finally {
      await running.close();
    }
    const garbled = path.join(root, "garbled");
    await writeFile(hashFile, "$6$saltsalt$not-a-metalman-hash\n");
    const fallback = await startConsole(
      { ...settings(), stateDir: garbled, adminPasswordHashFile: hashFile },
      api(),
      silentLog,
    );
    try {
      assert.ok(fallback.firstAdmin?.password, "a bad hash never locks the operator out");
    } finally {
      await fallback.close();
    }
    // The appliance: a generated password goes to a 0600 file (its text console shows it), not the banner.
    const passwordFile = path.join(root, "first-admin-password");
    const toFile = await startConsole(
      { ...settings(), stateDir: path.join(root, "to-file"), firstAdminPasswordFile: passwordFile },
      api(),
      silentLog,
    );
    try {
      assert.equal(toFile.firstAdmin?.passwordFile, passwordFile);
      assert.equal((await readFile(passwordFile, "utf8")).trim(), toFile.firstAdmin?.password);
      assert.equal((await stat(passwordFile)).mode & 0o777, 0o600);
      const login = await call(`${toFile.url}api/v1/session`, {
        method: "POST",
        body: { username: "admin", password: toFile.firstAdmin?.password },
      });
      assert.equal(login.status, 200, login.body);
    } finally {
      await toFile.close();
    }
  });

  it("refuses to start on a corrupt users file, and leaves the file as it was", async () => {
    const file = path.join(stateDir, "console", "users.json");
    const corrupt = '{"version": 1, "users": [{"name": "admin", "role": "admin", "hash": "trunc';
    await writeFile(file, corrupt);
    await assert.rejects(startConsole(settings(), api(), silentLog), /users\.json: not JSON.*will not replace it/);
    assert.equal(await readFile(file, "utf8"), corrupt, "untouched");
    const main = path.join(repoRoot(), "dist", "server", "main.js");
    const cli = await run(process.execPath, [main, "user", "list", "--state-dir", stateDir]).catch((e) => e);
    assert.equal(cli.code, 2);
    assert.match(cli.stderr, /will not replace it/);
    await unlink(file);
  });

  it("refuses half a TLS pair instead of replacing it", async () => {
    const keyFile = path.join(stateDir, "console", "tls", "key.pem");
    const key = await readFile(keyFile, "utf8");
    await unlink(path.join(stateDir, "console", "tls", "cert.pem"));
    await assert.rejects(
      startConsole(settings(), api(), silentLog),
      /cert\.pem is missing.*does not replace half a pair/,
    );
    assert.equal(await readFile(keyFile, "utf8"), key);
  });
});
