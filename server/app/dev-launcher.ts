/**
 * `npm start`: the quick start in one command. It starts a VM-less emulated BMC for the example
 * Machine (`metalman bmc-emulator`) and then `metalman serve-pxe --config examples/dev.yaml`, so a
 * newcomer's `metalman machine power cycle node-01` acts on something. docs/bmc-ipmi.md ("npm start").
 *
 * What it prepares under the dev state folder (`<stateDir>/../bmc`, i.e. .state/dev/bmc):
 *  - `password`: a random BMC password (0600), made once;
 *  - `tls/`: the emulator's certificate and key (0600), kept across restarts so the fingerprint
 *    the appliance pinned at first contact (trust on first use) still matches next time.
 * And in the inventory folder, the Secret the example Machine's passwordRef names
 * (`dev-bmc-secret.yaml`, 0600, git-ignored): the inventory refuses a Secret file other users
 * can read, and a git checkout is 0644, so it is written here rather than committed, and no
 * password that looks real is ever in the repository.
 *
 * Both children get SIGINT/SIGTERM forwarded; when serve-pxe ends, the emulator is stopped and
 * its exit code is ours. If the emulator dies, serve-pxe is stopped.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { parse } from "yaml";
import { writeFileAtomic } from "../util/atomic-file.js";

export const DEV_SECRET_FILE = "dev-bmc-secret.yaml";
export const DEV_SECRET_NAME = "node-01-bmc";

export interface DevLauncherOptions {
  /** dist/server/main.js */
  main: string;
  /** The serve-pxe config (examples/dev.yaml). */
  config: string;
  /** Port of the first emulated BMC (the example Machine's redfish.url names it). */
  bmcPort: number;
  /** How many BMCs: node-01, node-02, ... */
  bmcCount: number;
  env: NodeJS.ProcessEnv;
  out: (line: string) => void;
}

export function parseDevArgs(argv: string[]): Omit<DevLauncherOptions, "main" | "env" | "out"> {
  const o = { config: "examples/dev.yaml", bmcPort: 8643, bmcCount: 1 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const v = argv[++i];
    if (v === undefined) throw new Error(`${arg} needs a value`);
    if (arg === "--config") o.config = v;
    else if (arg === "--bmc-port") o.bmcPort = Number(v);
    else if (arg === "--bmc-count") o.bmcCount = Number(v);
    else throw new Error(`unknown flag ${arg} (npm start takes --config, --bmc-port, --bmc-count)`);
  }
  if (!Number.isInteger(o.bmcPort) || o.bmcPort < 1 || o.bmcPort > 65535) throw new Error("--bmc-port: 1..65535");
  if (!Number.isInteger(o.bmcCount) || o.bmcCount < 1 || o.bmcCount > 100) throw new Error("--bmc-count: 1..100");
  return o;
}

/** Inventory and state folders of the serve-pxe config (relative paths are relative to the file). */
export async function devFolders(config: string): Promise<{ inventory: string; stateDir: string; bmcDir: string }> {
  const doc = (parse(await readFile(config, "utf8")) ?? {}) as Record<string, unknown>;
  const base = path.dirname(path.resolve(config));
  const inventory = path.resolve(base, String(doc.inventory ?? "inventory"));
  const stateDir = path.resolve(base, String(doc.stateDir ?? ".state"));
  return { inventory, stateDir, bmcDir: path.join(path.dirname(stateDir), "bmc") };
}

/** The dev BMC password (made once, 0600) and the inventory Secret that carries it (0600). */
export async function prepareDevSecrets(inventory: string, bmcDir: string): Promise<string> {
  await mkdir(bmcDir, { recursive: true, mode: 0o700 });
  const passwordFile = path.join(bmcDir, "password");
  let password: string;
  try {
    password = (await readFile(passwordFile, "utf8")).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    password = `dev-${randomBytes(12).toString("base64url")}`;
    await writeFileAtomic(passwordFile, `${password}\n`);
  }
  if (password === "") throw new Error(`${passwordFile} is empty: delete it to make a new one`);
  await chmod(passwordFile, 0o600);
  const secret = [
    "# Written by `npm start` (server/app/dev-launcher.ts): the password of the emulated dev BMCs.",
    "# Not in git (0600 is required for a Secret file, and a checkout is 0644).",
    "apiVersion: v1",
    "kind: Secret",
    `metadata: {name: ${DEV_SECRET_NAME}, namespace: default}`,
    `stringData: {password: ${JSON.stringify(password)}}`,
    "",
  ].join("\n");
  const secretFile = path.join(inventory, DEV_SECRET_FILE);
  const current = await readFile(secretFile, "utf8").catch(() => "");
  if (current !== secret) await writeFileAtomic(secretFile, secret);
  await chmod(secretFile, 0o600);
  return passwordFile;
}

export async function runDevLauncher(o: DevLauncherOptions): Promise<number> {
  const { inventory, stateDir, bmcDir } = await devFolders(o.config);
  const passwordFile = await prepareDevSecrets(inventory, bmcDir);
  const emulator = spawn(
    process.execPath,
    [
      ...[o.main, "bmc-emulator", "--listen", "127.0.0.1", "--port", String(o.bmcPort)],
      ...["--count", String(o.bmcCount), "--tls-dir", path.join(bmcDir, "tls"), "--password-file", passwordFile],
    ],
    { env: o.env, stdio: ["ignore", "pipe", "inherit"] },
  );
  const lines = createInterface({ input: emulator.stdout! });
  const started: Array<{ name: string; url: string }> = [];
  const ready = await new Promise<boolean>((resolve) => {
    emulator.once("exit", () => resolve(false));
    lines.on("line", (line) => {
      try {
        started.push(JSON.parse(line) as { name: string; url: string });
      } catch {
        return;
      }
      if (started.length === o.bmcCount) resolve(true);
    });
  });
  if (!ready) {
    o.out("npm start: the BMC emulator did not start (see above)");
    return 1;
  }
  for (const b of started) o.out(`bmc-emulator  ${b.name} → ${b.url}  (VM-less: power state only)`);
  o.out(`try           npx metalman machine power cycle node-01 --state-dir ${path.relative(process.cwd(), stateDir)}`);
  const server = spawn(process.execPath, [o.main, "serve-pxe", "--config", o.config], {
    env: o.env,
    stdio: "inherit",
  });
  const stopAll = (signal: NodeJS.Signals) => {
    for (const child of [server, emulator]) if (running(child)) child.kill(signal);
  };
  const onSignal = (signal: NodeJS.Signals) => stopAll(signal);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  emulator.once("exit", () => {
    if (running(server)) server.kill("SIGTERM");
  });
  const code = await new Promise<number>((resolve) => server.once("exit", (c, s) => resolve(c ?? (s ? 1 : 0))));
  if (running(emulator)) {
    emulator.kill("SIGTERM");
    await new Promise((resolve) => emulator.once("exit", resolve));
  }
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  return code;
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}
