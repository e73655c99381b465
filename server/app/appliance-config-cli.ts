import { existsSync, readFileSync } from "node:fs";
import { chmod, chown, copyFile, mkdir, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { stringify } from "yaml";
import { APPLIANCE_PATHS, type AppliancePlan, type NicInfo, planAppliance } from "../appliance/appliance-config.js";
import { ConfigError, parseServePxeArgs, servePxeConfigKeys } from "../config/serve-pxe-config.js";
import { writeFileAtomic } from "../util/atomic-file.js";

/**
 * `metalman appliance-config`: run at every boot by metalman-config.service (as root, before
 * systemd-networkd and metalman.service). Reads appliance.yaml from the config partition and the
 * box's NICs, writes the serve-pxe config, the networkd units and a status file (banner, console).
 * A bad appliance.yaml never stops the boot: its errors are shown and defaults are used.
 */

interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const USAGE = `Usage: metalman appliance-config [--config-dir /config] [--run-dir /run] [--sys-class-net /sys/class/net]
                                 [--state /var/lib/metalman] [--owner metalman] [--etc /etc] [--dry-run]
`;

export async function runApplianceConfigCli(argv: string[], io: Io): Promise<number> {
  const opts: Record<string, string> = {
    "config-dir": "/config",
    "run-dir": "/run",
    "sys-class-net": "/sys/class/net",
    state: APPLIANCE_PATHS.state,
    owner: "metalman",
    etc: "/etc",
  };
  let dryRun = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--dry-run") dryRun = true;
    else if (arg === "-h" || arg === "--help") {
      io.stdout(USAGE);
      return 0;
    } else if (arg.startsWith("--") && arg.slice(2) in opts && argv[i + 1] !== undefined)
      opts[arg.slice(2)] = argv[++i]!;
    else {
      io.stderr(`metalman appliance-config: unknown argument ${arg}\n${USAGE}`);
      return 2;
    }
  }
  const configDir = opts["config-dir"]!;
  const yamlFile = path.join(configDir, "appliance.yaml");
  const yamlText = existsSync(yamlFile) ? await readFile(yamlFile, "utf8") : undefined;
  const nics = await listNics(opts["sys-class-net"]!);
  const plan = planAppliance({
    yamlText,
    nics,
    servePxeKeys: servePxeConfigKeys(),
    configFileExists: (rel) => existsSync(path.join(configDir, rel)),
  });
  checkServePxe(plan);
  const serveYaml = `# written at boot by metalman-config from ${yamlFile}; edit that file, not this one\n${stringify(plan.servePxe)}`;
  if (dryRun) {
    io.stdout(serveYaml);
    for (const f of plan.networkFiles) io.stdout(`--- ${f.name}\n${f.text}`);
    io.stdout(`--- status\n${JSON.stringify(statusOf(plan, imageOf(opts.etc!)), null, 2)}\n`);
    return 0;
  }

  const runDir = path.join(opts["run-dir"]!, "metalman");
  await mkdir(runDir, { recursive: true, mode: 0o755 });
  // Read by metalman.service's user; it holds no secret (the kubeconfig and hashes are files of their own).
  await writeFileAtomic(path.join(runDir, "serve-pxe.yaml"), serveYaml);
  await chmod(path.join(runDir, "serve-pxe.yaml"), 0o644);
  const networkDir = path.join(opts["run-dir"]!, "systemd", "network");
  await mkdir(networkDir, { recursive: true });
  for (const name of await readdir(networkDir)) {
    if (name.includes("-metalman-")) await rm(path.join(networkDir, name), { force: true });
  }
  for (const f of plan.networkFiles) {
    await writeFileAtomic(path.join(networkDir, f.name), f.text);
    await chmod(path.join(networkDir, f.name), 0o644);
  }

  // The data partition: the folders metalman writes, owned by its user.
  const owner = lookupOwner(opts.etc!, opts.owner!);
  const state = opts.state!;
  for (const dir of ["state", "machines", "cache", "images", "cluster", "console", "upgrade"]) {
    const full = path.join(state, dir);
    await mkdir(full, { recursive: true, mode: 0o750 });
    if (owner) await chown(full, owner.uid, owner.gid);
  }
  await seedMachines(path.join(configDir, "machines"), path.join(state, "machines"), owner, plan);
  if (plan.kubeconfigSource) {
    const dest = path.join(state, "cluster", "kubeconfig");
    await copyFile(path.join(configDir, plan.kubeconfigSource), dest);
    await chmod(dest, 0o600);
    if (owner) await chown(dest, owner.uid, owner.gid);
  }
  if (plan.adminPasswordHash) {
    const dest = path.join(state, "console", "admin-password.hash");
    await writeFileAtomic(dest, `${plan.adminPasswordHash}\n`);
    await chmod(dest, 0o600);
    if (owner) await chown(dest, owner.uid, owner.gid);
  }
  const sshFlag = path.join(runDir, "ssh-enabled");
  if (plan.ssh.enabled) {
    await mkdir(path.join(runDir, "ssh"), { recursive: true, mode: 0o755 });
    await writeFileAtomic(path.join(runDir, "ssh", "authorized_keys"), `${plan.ssh.authorizedKeys.join("\n")}\n`);
    await writeFile(sshFlag, "");
  } else {
    await rm(sshFlag, { force: true });
  }
  await writeFileAtomic(
    path.join(runDir, "appliance-status.json"),
    `${JSON.stringify(statusOf(plan, imageOf(opts.etc!)), null, 2)}\n`,
  );
  await chmod(path.join(runDir, "appliance-status.json"), 0o644);
  // The same for the banner script, which sources it (no node start on a slow console).
  await writeFileAtomic(path.join(runDir, "appliance-status.env"), statusEnv(plan));
  await chmod(path.join(runDir, "appliance-status.env"), 0o644);
  for (const error of plan.errors) io.stderr(`appliance.yaml: ${error}\n`);
  io.stdout(
    `metalman-config: management ${describe(plan.management)}, provisioning ${describe(plan.provisioning)}, ` +
      `mode ${plan.mode}, site "${plan.site}", ${plan.errors.length} config error(s)\n`,
  );
  return 0;
}

/** The serve-pxe file must start serve-pxe: if an override breaks it, drop the overrides and say so. */
function checkServePxe(plan: AppliancePlan): void {
  const attempt = (): string | undefined => {
    try {
      const text = stringify(plan.servePxe);
      parseServePxeArgs(
        ["--config", "/run/metalman/serve-pxe.yaml"],
        { HOME: "/var/lib/metalman" },
        { readFile: () => text },
      );
      return undefined;
    } catch (err) {
      if (err instanceof ConfigError) return err.message;
      throw err;
    }
  };
  const problem = attempt();
  if (problem === undefined) return;
  plan.errors.push(
    `servePxe: ${problem.replace(/^\/run\/metalman\/serve-pxe.yaml: /, "")}; servePxe overrides ignored`,
  );
  plan.servePxe = { ...plan.servePxeBase };
  const still = attempt();
  if (still !== undefined) plan.errors.push(`serve-pxe config: ${still}`);
}

/** The image's version (<etc>/metalman-release, written by the build) and the root slot booted (kernel command line). */
function imageOf(etc: string): { imageVersion?: string; slot?: string } {
  const read = (file: string) => {
    try {
      return readFileSync(file, "utf8");
    } catch {
      return "";
    }
  };
  const imageVersion = /^VERSION=(\S+)$/m.exec(read(path.join(etc, "metalman-release")))?.[1];
  const slot = /(?:^|\s)metalman\.slot=([ab])(?:\s|$)/.exec(read("/proc/cmdline"))?.[1];
  return { ...(imageVersion ? { imageVersion } : {}), ...(slot ? { slot } : {}) };
}

function statusOf(plan: AppliancePlan, image: { imageVersion?: string; slot?: string }) {
  return {
    ...image,
    errors: plan.errors,
    notices: plan.notices,
    site: plan.site,
    mode: plan.mode,
    management: plan.management ?? null,
    provisioning: plan.provisioning ?? null,
    consoleUrl: plan.consoleUrl ?? null,
    healthUrl: plan.healthUrl ?? null,
    ssh: plan.ssh.enabled,
  };
}

/** Shell assignments, every value single-quoted (a quote inside becomes '\\''). */
function statusEnv(plan: AppliancePlan): string {
  const q = (v: string) => `'${v.replaceAll("'", "'\\''").replace(/[\r\n]/g, " ")}'`;
  const vars: [string, string][] = [
    ["MODE", plan.mode],
    ["SITE", plan.site],
    ["CONSOLE_URL", plan.consoleUrl ?? ""],
    ["HEALTH_URL", plan.healthUrl ?? ""],
    ["MGMT_NAME", plan.management?.name ?? ""],
    ["MGMT_MAC", plan.management?.mac ?? ""],
    ["MGMT_ADDRESS", plan.management?.address ?? ""],
    ["PROV_NAME", plan.provisioning?.name ?? ""],
    ["PROV_MAC", plan.provisioning?.mac ?? ""],
    ["PROV_ADDRESS", plan.provisioning?.address ?? ""],
    ["ERROR_COUNT", String(plan.errors.length)],
    ...plan.errors.map((e, i): [string, string] => [`ERROR_${i}`, e]),
  ];
  return `${vars.map(([k, v]) => `${k}=${q(v)}`).join("\n")}\n`;
}

function describe(nic: AppliancePlan["management"]): string {
  return nic ? `${nic.name} (${nic.mac}) ${nic.address}` : "none";
}

/** Physical ethernet NICs (type 1 with a device behind them), by name. */
async function listNics(sysClassNet: string): Promise<NicInfo[]> {
  const nics: NicInfo[] = [];
  let names: string[];
  try {
    names = await readdir(sysClassNet);
  } catch {
    return nics;
  }
  for (const name of names.sort()) {
    const dir = path.join(sysClassNet, name);
    try {
      if ((await readFile(path.join(dir, "type"), "utf8")).trim() !== "1") continue;
      if (!existsSync(path.join(dir, "device"))) continue;
      const mac = (await readFile(path.join(dir, "address"), "utf8")).trim().toLowerCase();
      const device = await readlink(path.join(dir, "device"));
      nics.push({ name, mac, busPath: path.resolve(dir, device) });
    } catch {
      // a NIC that vanished while we looked
    }
  }
  return nics;
}

function lookupOwner(etc: string, user: string): { uid: number; gid: number } | undefined {
  try {
    const line = readFileSync(path.join(etc, "passwd"), "utf8")
      .split("\n")
      .find((l) => l.split(":")[0] === user);
    if (!line) return undefined;
    const [, , uid, gid] = line.split(":");
    return { uid: Number(uid), gid: Number(gid) };
  } catch {
    return undefined;
  }
}

/** First boot: Machine files pre-seeded on the config partition go into an empty inventory. */
async function seedMachines(
  from: string,
  to: string,
  owner: { uid: number; gid: number } | undefined,
  plan: AppliancePlan,
): Promise<void> {
  if (!existsSync(from)) return;
  const present = (await readdir(to)).filter((n) => n.endsWith(".yaml") || n.endsWith(".yml"));
  if (present.length > 0) return;
  for (const name of await readdir(from)) {
    if (!/^[A-Za-z0-9._-]+\.ya?ml$/.test(name)) continue;
    const dest = path.join(to, name);
    try {
      await copyFile(path.join(from, name), dest);
      // Secrets in the inventory must not be group/other readable (README: Secrets).
      await chmod(dest, 0o600);
      if (owner) await chown(dest, owner.uid, owner.gid);
    } catch (err) {
      plan.errors.push(`machines/${name}: not copied (${(err as Error).message})`);
    }
  }
}
