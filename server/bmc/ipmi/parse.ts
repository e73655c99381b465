import type { BootOverride, PowerState } from "../driver.js";

/**
 * Pure parsers of ipmitool's text output (LC_ALL=C). ipmitool's wording is stable across
 * 1.8.x; anything unrecognised becomes "Unknown" or a reported target, never a guess.
 */

/** `chassis power status`: "Chassis Power is on" / "Chassis Power is off". */
export function parsePowerStatus(stdout: string): PowerState {
  const m = /Chassis Power is (on|off)/i.exec(stdout);
  if (!m) return "Unknown";
  return m[1]!.toLowerCase() === "on" ? "On" : "Off";
}

/**
 * `chassis bootparam get 5` (boot flags). The valid bit says whether an override is armed at
 * all (a BMC clears it at the next boot, and IPMI 2.0 §28.12 also 60 s after it was set when
 * no restart follows), "only next boot" vs "all future boots" is Once vs Continuous.
 */
export function parseBootFlags(stdout: string): BootOverride {
  const device = /Boot Device Selector\s*:\s*(.+)/i.exec(stdout)?.[1]?.trim() ?? "";
  const valid = /Boot Flag Valid/i.test(stdout) && !/Boot Flag Invalid/i.test(stdout);
  const persistent = /Options apply to all future boots/i.test(stdout);
  const mode = /BIOS EFI boot/i.test(stdout) ? "UEFI" : /legacy/i.test(stdout) ? "Legacy" : undefined;
  let target: BootOverride["target"] = "None";
  let reportedTarget: string | undefined;
  if (/pxe/i.test(device)) target = "Pxe";
  else if (/hard-?drive|disk/i.test(device) && !/safe/i.test(device)) target = "Hdd";
  else if (device !== "" && !/no override/i.test(device)) reportedTarget = device;
  const out: BootOverride = {
    target,
    enabled:
      !valid || (target === "None" && reportedTarget === undefined) ? "Disabled" : persistent ? "Continuous" : "Once",
  };
  if (mode) out.mode = mode;
  if (reportedTarget) out.reportedTarget = reportedTarget;
  return out;
}
