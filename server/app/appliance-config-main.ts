#!/usr/bin/env node
// The appliance's every-boot config step (metalman-config.service) as its own small entry point:
// the full CLI loads every server module, which costs tens of seconds on a slow (emulated) CPU
// before networkd may start. Same command as `metalman appliance-config`.
import { runApplianceConfigCli } from "./appliance-config-cli.js";

process.exitCode = await runApplianceConfigCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
});
