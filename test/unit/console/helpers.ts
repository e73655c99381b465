import type { FastifyInstance } from "fastify";
import { scrub } from "../../../server/api/views.js";
import { AuditLog } from "../../../server/console/audit-log.js";
import { buildConsoleApp, type ConsoleApp, type ConsoleAppOptions } from "../../../server/console/console-app.js";
import type { ScryptCost } from "../../../server/console/password-hash.js";
import { UserStore } from "../../../server/console/user-store.js";
import { BootEventBus } from "../../../server/events/boot-events.js";
import { FileDiscoveryStore } from "../../../server/inventory/discovery-store.js";
import { FileInventory } from "../../../server/inventory/file-inventory.js";
import { FileInventoryWriter } from "../../../server/inventory/file-inventory-writer.js";
import { type Scratch, scratchInventory, silentLog } from "../api/helpers.js";

/** Cheap scrypt for tests (the cost is stored in the hash; production uses 2^15). */
export const TEST_COST: ScryptCost = { log2N: 10, r: 8, p: 1 };

export const PASSWORDS = {
  root: "root-password-123",
  ops: "ops-password-1234",
  view: "view-password-123",
} as const;

export interface ConsoleFixture {
  app: FastifyInstance;
  console: ConsoleApp;
  users: UserStore;
  audit: AuditLog;
  inventory: FileInventory;
  events: BootEventBus;
  discovery: FileDiscoveryStore;
  scratch: Scratch;
  /** The MachineOperations created so far. */
  backendOps(): unknown[];
  close(): Promise<void>;
}

/**
 * The console app (inject(), no TLS) over the management API fixture's inventory (node-01
 * Redfish with secrets in its URLs, node-02 plain, node-03 quarantined), with three users:
 * root (admin), ops (operator), view (viewer).
 */
export async function consoleFixture(extra: Partial<ConsoleAppOptions> = {}): Promise<ConsoleFixture> {
  const scratch = await scratchInventory("mm-console-");
  const inventory = new FileInventory({
    dir: scratch.inventoryDir,
    stateDir: scratch.stateDir,
    log: silentLog,
    watch: false,
    deletionGraceMs: 50,
  });
  await inventory.load();
  const events = new BootEventBus({ startSeq: 1000 });
  const users = new UserStore({ stateDir: scratch.stateDir, cost: TEST_COST });
  await users.load();
  await users.add("root", "admin", PASSWORDS.root);
  await users.add("ops", "operator", PASSWORDS.ops);
  await users.add("view", "viewer", PASSWORDS.view);
  const audit = new AuditLog({ stateDir: scratch.stateDir });
  await audit.open();
  const discovery = new FileDiscoveryStore({ stateDir: scratch.stateDir, log: silentLog });
  await discovery.load();
  const writer = new FileInventoryWriter({ dir: scratch.inventoryDir, inventory, site: "", scrub });
  const built = buildConsoleApp({
    log: silentLog,
    backend: inventory,
    events,
    users,
    audit,
    writer,
    discovery,
    assetsDir: `${scratch.root}/no-console-build`,
    heartbeatMs: 60_000,
    ...extra,
  });
  await built.app.ready();
  return {
    app: built.app,
    console: built,
    users,
    audit,
    inventory,
    events,
    discovery,
    scratch,
    backendOps: () => [...inventory.operations.list()],
    async close() {
      await built.app.close();
      await audit.close();
      await discovery.close();
      await inventory.close();
      await scratch.cleanup();
    },
  };
}

export interface LoggedIn {
  cookie: string;
  csrf: string;
  headers: Record<string, string>;
}

export async function login(
  app: FastifyInstance,
  username: string,
  password: string,
  ip = "127.0.0.1",
): Promise<LoggedIn> {
  const res = await app.inject({
    method: "POST",
    url: "/api/v1/session",
    payload: { username, password },
    remoteAddress: ip,
  });
  if (res.statusCode !== 200) throw new Error(`login ${username}: ${res.statusCode} ${res.body}`);
  const setCookie = String(res.headers["set-cookie"]);
  const cookie = setCookie.split(";", 1)[0]!;
  const csrf = (res.json() as { csrfToken: string }).csrfToken;
  return { cookie, csrf, headers: { cookie, "x-csrf-token": csrf } };
}
