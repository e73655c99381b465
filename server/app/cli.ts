import { runTpmCli } from "../attest/tpm-cli.js";
import { runBmcEmulator } from "../bmc/emulator/run.js"; // bmc-emulator (issue 6)
import { systemAddressProbes } from "../config/address-probes.js";
import { ConfigError, parseServePxeArgs, servePxeUsage } from "../config/serve-pxe-config.js";
import { runImageCli } from "./image-cli.js"; // OCI images (issue 7)
import { createLogger } from "./logger.js";
import { runManagementCli } from "./machine-cli.js";
import { startAppliance } from "./serve-pxe.js";
import { runStateCli } from "./state-cli.js";
import { runUserCli } from "./user-cli.js"; // web console users (issue 8)

const USAGE = `metalman: bare-metal PXE appliance (DHCP, TFTP, HTTP netboot)

Usage:
  metalman serve-pxe [flags]   serve netboot to the Machines of an inventory
  metalman state COMMAND       inspect and repair Machine state (quarantine, deleted Machines)
  metalman machine COMMAND     list, show, power, reboot, repave Machines (through a running serve-pxe)
  metalman operation COMMAND   list, show, create MachineOperations (through a running serve-pxe)
  metalman image COMMAND       list, pull, gc the OCI netboot images (through a running serve-pxe)
  metalman user COMMAND        the web console's users: add, list, passwd, role, delete, hash
  metalman inventory export    the inventory folder's Machines as manifests for kubectl apply (to cluster mode)
  metalman appliance-config    write the appliance's serve-pxe config and networkd units from appliance.yaml
  metalman tpm repin MACHINE   forget (or replace) a Machine's pinned TPM after a board swap
  metalman bmc-emulator        Redfish BMC emulator for tests and demos (dev tool)
  metalman help                this text (metalman serve-pxe --help for the flags)
`;

/**
 * Runs a command. Resolves to an exit code for commands that finish, or undefined for
 * `serve-pxe`, which keeps the process alive until SIGINT/SIGTERM.
 */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv): Promise<number | undefined> {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve-pxe":
      return servePxe(rest, env);
    case "state":
      return runStateCli(rest, env, {
        stdout: (s) => process.stdout.write(s),
        stderr: (s) => process.stderr.write(s),
      });
    // Management API clients over <state-dir>/metalman.sock (docs/management-api.md).
    case "machine":
    case "operation":
      return runManagementCli(command, rest, env, {
        stdout: (s) => process.stdout.write(s),
        stderr: (s) => process.stderr.write(s),
      });
    case "image": // OCI images (issue 7)
      return runImageCli(rest, env, { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) });
    case "inventory": // standalone -> cluster (issue 10)
      return (await import("./inventory-cli.js")).runInventoryCli(rest, env, {
        stdout: (s) => process.stdout.write(s),
        stderr: (s) => process.stderr.write(s),
      });
    case "user": // web console users (issue 8)
      return runUserCli(rest, env, { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) });
    // Appliance image (issue 11): the every-boot config step of metalman-config.service.
    case "appliance-config":
      return (await import("./appliance-config-cli.js")).runApplianceConfigCli(rest, {
        stdout: (s) => process.stdout.write(s),
        stderr: (s) => process.stderr.write(s),
      });
    case "tpm":
      return runTpmCli(rest, env, { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) });
    case "bmc-emulator": // issue 6: dev tool
      return runBmcEmulator(rest, env);
    case undefined:
    case "help":
    case "-h":
    case "--help":
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`metalman: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

async function servePxe(argv: string[], env: NodeJS.ProcessEnv): Promise<number | undefined> {
  let config: ReturnType<typeof parseServePxeArgs>;
  try {
    config = parseServePxeArgs(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`metalman serve-pxe: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (config.help) {
    process.stdout.write(servePxeUsage());
    return 0;
  }
  const log = createLogger(config.logLevel);
  let appliance: Awaited<ReturnType<typeof startAppliance>>;
  try {
    appliance = await startAppliance(config, { log, probes: await systemAddressProbes() });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log.fatal({ err }, `cannot start: ${message}`);
    process.stderr.write(`metalman serve-pxe: ${message}\n`);
    return 1;
  }
  // The banner goes to stderr so stdout stays pure JSON log lines.
  process.stderr.write(`metalman serve-pxe is serving\n  ${appliance.describe().join("\n  ")}\n${tryItHint(config)}`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      // A second signal: do not wait for the grace period, cut the downloads now.
      log.warn({ signal }, "second signal: cutting transfers in flight now");
      void appliance.close({ graceMs: 0 });
      return;
    }
    stopping = true;
    log.info({ signal, graceMs: config.shutdownGraceMs }, "shutting down: flushing state, then draining transfers");
    // A hung close must not keep the process alive forever: the grace plus time to close.
    const timer = setTimeout(() => {
      log.error({ signal }, "shutdown did not finish in time; exiting");
      process.exit(1);
    }, config.shutdownGraceMs + 10_000);
    timer.unref();
    appliance.close().then(
      () => {
        log.info({ signal }, "stopped");
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  // SIGHUP re-reads the inventory now (it is also watched; this is for filesystems where
  // change events get lost, and for operators used to the convention).
  process.on("SIGHUP", () => {
    log.info({ signal: "SIGHUP" }, "reloading inventory");
    appliance.inventory.reload().catch((err: unknown) => log.error({ err }, "inventory reload failed"));
  });
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  return undefined;
}

function tryItHint(config: ReturnType<typeof parseServePxeArgs>): string {
  const host = config.bindAddress === "0.0.0.0" ? "127.0.0.1" : config.bindAddress;
  return [
    "",
    "Try it (requests are identified by their source IP, which must be a Machine's lease IP):",
    `  curl http://${host}:${config.httpPort}/grub/grub.cfg          # template rendered for that Machine`,
    `  curl -o /dev/null -w '%{http_code}\\n' http://${host}:${config.httpPort}/nope   # 404`,
    `  tftp ${host} ${config.tftpPort} -c get grub/grub.cfg /dev/stdout`,
    `  curl http://${host}:${config.healthPort}/readyz; curl -s http://${host}:${config.httpPort}/metrics | head`,
    config.dhcpInterface === "" && !config.dhcpAutoInterface
      ? `DHCP is in relay mode on ${host}:${config.dhcpPort}: point a relay (dhcrelay) at it, or use --dhcp-interface IF on a provisioning NIC.`
      : "DHCP answers broadcasts on the provisioning interface: PXE-boot a Machine there.",
    "",
  ].join("\n");
}
