/**
 * The process the console's VM proof runs inside its network namespace: the appliance (as
 * `serve-pxe` does, console listener included) with the BMC flows wired to a Redfish driver,
 * and one emulated BMC whose server is a qemu VM (as test/vm/bmc-e2e-appliance.ts, which it
 * follows). It prints the appliance's banner (console URL, fingerprint, first admin password)
 * on stderr, as serve-pxe does. Usage (argv):
 *   vm-console-appliance.js BMC_ADDR BMC_PORT WORK QEMU_ARGS_JSON -- serve-pxe flags...
 * The BMC password comes from $METALMAN_E2E_BMC_PASSWORD (never argv).
 */
import { createLogger } from "../../../server/app/logger.js";
import { startAppliance } from "../../../server/app/serve-pxe.js";
import { systemAddressProbes } from "../../../server/config/address-probes.js";
import { parseServePxeArgs } from "../../../server/config/serve-pxe-config.js";
import { MiniRedfishDriver } from "../../unit/bmc/emulator/mini-redfish-driver.js";
import { startVmBmc } from "../../vm/bmc-vm.js";

const { bmc, password, serveArgs } = await startVmBmc(
  "bmc-console",
  "vm-console-appliance.js BMC_ADDR BMC_PORT WORK QEMU_ARGS_JSON -- serve-pxe flags",
);

const config = parseServePxeArgs(serveArgs, process.env);
const log = createLogger(config.logLevel);
const appliance = await startAppliance(config, {
  log,
  probes: await systemAddressProbes(),
  bmcDrivers: (m) => {
    const redfish = m.spec.pxe?.redfish;
    return redfish ? new MiniRedfishDriver(redfish.url, redfish.username, password) : undefined;
  },
});
process.stderr.write(`${appliance.describe().join("\n")}\nvm-console-appliance: ready\n`);
process.once("SIGTERM", () => {
  void appliance
    .close({ graceMs: 0 })
    .then(() => bmc.close())
    .then(() => process.exit(0));
});
