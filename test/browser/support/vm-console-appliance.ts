/**
 * The process the console's VM proof runs inside its network namespace: the appliance (as
 * `serve-pxe` does, console listener included) with the BMC flows wired to a Redfish driver,
 * and one emulated BMC whose server is a qemu VM (as test/vm/bmc-e2e-appliance.ts, which it
 * follows). It prints the appliance's banner (console URL, fingerprint, first admin password)
 * on stderr, as serve-pxe does. Usage (argv):
 *   vm-console-appliance.js BMC_ADDR BMC_PORT WORK QEMU_ARGS_JSON -- serve-pxe flags...
 * The BMC password comes from $METALMAN_E2E_BMC_PASSWORD (never argv).
 */
import path from "node:path";
import { createLogger } from "../../../server/app/logger.js";
import { startAppliance } from "../../../server/app/serve-pxe.js";
import { selfSignedCertificate } from "../../../server/bmc/emulator/certificate.js";
import { QemuPower } from "../../../server/bmc/emulator/qemu-power.js";
import { EmulatedBmc } from "../../../server/bmc/emulator/redfish-service.js";
import { systemAddressProbes } from "../../../server/config/address-probes.js";
import { parseServePxeArgs } from "../../../server/config/serve-pxe-config.js";
import { MiniRedfishDriver } from "../../unit/bmc/emulator/mini-redfish-driver.js";

const [bmcAddr, bmcPort, work, qemuArgs, dashes, ...serveArgs] = process.argv.slice(2);
if (!bmcAddr || !bmcPort || !work || !qemuArgs || dashes !== "--") {
  process.stderr.write("usage: vm-console-appliance.js BMC_ADDR BMC_PORT WORK QEMU_ARGS_JSON -- serve-pxe flags\n");
  process.exit(2);
}
const password = process.env.METALMAN_E2E_BMC_PASSWORD ?? "";
const power = new QemuPower({ qmpSocket: path.join(work, "qmp.sock"), args: JSON.parse(qemuArgs) as string[] });
const bmc = new EmulatedBmc({ name: "bmc-console", username: "admin", password, power });
await bmc.listen(await selfSignedCertificate([bmcAddr]), bmcAddr, Number(bmcPort));
await power.on(false);

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
