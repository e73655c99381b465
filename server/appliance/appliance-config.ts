import { parseDocument } from "yaml";
import { isPasswordHash } from "../console/password-hash.js";
import { isDns1123Label, isIPv4, isLabelValue, isMac } from "../inventory/formats.js";

/**
 * The appliance's first-boot (and every-boot) configuration: `appliance.yaml` on the config
 * partition, plus what the box itself shows (its NICs), turned into the files the system runs on:
 * the serve-pxe config file, systemd-networkd units and a status the banner and console show.
 *
 * Pure: the caller (server/app/appliance-config-cli.ts) reads the files and /sys/class/net and
 * writes the result. Everything that can be derived is; a bad setting is reported with its field
 * and replaced by its default, so the services that can run still run (issue 11, item 4).
 */

/** Where the appliance keeps its state: the data partition is mounted on /var/lib/metalman. */
export const APPLIANCE_PATHS = {
  state: "/var/lib/metalman",
  stateDir: "/var/lib/metalman/state",
  inventory: "/var/lib/metalman/machines",
  cacheDir: "/var/lib/metalman/cache",
  images: "/var/lib/metalman/images",
  shippedImages: "/usr/share/metalman/images",
  kubeconfig: "/var/lib/metalman/cluster/kubeconfig",
  adminPasswordHash: "/var/lib/metalman/console/admin-password.hash",
  /** A generated first-admin password (no admin.passwordHash): the text console shows it until the users change. */
  firstAdminPassword: "/var/lib/metalman/console/first-admin-password",
  consoleUsers: "/var/lib/metalman/state/console/users.json",
  consoleCert: "/var/lib/metalman/state/console/tls/cert.pem",
  /** Written at every boot by metalman-config; the console's Appliance page shows its errors. */
  statusFile: "/run/metalman/appliance-status.json",
  /** The console's uploaded update bundles wait here for metalman-upgrade-spool (root). */
  upgradeDir: "/var/lib/metalman/upgrade",
} as const;

export const DEFAULT_PROVISIONING_ADDRESS = "10.0.0.1/24";
export const DEFAULT_CONSOLE_PORT = 8443;
export const DEFAULT_HEALTH_PORT = 8081;

/** One ethernet NIC as the running box shows it. */
export interface NicInfo {
  name: string;
  mac: string;
  /** Resolved /sys/class/net/NAME/device path: orders NICs by bus position, which is stable. */
  busPath: string;
}

export interface ApplianceInputs {
  /** Text of appliance.yaml; undefined when the config partition has none (all derived). */
  yamlText: string | undefined;
  nics: readonly NicInfo[];
  /** Keys the installed `metalman serve-pxe --config` accepts (servePxeConfigKeys()). */
  servePxeKeys: ReadonlySet<string>;
  /** Whether a file exists on the config partition (relative path). */
  configFileExists: (relativePath: string) => boolean;
}

export interface NicPlan {
  name: string;
  mac: string;
  /** "dhcp" or a CIDR like 10.0.0.1/24. */
  address: string;
  gateway?: string;
  dns: string[];
}

export interface AppliancePlan {
  /** "field: message" for every setting that was wrong (and replaced by its default). */
  errors: string[];
  /** Settings that are right but cannot take effect with this build (planned flags). */
  notices: string[];
  site: string;
  mode: "standalone" | "cluster";
  management?: NicPlan;
  provisioning?: NicPlan;
  /** The serve-pxe config file (only keys the installed serve-pxe knows). */
  servePxe: Record<string, unknown>;
  /** `servePxe` without the operator's servePxe section (used when those overrides break it). */
  servePxeBase: Record<string, unknown>;
  /** systemd-networkd units for /run/systemd/network. */
  networkFiles: { name: string; text: string }[];
  ssh: { enabled: boolean; authorizedKeys: string[] };
  /** Relative path on the config partition of the kubeconfig to install (cluster mode). */
  kubeconfigSource?: string;
  adminPasswordHash?: string;
  /** What the banner prints: the console URL, or the health URL when the console is not built in. */
  consoleUrl?: string;
  healthUrl?: string;
}

type Yaml = Record<string, unknown>;

const TOP_KEYS = ["site", "mode", "kubeconfig", "admin", "interfaces", "dhcp", "console", "ssh", "servePxe"];

/** Builds the plan. Never throws: problems are `errors`, the plan falls back to defaults. */
export function planAppliance(inputs: ApplianceInputs): AppliancePlan {
  const errors: string[] = [];
  const notices: string[] = [];
  const doc = parseYamlMap(inputs.yamlText, errors);
  for (const key of Object.keys(doc)) {
    if (!TOP_KEYS.includes(key)) errors.push(`${key}: unknown key (known: ${TOP_KEYS.join(", ")})`);
  }

  const site = optionalString(doc, "site", errors, (v) => v === "" || isLabelValue(v), "must be a label value") ?? "";
  let mode = (optionalString(
    doc,
    "mode",
    errors,
    (v) => v === "standalone" || v === "cluster",
    "standalone or cluster",
  ) ?? "standalone") as AppliancePlan["mode"];
  let kubeconfigSource: string | undefined;
  const kubeconfig = optionalString(doc, "kubeconfig", errors, isRelativeFile, "a file name on the config partition");
  if (mode === "cluster") {
    const candidate = kubeconfig ?? "kubeconfig";
    if (!inputs.configFileExists(candidate)) {
      errors.push(`kubeconfig: cluster mode needs ${candidate} on the config partition; running standalone`);
      mode = "standalone";
    } else {
      kubeconfigSource = candidate;
    }
  } else if (kubeconfig !== undefined) {
    notices.push("kubeconfig: ignored in standalone mode");
  }

  const admin = section(doc, "admin", errors);
  const adminPasswordHash = optionalString(
    admin,
    "passwordHash",
    errors,
    isPasswordHash,
    "a metalman password hash (scrypt$N$r$p$salt$key: make one with `metalman user hash`)",
    "admin.",
  );
  if (admin.password !== undefined) {
    errors.push("admin.password: a clear-text password is never read; put admin.passwordHash");
  }

  const { management, provisioning } = planInterfaces(section(doc, "interfaces", errors), inputs.nics, errors);

  const dhcp = section(doc, "dhcp", errors);
  const dhcpMode =
    optionalString(
      dhcp,
      "mode",
      errors,
      (v) => ["interface", "proxy", "relay"].includes(v),
      "interface, proxy or relay",
      "dhcp.",
    ) ?? "interface";

  const consoleSection = section(doc, "console", errors);
  const consolePort = optionalPort(consoleSection, "port", errors, "console.") ?? DEFAULT_CONSOLE_PORT;

  const sshSection = section(doc, "ssh", errors);
  const sshEnabled = optionalBool(sshSection, "enabled", errors, "ssh.") ?? false;
  const authorizedKeys = optionalStringList(sshSection, "authorizedKeys", errors, "ssh.", (v) =>
    /^(ssh|ecdsa|sk)-[\w@.-]+ [A-Za-z0-9+/=]+( [^\n]*)?$/.test(v),
  );
  if (sshEnabled && authorizedKeys.length === 0) {
    errors.push("ssh.authorizedKeys: SSH needs at least one public key (passwords are never accepted); SSH stays off");
  }

  // serve-pxe settings: the appliance's own, then the operator's servePxe overrides.
  const mgmtIp = management && management.address !== "dhcp" ? management.address.split("/")[0] : undefined;
  const provIp = provisioning ? provisioning.address.split("/")[0] : undefined;
  const servePxe: Record<string, unknown> = {
    inventory: APPLIANCE_PATHS.inventory,
    stateDir: APPLIANCE_PATHS.stateDir,
    cacheDir: APPLIANCE_PATHS.cacheDir,
    imageRoot: [APPLIANCE_PATHS.images, APPLIANCE_PATHS.shippedImages],
    site,
    // The management NIC's address when it is static; with DHCP it is only known later (0.0.0.0).
    healthBindAddress: mgmtIp ?? "0.0.0.0",
    healthPort: DEFAULT_HEALTH_PORT,
  };
  if (provisioning && provIp) {
    servePxe.bindAddress = provIp;
    servePxe.dhcpMode = dhcpMode;
    if (dhcpMode !== "relay") servePxe.dhcpInterface = provisioning.name;
  } else {
    // No provisioning NIC: keep health (and the console) up, serve netboot on loopback only.
    servePxe.bindAddress = "127.0.0.1";
    servePxe.dhcpMode = "relay";
  }
  // Planned flags (console issue 8, cluster issue 10): emitted only when this build knows them.
  const planned: Record<string, unknown> = {
    consoleAddress: mgmtIp ?? "0.0.0.0",
    consolePort,
    applianceStatusFile: APPLIANCE_PATHS.statusFile,
    applianceUpgradeDir: APPLIANCE_PATHS.upgradeDir,
    ...(adminPasswordHash
      ? { consoleAdminPasswordHashFile: APPLIANCE_PATHS.adminPasswordHash }
      : { consoleFirstAdminPasswordFile: APPLIANCE_PATHS.firstAdminPassword }),
    ...(kubeconfigSource ? { kubeconfig: APPLIANCE_PATHS.kubeconfig } : {}),
  };
  for (const [key, value] of Object.entries(planned)) {
    if (inputs.servePxeKeys.has(key)) servePxe[key] = value;
    else if (key === "kubeconfig") {
      errors.push("mode: this build has no cluster sync (no --kubeconfig); running standalone");
      mode = "standalone";
    }
  }
  const overrides = section(doc, "servePxe", errors);
  const servePxeBase = { ...servePxe };
  for (const [key, value] of Object.entries(overrides)) {
    if (!inputs.servePxeKeys.has(key) || key === "config") {
      errors.push(`servePxe.${key}: not a serve-pxe setting of this build (see metalman serve-pxe --help)`);
      continue;
    }
    servePxe[key] = value;
  }

  const hasConsole = inputs.servePxeKeys.has("consolePort");
  const host = mgmtIp ?? "<management address>";
  if (!hasConsole) notices.push("console: not in this build (the banner shows the health URL)");
  return {
    errors,
    notices,
    site,
    mode,
    management,
    provisioning,
    servePxe,
    servePxeBase,
    networkFiles: networkFiles(management, provisioning),
    ssh: { enabled: sshEnabled && authorizedKeys.length > 0, authorizedKeys },
    kubeconfigSource: mode === "cluster" ? kubeconfigSource : undefined,
    adminPasswordHash,
    consoleUrl: hasConsole && consolePort !== 0 ? `https://${host}:${consolePort}/` : undefined,
    healthUrl: `http://${host}:${DEFAULT_HEALTH_PORT}/readyz`,
  };
}

function planInterfaces(
  doc: Yaml,
  nics: readonly NicInfo[],
  errors: string[],
): { management?: NicPlan; provisioning?: NicPlan } {
  for (const key of Object.keys(doc)) {
    if (key !== "management" && key !== "provisioning") errors.push(`interfaces.${key}: unknown role`);
  }
  const ordered = [...nics].sort((a, b) => (a.busPath < b.busPath ? -1 : a.busPath > b.busPath ? 1 : 0));
  const roles = ["management", "provisioning"] as const;
  const chosen: Partial<Record<(typeof roles)[number], NicInfo>> = {};
  const wanted: Record<string, Yaml> = {};
  // Named NICs first, then the rest by bus order: management is the first free one.
  for (const role of roles) {
    const spec = section(doc, role, errors, `interfaces.`);
    wanted[role] = spec;
    const name = optionalString(
      spec,
      "name",
      errors,
      isDns1123LabelOrIfname,
      "an interface name",
      `interfaces.${role}.`,
    );
    const macText = optionalString(spec, "mac", errors, isMac, "a MAC address", `interfaces.${role}.`);
    const mac = macText?.toLowerCase();
    if (name === undefined && mac === undefined) continue;
    const nic = ordered.find((n) => (name === undefined || n.name === name) && (mac === undefined || n.mac === mac));
    if (!nic) {
      errors.push(
        `interfaces.${role}: no NIC ${[name, mac].filter(Boolean).join(" / ")} on this box (found: ${describeNics(ordered)})`,
      );
      continue;
    }
    chosen[role] = nic;
  }
  if (chosen.management && chosen.management === chosen.provisioning) {
    errors.push(`interfaces: management and provisioning are the same NIC (${chosen.management.name})`);
    chosen.provisioning = undefined;
  }
  for (const role of roles) {
    if (chosen[role]) continue;
    const free = ordered.find((n) => n !== chosen.management && n !== chosen.provisioning);
    if (free) chosen[role] = free;
    else errors.push(`interfaces.${role}: no NIC left for this role (found: ${describeNics(ordered)})`);
  }
  const plan = (role: (typeof roles)[number], defaultAddress: string): NicPlan | undefined => {
    const nic = chosen[role];
    if (!nic) return undefined;
    const prefix = `interfaces.${role}.`;
    const spec = wanted[role] ?? {};
    let address =
      optionalString(
        spec,
        "address",
        errors,
        (v) => v === "dhcp" || isCidr(v),
        "dhcp or an address like 10.0.0.1/24",
        prefix,
      ) ?? defaultAddress;
    if (role === "provisioning" && address === "dhcp") {
      errors.push(
        `${prefix}address: the provisioning NIC serves DHCP itself and needs a static address; using ${DEFAULT_PROVISIONING_ADDRESS}`,
      );
      address = DEFAULT_PROVISIONING_ADDRESS;
    }
    const gateway = optionalString(spec, "gateway", errors, isIPv4, "an IPv4 address", prefix);
    const dns = optionalStringList(spec, "dns", errors, prefix, isIPv4);
    return { name: nic.name, mac: nic.mac, address, ...(gateway ? { gateway } : {}), dns };
  };
  return { management: plan("management", "dhcp"), provisioning: plan("provisioning", DEFAULT_PROVISIONING_ADDRESS) };
}

function networkFiles(management?: NicPlan, provisioning?: NicPlan): { name: string; text: string }[] {
  const files: { name: string; text: string }[] = [];
  if (management) {
    const lines = [
      "# written at boot by metalman-config from appliance.yaml (role: management)",
      "[Match]",
      `MACAddress=${management.mac}`,
      "",
      "[Network]",
    ];
    if (management.address === "dhcp") lines.push("DHCP=ipv4");
    else lines.push(`Address=${management.address}`);
    if (management.gateway) lines.push(`Gateway=${management.gateway}`);
    for (const d of management.dns) lines.push(`DNS=${d}`);
    lines.push("LinkLocalAddressing=no", "IPv6AcceptRA=no");
    // machine-id is transient on the read-only root: identify by MAC so the lease stays the same.
    if (management.address === "dhcp") lines.push("", "[DHCPv4]", "ClientIdentifier=mac");
    files.push({ name: "10-metalman-management.network", text: `${lines.join("\n")}\n` });
  }
  if (provisioning) {
    const lines = [
      "# written at boot by metalman-config from appliance.yaml (role: provisioning)",
      "[Match]",
      `MACAddress=${provisioning.mac}`,
      "",
      "[Link]",
      // metalman answers DHCP here: the address must be up even without a peer on the cable.
      "RequiredForOnline=no",
      "",
      "[Network]",
      `Address=${provisioning.address}`,
      "ConfigureWithoutCarrier=yes",
      "LinkLocalAddressing=no",
      "IPv6AcceptRA=no",
    ];
    for (const d of provisioning.dns) lines.push(`DNS=${d}`);
    files.push({ name: "20-metalman-provisioning.network", text: `${lines.join("\n")}\n` });
  }
  return files;
}

function parseYamlMap(text: string | undefined, errors: string[]): Yaml {
  if (text === undefined || text.trim() === "") return {};
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    errors.push(`appliance.yaml: ${doc.errors[0]!.message.split("\n")[0]}; every setting is derived instead`);
    return {};
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    errors.push("appliance.yaml: must be a mapping of settings; every setting is derived instead");
    return {};
  }
  return value as Yaml;
}

function section(doc: Yaml, key: string, errors: string[], prefix = ""): Yaml {
  const value = doc[key];
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    errors.push(`${prefix}${key}: must be a mapping`);
    return {};
  }
  return value as Yaml;
}

function optionalString(
  doc: Yaml,
  key: string,
  errors: string[],
  valid: (v: string) => boolean,
  expected: string,
  prefix = "",
): string | undefined {
  const value = doc[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string" || !valid(value)) {
    errors.push(`${prefix}${key}: ${expected}, got ${JSON.stringify(value)}`);
    return undefined;
  }
  return value;
}

function optionalBool(doc: Yaml, key: string, errors: string[], prefix: string): boolean | undefined {
  const value = doc[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") {
    errors.push(`${prefix}${key}: true or false, got ${JSON.stringify(value)}`);
    return undefined;
  }
  return value;
}

function optionalPort(doc: Yaml, key: string, errors: string[], prefix: string): number | undefined {
  const value = doc[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 65535) {
    errors.push(`${prefix}${key}: a port 0-65535 (0 = off), got ${JSON.stringify(value)}`);
    return undefined;
  }
  return value;
}

function optionalStringList(
  doc: Yaml,
  key: string,
  errors: string[],
  prefix: string,
  valid: (v: string) => boolean,
): string[] {
  const value = doc[key];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    errors.push(`${prefix}${key}: must be a list`);
    return [];
  }
  const out: string[] = [];
  value.forEach((item, i) => {
    if (typeof item === "string" && valid(item.trim())) out.push(item.trim());
    else errors.push(`${prefix}${key}[${i}]: not valid, got ${JSON.stringify(item).slice(0, 60)}`);
  });
  return out;
}

function isCidr(text: string): boolean {
  const [ip, bits, ...rest] = text.split("/");
  if (rest.length > 0 || ip === undefined || bits === undefined || !isIPv4(ip) || !/^\d{1,2}$/.test(bits)) return false;
  const n = Number(bits);
  return n >= 1 && n <= 30;
}

function isRelativeFile(text: string): boolean {
  return /^[A-Za-z0-9._-]{1,128}$/.test(text) && text !== "." && text !== "..";
}

function isDns1123LabelOrIfname(text: string): boolean {
  return text.length <= 15 && (isDns1123Label(text) || /^[A-Za-z0-9_.-]+$/.test(text));
}

function describeNics(nics: readonly NicInfo[]): string {
  return nics.length === 0 ? "none" : nics.map((n) => `${n.name} ${n.mac}`).join(", ");
}
