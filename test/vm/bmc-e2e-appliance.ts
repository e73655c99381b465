/**
 * The process the BMC e2e (bmc-repave.test.ts) runs inside its network namespace: the
 * appliance (startAppliance, as `serve-pxe` does) with the production BMC drivers (Redfish with
 * TOFU pinning, IPMI through ipmitool; passwords from the inventory's Secret), and one emulated
 * Redfish BMC whose server is a qemu VM. Both live in one process so qemu's tap and the
 * appliance's DHCP share the namespace. Usage (argv):
 *   bmc-e2e-appliance.js BMC_ADDR BMC_PORT WORK QEMU_ARGS_JSON -- serve-pxe flags...
 * The emulator's password comes from $METALMAN_E2E_BMC_PASSWORD (never argv: ps shows argv).
 * On SIGTERM it prints `{"emulator":{override,boots}}` and exits 0.
 */
import { createLogger } from "../../server/app/logger.js";
import { startAppliance } from "../../server/app/serve-pxe.js";
import { systemAddressProbes } from "../../server/config/address-probes.js";
import { parseServePxeArgs } from "../../server/config/serve-pxe-config.js";
import { startVmBmc } from "./bmc-vm.js";

const { bmc, power, serveArgs } = await startVmBmc(
  "bmc-e2e",
  "bmc-e2e-appliance.js BMC_ADDR BMC_PORT WORK QEMU_ARGS_JSON -- serve-pxe flags",
);

const config = parseServePxeArgs(serveArgs, process.env);
const log = createLogger(config.logLevel);
// No bmcDrivers: the production factory (server/bmc/driver-factory.ts), as serve-pxe runs it.
const appliance = await startAppliance(config, { log, probes: await systemAddressProbes() });
process.stderr.write("bmc-e2e-appliance: ready\n");
process.once("SIGTERM", () => {
  process.stdout.write(`${JSON.stringify({ emulator: { override: bmc.override, boots: power.boots } })}\n`);
  void appliance
    .close({ graceMs: 0 })
    .then(() => bmc.close())
    .then(() => process.exit(0));
});
