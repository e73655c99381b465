import { readFile } from "node:fs/promises";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { ManagementApiOptions } from "../api/plugin.js";
import { writeFileAtomic } from "../util/atomic-file.js";
import { AuditLog } from "./audit-log.js";
import { buildConsoleApp } from "./console-app.js";
import { generatePassword, isPasswordHash } from "./password-hash.js";
import { type ConsoleTls, loadConsoleTls } from "./tls-material.js";
import { UserStore } from "./user-store.js";

export interface ConsoleSettings {
  stateDir: string;
  address: string;
  port: number;
  tlsCert?: string;
  tlsKey?: string;
  trustedProxies: readonly string[];
  assetsDir?: string;
  /**
   * A file holding the first admin's password hash (the appliance writes appliance.yaml's
   * admin.passwordHash there); read only while the users file has nobody.
   */
  adminPasswordHashFile?: string;
  /**
   * Where a generated first-admin password goes (0600) instead of the start-up banner, so it never
   * reaches a log or the journal: the appliance's text console shows it from there.
   */
  firstAdminPasswordFile?: string;
}

export interface RunningConsole {
  app: FastifyInstance;
  url: string;
  tls: ConsoleTls;
  /** Set only on the start that created the first admin: print it once, never log it. */
  firstAdmin?: { name: string; password: string; passwordFile?: string };
  close(): Promise<void>;
}

/** The name of the admin made at first start when there is no user yet. */
export const FIRST_ADMIN = "admin";

/**
 * Starts the console listener: TLS material (made at first start), users (a first admin with
 * a generated password when the users file has nobody), the audit log, then HTTPS.
 * A corrupt users file or TLS pair stops the start with a message naming the file.
 */
export async function startConsole(
  settings: ConsoleSettings,
  api: Omit<ManagementApiOptions, "identify">,
  log: Logger,
): Promise<RunningConsole> {
  const tls = await loadConsoleTls({
    stateDir: settings.stateDir,
    certFile: settings.tlsCert,
    keyFile: settings.tlsKey,
    listenAddress: settings.address,
  });
  const users = new UserStore({ stateDir: settings.stateDir });
  await users.load();
  let firstAdmin: RunningConsole["firstAdmin"];
  if (users.size === 0) firstAdmin = await createFirstAdmin(users, settings.adminPasswordHashFile, log);
  if (firstAdmin && settings.firstAdminPasswordFile) {
    // Written after users.json, so "users.json is newer" later means someone changed the users.
    await writeFileAtomic(settings.firstAdminPasswordFile, `${firstAdmin.password}\n`); // 0600
    firstAdmin = { ...firstAdmin, passwordFile: settings.firstAdminPasswordFile };
  }
  const audit = new AuditLog({ stateDir: settings.stateDir });
  await audit.open();
  const { app } = buildConsoleApp({
    ...api,
    log,
    users,
    audit,
    https: { cert: tls.cert, key: tls.key },
    trustedProxies: settings.trustedProxies,
    assetsDir: settings.assetsDir,
  });
  try {
    await app.listen({ host: settings.address, port: settings.port });
  } catch (err) {
    await audit.close();
    throw err;
  }
  const bound = app.server.address();
  const port = typeof bound === "object" && bound ? bound.port : settings.port;
  const host = settings.address === "0.0.0.0" ? "127.0.0.1" : settings.address;
  const url = `https://${host}:${port}/`;
  log.info(
    { component: "console", url, fingerprint: tls.fingerprint, certificate: tls.source, certFile: tls.certFile },
    `console listening on ${url} (TLS certificate SHA-256 ${tls.fingerprint})`,
  );
  return {
    app,
    url,
    tls,
    firstAdmin,
    close: async () => {
      await app.close();
      await audit.close();
    },
  };
}

/**
 * The first admin: from the pre-seeded hash when there is a valid one (nothing to print), else
 * with a generated password the caller prints once. A missing or bad hash file never stops the
 * console: it says why in the log and falls back to the generated password.
 */
async function createFirstAdmin(
  users: UserStore,
  hashFile: string | undefined,
  log: Logger,
): Promise<RunningConsole["firstAdmin"]> {
  if (hashFile) {
    const hash = await readFile(hashFile, "utf8").then(
      (text) => text.trim(),
      (err: NodeJS.ErrnoException) => {
        if (err.code !== "ENOENT")
          log.error({ component: "console", err, file: hashFile }, "console: admin password hash file unreadable");
        return undefined;
      },
    );
    if (hash !== undefined && isPasswordHash(hash)) {
      await users.addHashed(FIRST_ADMIN, "admin", hash);
      log.info(
        { component: "console", user: FIRST_ADMIN, usersFile: users.file, file: hashFile },
        "console: no users yet; created the admin user with the pre-seeded password hash",
      );
      return undefined;
    }
    if (hash !== undefined) {
      log.error(
        { component: "console", file: hashFile },
        "console: the pre-seeded admin password hash is not a metalman hash (make one with `metalman user hash`); generating a password instead",
      );
    }
  }
  const password = generatePassword();
  await users.add(FIRST_ADMIN, "admin", password);
  log.warn(
    { component: "console", user: FIRST_ADMIN, usersFile: users.file },
    "console: no users yet; created the admin user with a generated password (printed once in the banner on stderr, never logged)",
  );
  return { name: FIRST_ADMIN, password };
}
