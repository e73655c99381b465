import type { BootOverride, BootTarget } from "../driver.js";
import type { Json } from "./client.js";

/**
 * Boot override bodies and readings (fixtures README item 4). We send only what must change:
 * target and enabled always, `BootSourceOverrideMode` only when the caller asks for a mode, the
 * resource has the property (DMTF's blade has none) and it differs (Dell starts a BIOS job on a
 * mode write; HPE may refuse it). The allowable lists are honoured: Lenovo has no `Continuous`.
 */
export interface BootPatch {
  body: Json;
  /** What the patch asks for, after the BMC's allowable values were applied. */
  enabled: BootOverride["enabled"];
}

export class BootNotSupported extends Error {}

export function bootPatch(boot: Json, wanted: BootOverride): BootPatch {
  const allowedTargets = stringList(boot["BootSourceOverrideTarget@Redfish.AllowableValues"]);
  const allowedEnabled = stringList(boot["BootSourceOverrideEnabled@Redfish.AllowableValues"]);
  const allowedModes = stringList(boot["BootSourceOverrideMode@Redfish.AllowableValues"]);
  if (wanted.enabled === "Disabled" || wanted.target === "None") {
    return { body: { Boot: { BootSourceOverrideEnabled: "Disabled" } }, enabled: "Disabled" };
  }
  if (allowedTargets && !allowedTargets.includes(wanted.target)) {
    throw new BootNotSupported(`boot target ${wanted.target} is not allowed (allowed: ${allowedTargets.join(", ")})`);
  }
  let enabled: BootOverride["enabled"] = wanted.enabled;
  if (allowedEnabled && !allowedEnabled.includes(enabled)) {
    const other = enabled === "Once" ? "Continuous" : "Once";
    if (!allowedEnabled.includes(other)) {
      throw new BootNotSupported(
        `BootSourceOverrideEnabled ${enabled} is not allowed (allowed: ${allowedEnabled.join(", ")})`,
      );
    }
    enabled = other;
  }
  const patch: Json = { BootSourceOverrideTarget: wanted.target, BootSourceOverrideEnabled: enabled };
  if (
    wanted.mode !== undefined &&
    "BootSourceOverrideMode" in boot &&
    boot.BootSourceOverrideMode !== wanted.mode &&
    (!allowedModes || allowedModes.includes(wanted.mode))
  ) {
    patch.BootSourceOverrideMode = wanted.mode;
  }
  return { body: { Boot: patch }, enabled };
}

export function readOverride(boot: Json | undefined): BootOverride {
  const raw = typeof boot?.BootSourceOverrideTarget === "string" ? boot.BootSourceOverrideTarget : "None";
  const target: BootTarget = raw === "Pxe" || raw === "Hdd" || raw === "None" ? raw : "None";
  const e = boot?.BootSourceOverrideEnabled;
  const enabled = e === "Once" || e === "Continuous" ? e : "Disabled";
  const out: BootOverride = { target, enabled };
  if (target !== raw) out.reportedTarget = raw;
  const mode = boot?.BootSourceOverrideMode;
  if (mode === "UEFI" || mode === "Legacy") out.mode = mode;
  return out;
}

function stringList(value: unknown): string[] | undefined {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : undefined;
}
