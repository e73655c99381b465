/**
 * A Machine's events as boot attempts, and each event in words an operator can act on. Pure
 * functions (no DOM, no state): the detail view renders what these return, and a unit test
 * feeds them real event shapes.
 *
 * An attempt starts at a power action (the BMC power-cycles or powers on the server), at an
 * operator's request, or at a DHCP DISCOVER that comes after a quiet gap (a server that reboots
 * by itself). Everything until the next such start belongs to it.
 */
import type { BootEvent, Scalar } from "../api/types";

export interface TimelineEntry {
  event: BootEvent;
  /** Milliseconds since the attempt started. */
  offsetMs: number;
  /** Duration the step reported (`detail.durationMs`, `detail.ms`), when known. */
  durationMs?: number;
  title: string;
  /** For a failure: what went wrong and what to look at, in words. */
  problem?: string;
  facts: Array<[string, string]>;
  tone: "ok" | "bad" | "warn" | "info";
  /** The same step with the same outcome, back to back (a retry loop), shown once: how many times. */
  repeats: number;
  /** Time of the last repeat. */
  lastTime: string;
}

export interface BootAttempt {
  index: number;
  startedAt: string;
  endedAt: string;
  trigger: string;
  outcome: "succeeded" | "failed" | "in progress";
  entries: TimelineEntry[];
}

/** A DISCOVER after this much silence is a new boot. */
const QUIET_GAP_MS = 5 * 60_000;

/** BMC calls that begin a boot when nothing asked for them just before (a counter bump, a flow retry). */
const BMC_STARTS = new Set(["bmc.set-boot-override", "bmc.power", "bmc.power-cycle", "bmc.reset"]);

function isStart(event: BootEvent, previous: BootEvent | undefined): boolean {
  if (!previous) return true;
  // Every operator request is an attempt of its own; the BMC calls it causes belong to it.
  if (event.step === "operation.requested") return true;
  const previousRoom = previous.step.split(".")[0];
  if (BMC_STARTS.has(event.step)) return previousRoom !== "bmc" && previousRoom !== "operation";
  if (event.step === "dhcp.discover") {
    return Date.parse(event.time) - Date.parse(previous.time) > QUIET_GAP_MS;
  }
  return false;
}

export function groupAttempts(events: readonly BootEvent[]): BootAttempt[] {
  const sorted = [...events].sort((a, b) => a.seq - b.seq);
  const attempts: BootAttempt[] = [];
  let current: BootAttempt | undefined;
  let startMs = 0;
  let previous: BootEvent | undefined;
  for (const event of sorted) {
    if (!current || isStart(event, previous)) {
      startMs = Date.parse(event.time);
      current = {
        index: attempts.length + 1,
        startedAt: event.time,
        endedAt: event.time,
        trigger: triggerOf(event),
        outcome: "in progress",
        entries: [],
      };
      attempts.push(current);
    }
    const entry = describeEvent(event);
    entry.offsetMs = Math.max(0, Date.parse(event.time) - startMs);
    const last = current.entries.at(-1);
    if (last && sameOutcome(last, entry)) {
      last.repeats += 1;
      last.lastTime = event.time;
    } else current.entries.push(entry);
    current.endedAt = event.time;
    if (isSuccessEnd(event)) current.outcome = "succeeded";
    else if (entry.tone === "bad") current.outcome = "failed";
    previous = event;
  }
  return attempts.reverse();
}

function sameOutcome(a: TimelineEntry, b: TimelineEntry): boolean {
  return (
    a.event.step === b.event.step &&
    a.event.result === b.event.result &&
    a.event.reason === b.event.reason &&
    a.tone !== "ok" &&
    a.problem === b.problem
  );
}

function isSuccessEnd(event: BootEvent): boolean {
  return (
    (event.step === "pxe.disable" && event.result === "ok") ||
    (event.step === "operation.done" && event.result === "ok") ||
    (event.step === "cloudinit.event" && event.result === "ok" && detailText(event, "name") === "modules-final")
  );
}

function triggerOf(event: BootEvent): string {
  if (event.step === "operation.requested") {
    const kind = detailText(event, "kind") ?? detailText(event, "operationKind");
    const user = detailText(event, "user");
    return `${kind ? humanKind(kind) : "Operation"} requested${user ? ` by ${user}` : ""}`;
  }
  if (event.step.startsWith("bmc.")) return "BMC power action";
  if (event.step.startsWith("dhcp.")) return "Network boot (DHCP)";
  return "Activity";
}

function humanKind(kind: string): string {
  switch (kind) {
    case "HostReplace":
      return "Repave";
    case "HostReboot":
      return "Reboot";
    case "HostPowerOn":
      return "Power on";
    case "HostPowerOff":
      return "Power off";
    default:
      return kind;
  }
}

function detailText(event: BootEvent, key: string): string | undefined {
  const value = event.detail?.[key];
  return value === undefined || value === "" ? undefined : String(value);
}

function tone(result: string): TimelineEntry["tone"] {
  switch (result) {
    case "ok":
      return "ok";
    case "error":
    case "not-found":
    case "aborted":
      return "bad";
    case "not-ready":
      return "warn";
    default:
      return "info";
  }
}

const STEP_TITLES: Record<string, string> = {
  "dhcp.discover": "DHCP discover",
  "dhcp.offer": "DHCP offer",
  "dhcp.request": "DHCP request",
  "dhcp.ack": "DHCP lease acknowledged",
  "dhcp.nak": "DHCP request refused (NAK)",
  "dhcp.release": "DHCP lease released",
  "dhcp.decline": "DHCP address declined",
  "dhcp.inform": "DHCP inform",
  "dhcp.ignored": "DHCP packet ignored",
  "tftp.transfer": "TFTP transfer",
  "http.artifact": "HTTP download",
  "http.template": "HTTP rendered file",
  "pxe.disable": "Installer finished (/pxe/disable)",
  "cloudinit.event": "cloud-init",
  "bmc.power": "BMC power action",
  "bmc.power-cycle": "BMC power cycle",
  "bmc.power-state": "BMC power state read",
  "bmc.set-boot-override": "BMC one-time PXE boot set",
  "bmc.refused": "BMC refused the action",
  "bmc.repave-timeout": "Repave timed out",
  "bmc.repin": "BMC certificate re-pinned",
  "bmc.tls-pin": "BMC certificate pinned",
  "operation.requested": "Operation requested",
  "operation.snapshot": "Operation targets chosen",
  "operation.target": "Operation step",
  "operation.done": "Operation finished",
  "operation.deleted": "Operation removed",
  "attest.ek-pin": "TPM endorsement key pinned",
  "attest.ek-cert": "TPM endorsement certificate checked",
  "attest.issue": "Attestation token issued",
  "attest.refuse": "Attestation refused",
  "attest.repin": "TPM identity re-pinned",
};

function titleOf(event: BootEvent): string {
  const known = STEP_TITLES[event.step];
  if (known) return known;
  const [room, action] = event.step.split(".", 2);
  const rooms: Record<string, string> = { bmc: "BMC", image: "Image", attest: "Attestation", operation: "Operation" };
  return `${rooms[room ?? ""] ?? room} ${(action ?? "").replaceAll("-", " ")}`.trim();
}

const FACT_LABELS: Record<string, string> = {
  path: "file",
  file: "file",
  bootFile: "boot file",
  bytes: "bytes",
  size: "size",
  status: "HTTP status",
  method: "method",
  image: "image",
  arch: "architecture",
  ipv4: "address",
  yiaddr: "address",
  action: "action",
  resetType: "reset type",
  state: "state",
  powerState: "power",
  target: "boot target",
  kind: "kind",
  operation: "operation",
  user: "by",
  transport: "via",
  stage: "stage",
  phase: "phase",
  fingerprint: "fingerprint",
  previous: "previous",
  pinned: "pinned",
  error: "error",
  bmcMessage: "BMC said",
  name: "name",
  message: "message",
};

/** Shown elsewhere (the duration, the attempt's trigger) or plumbing an operator does not act on. */
const HIDDEN_FACTS = new Set(["durationMs", "ms", "elapsedMs", "driver", "purpose", "operation"]);

function factsOf(event: BootEvent): Array<[string, string]> {
  const facts: Array<[string, string]> = [];
  if (event.ip) facts.push(["ip", event.ip]);
  for (const [key, value] of Object.entries(event.detail ?? {}) as Array<[string, Scalar]>) {
    if (value === undefined || value === "" || HIDDEN_FACTS.has(key)) continue;
    facts.push([
      FACT_LABELS[key] ?? key,
      key === "bytes" || key === "size" ? formatBytes(Number(value)) : String(value),
    ]);
  }
  return facts;
}

/** The failure in words: what failed, on what, and what to do about it. */
export function problemOf(event: BootEvent): string | undefined {
  if (tone(event.result) === "info" || tone(event.result) === "ok") {
    if (event.result === "ignored" && event.reason === "unknown-mac") {
      return "This MAC matches no Machine: enroll it under Discovered.";
    }
    return undefined;
  }
  const file = detailText(event, "path") ?? detailText(event, "file");
  const image = detailText(event, "image");
  const inImage = image ? ` in image ${image}` : "";
  const reason = event.reason ?? event.result;
  const room = event.step.split(".")[0];
  switch (room) {
    case "tftp":
      if (reason === "not-found" || event.result === "not-found")
        return `TFTP: file not found ${file ? `\`${file}\`` : ""}${inImage}. Check that the image holds this boot file.`;
      if (reason === "not-ready") return `TFTP: the image is not ready yet${inImage} (still pulling or unpacking).`;
      if (reason === "aborted" || event.result === "aborted")
        return `TFTP: the client stopped the transfer of ${file ? `\`${file}\`` : "the file"} (firmware timeout or retry).`;
      return `TFTP: ${reason}${file ? ` for \`${file}\`` : ""}.`;
    case "http":
      if (event.result === "not-ready")
        return `HTTP: the image is not ready yet (${reason}). It is served once the pull completes.`;
      if (event.result === "not-found")
        return `HTTP: file not found ${file ? `\`${file}\`` : ""}${inImage} (${reason}).`;
      return `HTTP: ${reason}${file ? ` for \`${file}\`` : ""}.`;
    case "bmc": {
      const said = detailText(event, "bmcMessage");
      const error = detailText(event, "error");
      const status = detailText(event, "status");
      const method = detailText(event, "method");
      const what = error ?? reason;
      const head = status
        ? `BMC refused ${method ?? "the request"}: ${status}${what ? ` — ${what}` : ""}`
        : `BMC ${titleOf(event).replace(/^BMC /, "").toLowerCase()} failed: ${what}`;
      return `${head}${said ? `. The BMC said: ${said}` : ""}.`;
    }
    case "dhcp":
      if (reason === "no-pxe") return "DHCP: no boot file for this client's architecture in the Machine's image.";
      if (reason === "quarantined") return "DHCP: the Machine's state is quarantined; lift it with `metalman state`.";
      return `DHCP: ${reason}.`;
    case "image":
      return `Image: ${detailText(event, "error") ?? reason}${inImage}.`;
    case "attest":
      return `Attestation refused: ${reason}. Compare the TPM identity below with the pinned one.`;
    default:
      return `${titleOf(event)}: ${detailText(event, "error") ?? detailText(event, "message") ?? reason}.`;
  }
}

export function describeEvent(event: BootEvent): TimelineEntry {
  const duration = event.detail?.durationMs ?? event.detail?.ms ?? event.detail?.elapsedMs;
  const entry: TimelineEntry = {
    event,
    offsetMs: 0,
    title: titleOf(event),
    facts: factsOf(event),
    tone: tone(event.result),
    repeats: 1,
    lastTime: event.time,
  };
  if (typeof duration === "number") entry.durationMs = duration;
  const problem = problemOf(event);
  if (problem) entry.problem = problem;
  return entry;
}

/**
 * The power state to show: the summary's, or when the BMC flows recorded it only as a
 * condition (`PoweredOn`), that condition's.
 */
export function displayPower(power: string, conditions: ReadonlyArray<{ type: string; status: string }>): string {
  if (power !== "Unknown" && power !== "") return power;
  const on = conditions.find((c) => c.type === "PoweredOn");
  if (on?.status === "True") return "On";
  if (on?.status === "False") return "Off";
  return power || "Unknown";
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return "";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function formatTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString(undefined, { hour12: false });
}

export function formatAgo(iso: string | undefined, now = Date.now()): string {
  if (!iso) return "";
  const ms = now - Date.parse(iso);
  if (!Number.isFinite(ms)) return "";
  if (ms < 5_000) return "just now";
  if (ms < 60_000) return `${Math.round(ms / 1000)} s ago`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min ago`;
  if (ms < 86_400_000) return `${Math.round(ms / 3_600_000)} h ago`;
  return `${Math.round(ms / 86_400_000)} d ago`;
}
