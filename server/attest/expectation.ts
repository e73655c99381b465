import type { BootEvent } from "../events/boot-events.js";
import type { Machine } from "../inventory/types.js";

/**
 * "Only a Machine that expects a token gets one" (issue 9 §3). A Machine expects to attest
 * shortly after it booted from us or was repaved: the agent attests from the freshly installed
 * system. The moment of that activity is the latest of
 * - a boot step on the event stream's per-Machine history (`dhcp.ack`, `tftp.transfer`,
 *   `http.artifact`, `http.template`, `pxe.disable`, `cloudinit.event`, result `ok`): live,
 *   but kept in memory only;
 * - the `lastTransitionTime` of the `Repaved` and `CloudInitDone` conditions in status: these
 *   survive a restart of the appliance, so a Machine that finished installing just before a
 *   restart can still attest.
 * A request more than `windowMs` after that moment (or with no such moment at all) is refused
 * with `not-expected`: the Machine must PXE boot (or be repaved) again. `windowMs = 0` turns the
 * check off (upstream behaviour: any time).
 */
export const BOOT_STEPS: ReadonlySet<string> = new Set([
  "dhcp.ack",
  "tftp.transfer",
  "http.artifact",
  "http.template",
  "pxe.disable",
  "cloudinit.event",
]);
const STATUS_CONDITIONS = ["Repaved", "CloudInitDone"];

export type Expectation =
  | { expected: true; lastActivity?: string; via?: string }
  | { expected: false; lastActivity?: string; via?: string };

export function lastBootActivity(
  machine: Machine,
  history: readonly Pick<BootEvent, "step" | "result" | "time">[],
): { time: number; via: string } | undefined {
  let best: { time: number; via: string } | undefined;
  const consider = (iso: string | undefined, via: string) => {
    const time = iso === undefined ? Number.NaN : Date.parse(iso);
    if (!Number.isNaN(time) && (best === undefined || time > best.time)) best = { time, via };
  };
  for (const event of history) {
    if (event.result === "ok" && BOOT_STEPS.has(event.step)) consider(event.time, event.step);
  }
  for (const condition of machine.status?.conditions ?? []) {
    if (STATUS_CONDITIONS.includes(condition.type))
      consider(condition.lastTransitionTime, `condition ${condition.type}`);
  }
  return best;
}

export function expectsAttestation(
  machine: Machine,
  history: readonly Pick<BootEvent, "step" | "result" | "time">[],
  now: Date,
  windowMs: number,
): Expectation {
  if (windowMs <= 0) return { expected: true };
  const last = lastBootActivity(machine, history);
  if (last === undefined) return { expected: false };
  const lastActivity = new Date(last.time).toISOString();
  // A clock step backwards must not open the window forever: only [activity, activity + window].
  const age = now.getTime() - last.time;
  return { expected: age >= -60_000 && age <= windowMs, lastActivity, via: last.via };
}

/** The annotation that makes a Machine refuse attestation without a verified EK certificate. */
export const REQUIRE_EK_CERT_ANNOTATION = "metalman.unbounded-cloud.io/require-ek-cert";

export function requiresEkCert(machine: Machine, globalDefault: boolean): boolean {
  const value = machine.metadata.annotations?.[REQUIRE_EK_CERT_ANNOTATION];
  if (value === "true") return true;
  if (value === "false") return false;
  return globalDefault;
}
