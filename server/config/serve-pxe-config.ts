import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { isHttpUrl, isIPv4, isLabelValue } from "../inventory/formats.js";
import { formatGoDuration, parseGoDuration } from "./go-duration.js";
import { formatCidr, parseCidr } from "./trusted-proxy.js";

export const DHCP_MODES = ["relay", "interface", "proxy"] as const;
export type DhcpModeSetting = (typeof DHCP_MODES)[number] | "";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `metalman serve-pxe` settings after defaults, config file, flags and environment (spec §1.1). */
export interface ServePxeConfig {
  /** `-h` / `--help` was given: print `servePxeUsage()` and exit 0; nothing else was validated. */
  help: boolean;
  /** Absolute path of `--config`, when given. */
  configFile?: string;
  site: string;
  /** Absolute. OCI cache root (disposable). */
  cacheDir: string;
  /** Absolute. metalman's own state (Machine status, discovered MACs): keep across upgrades. */
  stateDir: string;
  /** Absolute. Folder of Machine YAML files. */
  inventory: string;
  bindAddress: string;
  /** IPv4 address of the health listener (`/healthz`, `/readyz` with details). Default 0.0.0.0, as upstream. */
  healthBindAddress: string;
  /** Absolute. Folders `dir:` images must lie in (`--image-root`, repeatable; docs/security.md). */
  imageRoots: string[];
  /** Netboot HTTP connections at most, in total and per client address (0 = unlimited). */
  httpMaxConnections: number;
  httpMaxConnectionsPerClient: number;
  /** Concurrent TFTP transfers, in total and per client address (a rack booting at once needs room). */
  tftpMaxTransfers: number;
  tftpMaxTransfersPerClient: number;
  /** Lock-step TFTP transfers on native worker threads at most (0 = none; docs/tftp.md). */
  tftpLockstepThreads: number;
  httpPort: number;
  healthPort: number;
  tftpPort: number;
  dhcpInterface: string;
  dhcpAutoInterface: boolean;
  /**
   * `--dhcp-mode`: "" = derived as before (interface with --dhcp-interface / --dhcp-auto-interface,
   * else relay); "relay", "interface", or "proxy" (proxyDHCP beside the site's DHCP server, needs an interface).
   */
  dhcpMode: DhcpModeSetting;
  dhcpPort: number;
  /** Without a trailing slash; "" = derive (see deriveAddresses). */
  serveUrl: string;
  leaderElectLeaseDurationMs: number;
  leaderElectRenewDeadlineMs: number;
  leaderElectRetryPeriodMs: number;
  /** SIGTERM: how long downloads in flight may finish before they are cut (0 = cut at once). */
  shutdownGraceMs: number;
  /** Normalised CIDRs (`10.0.0.0/8`, `192.0.2.7/32`): X-Forwarded-For is honoured only from these. */
  trustedProxies: string[];
  logLevel: LogLevel;
  /** env METALMAN_APISERVER_URL (overrides the cluster-info URL). */
  apiserverUrl?: string;
  // -- attestation (POST /attest, docs/attestation.md)
  /** Absolute. PEM bundle of TPM manufacturer CAs that EK certificates are verified against. */
  tpmCaBundle?: string;
  /** Check an EK certificate the agent sends (default true). */
  verifyEkCert: boolean;
  /** Refuse every Machine without a verified EK certificate (default false; per Machine: annotation). */
  requireEkCert: boolean;
  /** A Machine may attest this long after its last boot or repave (0 = any time). */
  attestWindowMs: number;
  /** Standalone token source: the kube-system Secret used when a Machine names none. */
  bootstrapTokenSecret: string;
  /** Absolute. PEM sent to attesting Machines as `clusterCA`. */
  clusterCaFile?: string;
  // -- OCI images (issue 7, docs/images.md)
  /** Absolute. YAML of per-registry settings (server/oci/registry-config.ts). */
  registryConfigFile?: string;
  /** Absolute. docker-style config.json with credentials. */
  registryAuthFile?: string;
  /** Absolute. PEM trusted for every registry. */
  registryCaBundle?: string;
  /** Registry hosts pulled over plain HTTP. */
  insecureRegistries: string[];
  /** Bytes; 0 = no budget. */
  imageCacheBudgetBytes: number;
  imageRefreshIntervalMs: number;
  imagePullConcurrency: number;
  // -- cluster sync (issue 10, docs/cluster.md)
  /** Absolute. `--kubeconfig`: Machines come from this cluster instead of --inventory. */
  kubeconfig?: string;
  /** `--in-cluster`: the pod's service account (KUBERNETES_SERVICE_HOST) instead of a kubeconfig. */
  inCluster: boolean;
  // -- overlay (issue 12, docs/overlay.md)
  /** `auto`: WireGuard to the site's gateways in cluster mode with a --site; `off`: never. */
  overlay: "auto" | "off";
  /** The Node object that stands for the appliance (default `metalman-<site>`). */
  overlayNodeName?: string;
  /** The appliance's address as the gateways route it (default: the server IP). */
  overlayNodeIp?: string;
  // -- web console (docs/console-api.md)
  /** Address of the console's HTTPS listener (default 127.0.0.1: open it up deliberately). */
  consoleAddress: string;
  /** Port of the console's HTTPS listener; 0 = no console. */
  consolePort: number;
  /** Absolute. The operator's certificate and key (PEM); default: a self-signed pair in the state dir. */
  consoleTlsCert?: string;
  consoleTlsKey?: string;
  /** Absolute. The first admin's password hash (`metalman user hash`), read while there is no user. */
  consoleAdminPasswordHashFile?: string;
  /** Absolute. Where a generated first-admin password is written (0600) instead of the banner. */
  consoleFirstAdminPasswordFile?: string;
  /** Absolute. The appliance image's first-boot status (appliance.yaml errors), shown on the console. */
  applianceStatusFile?: string;
  /** Absolute. The appliance image's upgrade spool: the console uploads update bundles there. */
  applianceUpgradeDir?: string;
}

/** The one error a bad command line or config file produces; the message names the field. */
export class ConfigError extends Error {
  readonly code = "CONFIG";
  override readonly name = "ConfigError";
}

export interface ParseOptions {
  /** Base for relative paths given as flags. Default process.cwd(). */
  cwd?: string;
  /** Injected for tests. Default fs.readFileSync(path, "utf8"). */
  readFile?: (file: string) => string;
}

type Kind = "string" | "bool" | "port" | "duration" | "path" | "list" | "pathList" | "count";

interface FlagSpec {
  flag: string;
  key: string;
  kind: Kind;
  help: string;
  defaultText: string;
}

const FLAGS: readonly FlagSpec[] = [
  {
    flag: "config",
    key: "config",
    kind: "path",
    defaultText: "",
    help: "YAML file with flag values (keys in camelCase)",
  },
  {
    flag: "site",
    key: "site",
    kind: "string",
    defaultText: '""',
    help: "serve only Machines labelled unbounded-cloud.io/site=<site>; empty: only unlabelled Machines",
  },
  {
    flag: "inventory",
    key: "inventory",
    kind: "path",
    defaultText: "$HOME/.unbounded/metalman/machines",
    help: "folder of Machine YAML files",
  },
  {
    flag: "cache-dir",
    key: "cacheDir",
    kind: "path",
    defaultText: "$HOME/.unbounded/metalman/cache",
    help: "OCI image cache (disposable)",
  },
  {
    flag: "state-dir",
    key: "stateDir",
    kind: "path",
    defaultText: "$HOME/.unbounded/metalman/state",
    help: "metalman state: Machine status, discovered MACs (keep it)",
  },
  {
    flag: "bind-address",
    key: "bindAddress",
    kind: "string",
    defaultText: "0.0.0.0",
    help: "IPv4 address of the TFTP and HTTP listeners",
  },
  {
    flag: "health-bind-address",
    key: "healthBindAddress",
    kind: "string",
    defaultText: "0.0.0.0",
    help: "IPv4 address of the health listener (/readyz shows file names there: use 127.0.0.1 or a management address)",
  },
  {
    flag: "image-root",
    key: "imageRoot",
    kind: "pathList",
    defaultText: "$HOME/.unbounded/metalman/images",
    help: "folder that dir: images must lie in (repeatable)",
  },
  {
    flag: "http-max-connections",
    key: "httpMaxConnections",
    kind: "count",
    defaultText: "1024",
    help: "netboot HTTP connections at most (0 = unlimited)",
  },
  {
    flag: "http-max-connections-per-client",
    key: "httpMaxConnectionsPerClient",
    kind: "count",
    defaultText: "32",
    help: "netboot HTTP connections per client address at most; trusted proxies are exempt (0 = unlimited)",
  },
  {
    flag: "tftp-max-transfers",
    key: "tftpMaxTransfers",
    kind: "count",
    defaultText: "512",
    help: "concurrent TFTP transfers at most; more get ERROR 'server busy' and retry",
  },
  {
    flag: "tftp-max-transfers-per-client",
    key: "tftpMaxTransfersPerClient",
    kind: "count",
    defaultText: "8",
    help: "concurrent TFTP transfers per client address at most",
  },
  {
    flag: "tftp-lockstep-threads",
    key: "tftpLockstepThreads",
    kind: "count",
    defaultText: "64",
    help: "lock-step TFTP transfers served from native worker threads at most; more, or 0, use the event loop",
  },
  { flag: "http-port", key: "httpPort", kind: "port", defaultText: "8880", help: "HTTP server port" },
  {
    flag: "health-port",
    key: "healthPort",
    kind: "port",
    defaultText: "8081",
    help: "health probe port (/healthz, /readyz; /metrics is on the HTTP port)",
  },
  { flag: "tftp-port", key: "tftpPort", kind: "port", defaultText: "69", help: "TFTP server port" },
  {
    flag: "dhcp-interface",
    key: "dhcpInterface",
    kind: "string",
    defaultText: '""',
    help: "interface mode: serve DHCP broadcasts on this NIC",
  },
  {
    flag: "dhcp-auto-interface",
    key: "dhcpAutoInterface",
    kind: "bool",
    defaultText: "false",
    help: "interface mode on the NIC that holds the server IP",
  },
  {
    flag: "dhcp-mode",
    key: "dhcpMode",
    kind: "string",
    defaultText: "interface with --dhcp-interface/--dhcp-auto-interface, else relay",
    help: "relay | interface | proxy (boot information only, beside the site's DHCP server; needs --dhcp-interface or --dhcp-auto-interface; also answers on 4011)",
  },
  { flag: "dhcp-port", key: "dhcpPort", kind: "port", defaultText: "67", help: "DHCP UDP port" },
  {
    flag: "serve-url",
    key: "serveUrl",
    kind: "string",
    defaultText: "http://<server-ip>:<http-port>",
    help: "external base URL handed to machines",
  },
  {
    flag: "leader-elect-lease-duration",
    key: "leaderElectLeaseDuration",
    kind: "duration",
    defaultText: "15s",
    help: "leader election lease duration",
  },
  {
    flag: "leader-elect-renew-deadline",
    key: "leaderElectRenewDeadline",
    kind: "duration",
    defaultText: "10s",
    help: "leader election renew deadline",
  },
  {
    flag: "leader-elect-retry-period",
    key: "leaderElectRetryPeriod",
    kind: "duration",
    defaultText: "2s",
    help: "leader election retry period",
  },
  {
    flag: "shutdown-grace",
    key: "shutdownGrace",
    kind: "duration",
    defaultText: "20s",
    help: "on SIGTERM, downloads in flight may finish for this long, then they are cut",
  },
  {
    flag: "trusted-proxy",
    key: "trustedProxy",
    kind: "list",
    defaultText: "none",
    help: "CIDR whose X-Forwarded-For is believed (repeatable)",
  },
  { flag: "log-level", key: "logLevel", kind: "string", defaultText: "info", help: LOG_LEVELS.join("|") },
  {
    flag: "tpm-ca-bundle",
    key: "tpmCaBundle",
    kind: "path",
    defaultText: "none",
    help: "PEM file of TPM manufacturer CAs; EK certificates sent to /attest are verified against it",
  },
  {
    flag: "verify-ek-cert",
    key: "verifyEkCert",
    kind: "bool",
    defaultText: "true",
    help: "check an EK certificate sent to /attest (its key must be the EK; signed by --tpm-ca-bundle)",
  },
  {
    flag: "require-ek-cert",
    key: "requireEkCert",
    kind: "bool",
    defaultText: "false",
    help: "refuse /attest without a verified EK certificate (per Machine: annotation metalman.unbounded-cloud.io/require-ek-cert)",
  },
  {
    flag: "attest-window",
    key: "attestWindow",
    kind: "duration",
    defaultText: "1h",
    help: "a Machine may attest this long after its last PXE boot or repave (0s = any time)",
  },
  {
    flag: "bootstrap-token-secret",
    key: "bootstrapTokenSecret",
    kind: "string",
    defaultText: '""',
    help: "kube-system Secret bootstrap-token-<id> handed to Machines without spec.kubernetes.bootstrapTokenRef",
  },
  {
    flag: "cluster-ca",
    key: "clusterCa",
    kind: "path",
    defaultText: "none",
    help: "PEM file sent to attesting Machines as clusterCA",
  },
  // -- OCI images (issue 7, docs/images.md)
  {
    flag: "registry-config",
    key: "registryConfig",
    kind: "path",
    defaultText: "none",
    help: "YAML file of per-registry settings: mirrors (rewrite), mirrorsOnly (air-gapped), insecure, caBundle",
  },
  {
    flag: "registry-auth-file",
    key: "registryAuthFile",
    kind: "path",
    defaultText: "none",
    help: "docker-style config.json with registry credentials (Machines may name their own spec.pxe.pullSecretRef)",
  },
  {
    flag: "registry-ca-bundle",
    key: "registryCaBundle",
    kind: "path",
    defaultText: "none",
    help: "PEM bundle trusted for every registry, besides the system CAs",
  },
  {
    flag: "insecure-registry",
    key: "insecureRegistry",
    kind: "list",
    defaultText: "none",
    help: "registry host[:port] pulled over plain HTTP (repeatable; loopback registries always are)",
  },
  {
    flag: "image-cache-budget",
    key: "imageCacheBudget",
    kind: "string",
    defaultText: "0",
    help: "unused cached images are deleted, oldest first, while --cache-dir holds more than this (e.g. 20GiB; 0 = keep)",
  },
  {
    flag: "image-refresh-interval",
    key: "imageRefreshInterval",
    kind: "duration",
    defaultText: "5m",
    help: "how often the tags Machines use are re-resolved (a moved tag is pulled while the old digest serves)",
  },
  {
    flag: "image-pull-concurrency",
    key: "imagePullConcurrency",
    kind: "count",
    defaultText: "2",
    help: "images pulled at once (each with up to 4 layer downloads)",
  },
  // cluster sync (issue 10, docs/cluster.md)
  {
    flag: "kubeconfig",
    key: "kubeconfig",
    kind: "path",
    defaultText: "none (standalone: --inventory)",
    help: "serve the site's Machines from this cluster (status, Events, Lease, TokenRequest); offline: the last-known state",
  },
  {
    flag: "in-cluster",
    key: "inCluster",
    kind: "bool",
    defaultText: "false",
    help: "like --kubeconfig, with the pod's service account",
  },
  // overlay (issue 12, docs/overlay.md)
  {
    flag: "overlay",
    key: "overlay",
    kind: "string",
    defaultText: "auto",
    help: "auto: WireGuard tunnels to the site's unbounded-net gateways in cluster mode with a --site; off: none",
  },
  {
    flag: "overlay-node-name",
    key: "overlayNodeName",
    kind: "string",
    defaultText: "metalman-<site>",
    help: "the Node object that carries the appliance's WireGuard public key for the gateways",
  },
  {
    flag: "overlay-node-ip",
    key: "overlayNodeIp",
    kind: "string",
    defaultText: "the server IP",
    help: "the appliance's address as the gateways route it (Node InternalIP, source of the overlay routes)",
  },
  {
    flag: "console-address",
    key: "consoleAddress",
    kind: "string",
    defaultText: "127.0.0.1",
    help: "IPv4 address of the web console's HTTPS listener (docs/console-api.md)",
  },
  {
    flag: "console-port",
    key: "consolePort",
    kind: "count",
    defaultText: "8443",
    help: "web console HTTPS port (0 = no console)",
  },
  {
    flag: "console-tls-cert",
    key: "consoleTlsCert",
    kind: "path",
    defaultText: "self-signed, made at first start in <state-dir>/console/tls",
    help: "PEM certificate (chain) of the console listener; with --console-tls-key",
  },
  {
    flag: "console-tls-key",
    key: "consoleTlsKey",
    kind: "path",
    defaultText: "none",
    help: "PEM private key of --console-tls-cert",
  },
  {
    flag: "console-admin-password-hash-file",
    key: "consoleAdminPasswordHashFile",
    kind: "path",
    defaultText: "none: a generated password, printed once",
    help: "file with the first admin's password hash (metalman user hash); read only while the console has no user",
  },
  {
    flag: "console-first-admin-password-file",
    key: "consoleFirstAdminPasswordFile",
    kind: "path",
    defaultText: "none: printed once in the start-up banner",
    help: "write a generated first-admin password to this file (0600) instead of the banner, so no log holds it",
  },
  {
    flag: "appliance-upgrade-dir",
    key: "applianceUpgradeDir",
    kind: "path",
    defaultText: "none: no upgrades from the API",
    help: "the appliance image's upgrade spool: POST /api/v1/appliance/upgrade stores update bundles there for its root unit",
  },
  {
    flag: "appliance-status-file",
    key: "applianceStatusFile",
    kind: "path",
    defaultText: "none",
    help: "the appliance image's first-boot status (appliance.yaml errors; docs/appliance.md), shown on the console's Appliance page",
  },
];

/** Usage text for `metalman serve-pxe --help`. */
/** The keys a `--config` file may hold (the flags' camelCase names). Appliance (issue 11): its
 * first-boot config writes only the keys this build knows, so planned flags turn on by themselves. */
export function servePxeConfigKeys(): ReadonlySet<string> {
  return new Set(FLAGS.map((spec) => spec.key).filter((key) => key !== "config"));
}

export function servePxeUsage(): string {
  const lines = ["Usage: metalman serve-pxe [flags]", "", "Flags:"];
  for (const spec of FLAGS) {
    const valueName = spec.kind === "list" ? "CIDR" : spec.kind === "pathList" ? "DIR" : "VALUE";
    const name = spec.kind === "bool" ? `--${spec.flag}` : `--${spec.flag} ${valueName}`;
    const def = spec.defaultText ? ` (default ${spec.defaultText})` : "";
    lines.push(`  ${name.padEnd(40)} ${spec.help}${def}`);
  }
  lines.push(`  ${"-h, --help".padEnd(40)} show this help`);
  lines.push("", "Environment:", `  ${"METALMAN_APISERVER_URL".padEnd(40)} API server URL handed to machines`);
  lines.push(
    "",
    "Config file keys are the flag names in camelCase (httpPort, bindAddress, inventory, trustedProxy, ...).",
  );
  lines.push("Flags override the config file; relative paths in the file are relative to the file's folder.");
  return lines.join("\n") + "\n";
}

/** A raw value and where it came from, so errors can name the field the user wrote. */
interface RawValue {
  value: string | boolean | string[];
  field: string;
  baseDir: string;
}

/**
 * Parses the arguments after `serve-pxe`. Precedence: flags > config file > defaults.
 * Throws ConfigError naming the field (`--http-port: …` or `metalman.yaml: httpPort: …`).
 */
export function parseServePxeArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  options: ParseOptions = {},
): ServePxeConfig {
  const cwd = options.cwd ?? process.cwd();
  const flags = scanArgv(argv, cwd);
  const defaults = defaultConfig(env, cwd);
  if (flags.help) return { ...defaults, help: true };

  const raw = new Map<string, RawValue>();
  const configArg = flags.values.get("config");
  let configFile: string | undefined;
  if (configArg) {
    configFile = path.resolve(cwd, String(configArg.value));
    for (const [key, value] of readConfigFile(configFile, String(configArg.value), options)) raw.set(key, value);
  }
  for (const [key, value] of flags.values) {
    if (key === "config") continue;
    raw.set(key, value);
  }

  const config: ServePxeConfig = { ...defaults, configFile };
  const fieldOf = (key: string) => raw.get(key)?.field ?? `--${FLAGS.find((f) => f.key === key)!.flag}`;
  for (const [key, item] of raw) applyValue(config, key, item);

  if (config.dhcpInterface !== "" && config.dhcpAutoInterface) {
    throw new ConfigError(
      `${fieldOf("dhcpAutoInterface")}: cannot be combined with --dhcp-interface (${config.dhcpInterface})`,
    );
  }
  const hasInterface = config.dhcpInterface !== "" || config.dhcpAutoInterface;
  if (config.dhcpMode === "relay" && hasInterface) {
    throw new ConfigError(
      `${fieldOf("dhcpMode")}: relay mode listens on every address; drop --dhcp-interface / --dhcp-auto-interface or use --dhcp-mode interface`,
    );
  }
  if ((config.dhcpMode === "interface" || config.dhcpMode === "proxy") && !hasInterface) {
    throw new ConfigError(
      `${fieldOf("dhcpMode")}: ${config.dhcpMode} mode answers broadcasts on one NIC: add --dhcp-interface NAME or --dhcp-auto-interface`,
    );
  }
  if ((config.consoleTlsCert === undefined) !== (config.consoleTlsKey === undefined)) {
    throw new ConfigError(
      `${fieldOf(config.consoleTlsCert === undefined ? "consoleTlsKey" : "consoleTlsCert")}: --console-tls-cert and --console-tls-key go together`,
    );
  }
  if (
    config.consolePort !== 0 &&
    config.consoleAddress === config.bindAddress &&
    config.consolePort === config.httpPort
  ) {
    throw new ConfigError(`${fieldOf("consolePort")}: must differ from the HTTP port (${config.httpPort})`);
  }
  if (config.healthPort === config.httpPort) {
    throw new ConfigError(`${fieldOf("healthPort")}: must differ from the HTTP port (${config.httpPort})`);
  }
  // client-go's leader election refuses these combinations at start; fail here with the flag's name.
  if (config.leaderElectLeaseDurationMs <= config.leaderElectRenewDeadlineMs) {
    throw new ConfigError(
      `${fieldOf("leaderElectRenewDeadline")}: must be shorter than the lease duration (${formatGoDuration(config.leaderElectLeaseDurationMs)})`,
    );
  }
  if (config.leaderElectRenewDeadlineMs <= config.leaderElectRetryPeriodMs * 1.2) {
    throw new ConfigError(
      `${fieldOf("leaderElectRetryPeriod")}: must be shorter than the renew deadline (${formatGoDuration(config.leaderElectRenewDeadlineMs)}) divided by 1.2`,
    );
  }

  const apiserverUrl = env.METALMAN_APISERVER_URL;
  if (apiserverUrl !== undefined && apiserverUrl !== "") {
    if (!isHttpUrl(apiserverUrl)) {
      throw new ConfigError(`METALMAN_APISERVER_URL: must be an https:// URL, got ${JSON.stringify(apiserverUrl)}`);
    }
    config.apiserverUrl = apiserverUrl.replace(/\/+$/, "");
  }
  return config;
}

function defaultConfig(env: NodeJS.ProcessEnv, cwd: string): ServePxeConfig {
  // Like upstream: $HOME/.unbounded/metalman/…, or relative to the working folder without HOME.
  // The state folder does NOT follow --cache-dir: the cache is disposable (upstream mounts an
  // emptyDir there), while the state holds EK and BMC pins that must survive it.
  const base = path.resolve(cwd, env.HOME ? env.HOME : ".", ".unbounded", "metalman");
  return {
    help: false,
    site: "",
    cacheDir: path.join(base, "cache"),
    stateDir: path.join(base, "state"),
    inventory: path.join(base, "machines"),
    bindAddress: "0.0.0.0",
    healthBindAddress: "0.0.0.0",
    imageRoots: [path.join(base, "images")],
    httpMaxConnections: 1024,
    httpMaxConnectionsPerClient: 32,
    tftpMaxTransfers: 512,
    tftpMaxTransfersPerClient: 8,
    tftpLockstepThreads: 64,
    httpPort: 8880,
    healthPort: 8081,
    tftpPort: 69,
    dhcpInterface: "",
    dhcpAutoInterface: false,
    dhcpMode: "",
    dhcpPort: 67,
    serveUrl: "",
    leaderElectLeaseDurationMs: 15_000,
    leaderElectRenewDeadlineMs: 10_000,
    leaderElectRetryPeriodMs: 2_000,
    shutdownGraceMs: 20_000,
    trustedProxies: [],
    logLevel: "info",
    verifyEkCert: true,
    requireEkCert: false,
    attestWindowMs: 3_600_000,
    bootstrapTokenSecret: "",
    insecureRegistries: [],
    imageCacheBudgetBytes: 0,
    imageRefreshIntervalMs: 300_000,
    imagePullConcurrency: 2,
    inCluster: false,
    overlay: "auto",
    consoleAddress: "127.0.0.1",
    consolePort: 8443,
  };
}

function scanArgv(argv: readonly string[], cwd: string): { help: boolean; values: Map<string, RawValue> } {
  const values = new Map<string, RawValue>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-h" || arg === "--help") {
      help = true;
      continue;
    }
    if (!arg.startsWith("--") || arg === "--") {
      throw new ConfigError(`unexpected argument ${JSON.stringify(arg)} (flags look like --name=value; see --help)`);
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const spec = FLAGS.find((f) => f.flag === name);
    if (!spec) throw new ConfigError(`--${name}: unknown flag (see --help)`);
    const field = `--${name}`;
    let text: string;
    if (eq !== -1) text = arg.slice(eq + 1);
    else if (spec.kind === "bool") text = "true";
    else {
      if (i + 1 >= argv.length) throw new ConfigError(`${field}: needs a value`);
      text = argv[++i]!;
    }
    if (spec.kind === "bool") {
      if (text !== "true" && text !== "false")
        throw new ConfigError(`${field}: must be true or false, got ${JSON.stringify(text)}`);
      values.set(spec.key, { value: text === "true", field, baseDir: cwd });
    } else if (spec.kind === "list") {
      const previous = values.get(spec.key);
      const list = [...((previous?.value as string[] | undefined) ?? []), ...splitList(text)];
      values.set(spec.key, { value: list, field, baseDir: cwd });
    } else if (spec.kind === "pathList") {
      // Repeatable; paths may hold commas, so no splitting.
      const previous = values.get(spec.key);
      values.set(spec.key, {
        value: [...((previous?.value as string[] | undefined) ?? []), text],
        field,
        baseDir: cwd,
      });
    } else {
      values.set(spec.key, { value: text, field, baseDir: cwd });
    }
  }
  return { help, values };
}

function readConfigFile(file: string, shown: string, options: ParseOptions): Map<string, RawValue> {
  let text: string;
  try {
    text = (options.readFile ?? ((f: string) => readFileSync(f, "utf8")))(file);
  } catch (err) {
    throw new ConfigError(
      `--config: cannot read ${shown}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(`${shown}: invalid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  const values = new Map<string, RawValue>();
  if (doc === null || doc === undefined) return values;
  if (typeof doc !== "object" || Array.isArray(doc))
    throw new ConfigError(`${shown}: must be a mapping of flag names to values`);
  const baseDir = path.dirname(file);
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    const field = `${shown}: ${key}`;
    const spec = FLAGS.find((f) => f.key === key);
    if (!spec || key === "config") {
      const hint = FLAGS.find((f) => f.flag === key);
      throw new ConfigError(`${field}: unknown key${hint ? ` (did you mean ${hint.key}?)` : ""}`);
    }
    if (value === null || value === undefined) continue;
    if (spec.kind === "bool") {
      if (typeof value !== "boolean")
        throw new ConfigError(`${field}: must be true or false, got ${JSON.stringify(value)}`);
      values.set(key, { value, field, baseDir });
    } else if (spec.kind === "list") {
      const items = Array.isArray(value) ? value : [value];
      if (!items.every((v) => typeof v === "string"))
        throw new ConfigError(`${field}: must be a string or a list of strings`);
      values.set(key, { value: items.flatMap((v) => splitList(v as string)), field, baseDir });
    } else if (spec.kind === "pathList") {
      const items = Array.isArray(value) ? value : [value];
      if (!items.every((v) => typeof v === "string"))
        throw new ConfigError(`${field}: must be a folder or a list of folders`);
      values.set(key, { value: items as string[], field, baseDir });
    } else {
      if (typeof value !== "string" && typeof value !== "number") {
        throw new ConfigError(
          `${field}: must be a ${spec.kind === "port" || spec.kind === "count" ? "number" : "string"}, got ${JSON.stringify(value)}`,
        );
      }
      values.set(key, { value: String(value), field, baseDir });
    }
  }
  return values;
}

function splitList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

function applyValue(config: ServePxeConfig, key: string, item: RawValue): void {
  const { field } = item;
  const text = typeof item.value === "string" ? item.value : "";
  const got = JSON.stringify(text);
  switch (key) {
    case "site":
      if (!isLabelValue(text)) {
        throw new ConfigError(
          `${field}: must be a label value (at most 63 letters, digits, '-', '_' or '.'), got ${got}`,
        );
      }
      config.site = text;
      return;
    case "inventory":
    case "cacheDir":
    case "stateDir":
      if (text.trim() === "") throw new ConfigError(`${field}: must not be empty`);
      config[key] = path.resolve(item.baseDir, text);
      return;
    case "bindAddress":
    case "healthBindAddress":
    case "consoleAddress":
      if (!isIPv4(text)) throw new ConfigError(`${field}: must be an IPv4 address like 0.0.0.0, got ${got}`);
      config[key] = text;
      return;
    case "imageRoot": {
      const roots = item.value as string[];
      if (roots.length === 0 || roots.some((root) => root.trim() === "" || root.includes("\0"))) {
        throw new ConfigError(`${field}: must name a folder`);
      }
      config.imageRoots = roots.map((root) => path.resolve(item.baseDir, root));
      return;
    }
    case "httpMaxConnections":
    case "httpMaxConnectionsPerClient": {
      const count = /^\d{1,7}$/.test(text) ? Number(text) : Number.NaN;
      if (!Number.isInteger(count)) throw new ConfigError(`${field}: must be an integer 0-9999999, got ${got}`);
      config[key] = count;
      return;
    }
    case "tftpLockstepThreads": {
      const count = /^\d{1,4}$/.test(text) ? Number(text) : Number.NaN;
      if (!Number.isInteger(count) || count > 1024)
        throw new ConfigError(`${field}: must be an integer 0-1024, got ${got}`);
      config[key] = count;
      return;
    }
    case "tftpMaxTransfers":
    case "tftpMaxTransfersPerClient": {
      // No "unlimited": every transfer holds a socket, and a flood must not exhaust descriptors.
      const count = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
      if (!Number.isInteger(count) || count < 1)
        throw new ConfigError(`${field}: must be an integer 1-99999, got ${got}`);
      config[key] = count;
      return;
    }
    case "httpPort":
    case "healthPort":
    case "tftpPort":
    case "dhcpPort":
      config[key] = parsePort(text, field);
      return;
    case "dhcpInterface":
      if (text !== "" && !/^[A-Za-z0-9_.:@-]{1,15}$/.test(text)) {
        throw new ConfigError(`${field}: must be a network interface name (1-15 characters), got ${got}`);
      }
      config.dhcpInterface = text;
      return;
    case "dhcpAutoInterface":
      config.dhcpAutoInterface = item.value === true;
      return;
    case "dhcpMode":
      if (text !== "" && !(DHCP_MODES as readonly string[]).includes(text)) {
        throw new ConfigError(`${field}: must be one of ${DHCP_MODES.join(", ")}, got ${got}`);
      }
      config.dhcpMode = text as DhcpModeSetting;
      return;
    case "serveUrl":
      if (text !== "" && !(isHttpUrl(text) && !/[?#]/.test(text))) {
        throw new ConfigError(`${field}: must be an http:// or https:// URL like http://10.0.0.2:8880, got ${got}`);
      }
      config.serveUrl = text.replace(/\/+$/, "");
      return;
    case "leaderElectLeaseDuration":
    case "leaderElectRenewDeadline":
    case "leaderElectRetryPeriod": {
      const ms = parseGoDuration(text);
      if (ms === undefined || ms <= 0)
        throw new ConfigError(`${field}: must be a positive Go duration like 15s, got ${got}`);
      config[`${key}Ms`] = ms;
      return;
    }
    case "shutdownGrace": {
      const ms = parseGoDuration(text);
      if (ms === undefined || ms < 0 || ms > 3_600_000)
        throw new ConfigError(`${field}: must be a Go duration from 0s to 1h like 20s, got ${got}`);
      config.shutdownGraceMs = ms;
      return;
    }
    case "trustedProxy":
      config.trustedProxies = (item.value as string[]).map((entry) => {
        const cidr = parseCidr(entry);
        if (!cidr)
          throw new ConfigError(
            `${field}: must be an IP address or CIDR like 10.0.0.0/8, got ${JSON.stringify(entry)}`,
          );
        return formatCidr(cidr);
      });
      return;
    case "consolePort": {
      const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
      if (!(port >= 0 && port <= 65535))
        throw new ConfigError(`${field}: must be an integer 0-65535 (0 = off), got ${got}`);
      config.consolePort = port;
      return;
    }
    case "consoleTlsCert":
    case "consoleTlsKey":
    case "consoleAdminPasswordHashFile":
    case "applianceStatusFile":
    case "applianceUpgradeDir":
    case "consoleFirstAdminPasswordFile":
      if (text.trim() === "") throw new ConfigError(`${field}: must name a file`);
      config[key] = path.resolve(item.baseDir, text);
      return;
    case "tpmCaBundle":
    case "clusterCa":
      if (text.trim() === "") throw new ConfigError(`${field}: must name a file`);
      config[key === "tpmCaBundle" ? "tpmCaBundle" : "clusterCaFile"] = path.resolve(item.baseDir, text);
      return;
    case "verifyEkCert":
    case "requireEkCert":
    case "inCluster": // cluster sync (issue 10)
      config[key] = item.value === true;
      return;
    case "overlay": // overlay (issue 12)
      if (text !== "auto" && text !== "off") throw new ConfigError(`${field}: must be auto or off, got ${got}`);
      config.overlay = text;
      return;
    case "overlayNodeName":
      if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(text)) {
        throw new ConfigError(`${field}: must be a Kubernetes node name (lower-case DNS subdomain), got ${got}`);
      }
      config.overlayNodeName = text;
      return;
    case "overlayNodeIp":
      if (isIP(text) === 0) throw new ConfigError(`${field}: must be an IP address, got ${got}`);
      config.overlayNodeIp = text;
      return;
    case "kubeconfig": // cluster sync (issue 10)
      if (text.trim() === "") throw new ConfigError(`${field}: must name a kubeconfig file`);
      config.kubeconfig = path.resolve(item.baseDir, text);
      return;
    case "attestWindow": {
      const ms = parseGoDuration(text);
      if (ms === undefined || ms < 0 || ms > 7 * 24 * 3_600_000)
        throw new ConfigError(`${field}: must be a Go duration from 0s to 168h like 1h, got ${got}`);
      config.attestWindowMs = ms;
      return;
    }
    case "bootstrapTokenSecret":
      if (text !== "" && !/^bootstrap-token-[a-z0-9]{6}$/.test(text))
        throw new ConfigError(
          `${field}: must be a kubeadm bootstrap token Secret name bootstrap-token-<id>, got ${got}`,
        );
      config.bootstrapTokenSecret = text;
      return;
    // -- OCI images (issue 7)
    case "registryConfig":
    case "registryAuthFile":
    case "registryCaBundle":
      if (text.trim() === "") throw new ConfigError(`${field}: must name a file`);
      config[key === "registryConfig" ? "registryConfigFile" : key] = path.resolve(item.baseDir, text);
      return;
    case "insecureRegistry":
      config.insecureRegistries = (item.value as string[]).map((host) => {
        if (!/^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/.test(host))
          throw new ConfigError(`${field}: must be a registry host[:port], got ${JSON.stringify(host)}`);
        return host.toLowerCase();
      });
      return;
    case "imageCacheBudget": {
      const bytes = parseByteSize(text);
      if (bytes === undefined) throw new ConfigError(`${field}: must be a size like 20GiB, 500MB or 0, got ${got}`);
      config.imageCacheBudgetBytes = bytes;
      return;
    }
    case "imageRefreshInterval": {
      const ms = parseGoDuration(text);
      if (ms === undefined || ms < 1000 || ms > 7 * 24 * 3_600_000)
        throw new ConfigError(`${field}: must be a Go duration from 1s to 168h like 5m, got ${got}`);
      config.imageRefreshIntervalMs = ms;
      return;
    }
    case "imagePullConcurrency": {
      const count = /^\d{1,2}$/.test(text) ? Number(text) : Number.NaN;
      if (!(count >= 1 && count <= 32)) throw new ConfigError(`${field}: must be an integer 1-32, got ${got}`);
      config.imagePullConcurrency = count;
      return;
    }
    case "logLevel":
      if (!(LOG_LEVELS as readonly string[]).includes(text)) {
        throw new ConfigError(`${field}: must be one of ${LOG_LEVELS.join(", ")}, got ${got}`);
      }
      config.logLevel = text as LogLevel;
      return;
  }
}

/** `20GiB`, `500MB`, `1024`, `0` → bytes (binary and decimal units). */
export function parseByteSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$/i.exec(text.trim());
  if (!m) return undefined;
  const unit = (m[2] ?? "B").toUpperCase().replace(/B$/, "");
  const powers: Record<string, number> = {
    "": 1,
    K: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    KI: 1024,
    MI: 1024 ** 2,
    GI: 1024 ** 3,
    TI: 1024 ** 4,
  };
  const factor = powers[unit];
  if (factor === undefined) return undefined;
  return Math.round(Number(m[1]) * factor);
}

function parsePort(text: string, field: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 1 && port <= 65535))
    throw new ConfigError(`${field}: must be an integer 1-65535, got ${JSON.stringify(text)}`);
  return port;
}
