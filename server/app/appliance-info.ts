import { readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ApplianceInfo } from "../api/appliance.js";
import type { UpstreamStatus } from "../cluster/upstream-status.js";
import type { DerivedAddresses } from "../config/derive-addresses.js";
import type { ReadinessReport } from "../http/health.js";

/** package.json's version (dist/server/app -> repo root), read once at start. */
export function packageVersion(): string {
  try {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const pkg = JSON.parse(readFileSync(path.resolve(here, "../../../package.json"), "utf8")) as { version?: string };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

/**
 * What the appliance image's first-boot config wrote (metalman appliance-config: the
 * `--appliance-status-file`, /run/metalman/appliance-status.json): appliance.yaml's errors and
 * notices, the site, the image version and root slot. Read on each request (a small file in /run,
 * rewritten at every boot); a missing or unreadable file is said, never thrown.
 */
export function readApplianceConfigStatus(file: string): ApplianceInfo["config"] {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { file, errors: [], notices: [], unreadable: code === "ENOENT" ? "not written yet" : "not valid JSON" };
  }
  const strings = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
  const text = (v: unknown) => (typeof v === "string" ? v : undefined);
  return {
    file,
    errors: strings(doc.errors),
    notices: strings(doc.notices),
    site: text(doc.site),
    imageVersion: text(doc.imageVersion),
    slot: text(doc.slot),
  };
}

/** Upstream status as flat facts for the Appliance page (times, counts, the leader lease). */
function upstreamFacts(u: UpstreamStatus): Record<string, string | number | boolean> {
  const facts: Record<string, string | number | boolean> = {
    server: u.server ?? "",
    connection: u.connection,
    "serving from": u.servingFrom,
    machines: u.machines,
    leader: u.leader.isLeader ? "this replica" : (u.leader.holder ?? "unknown"),
    lease: u.leader.lease,
    "queued status updates": u.queuedUpdates,
  };
  if (u.lastSyncAt) facts["last sync"] = u.lastSyncAt;
  if (u.offlineSince) facts["offline since"] = u.offlineSince;
  if (u.lastError) facts["last error"] = u.lastError;
  return facts;
}

/** `GET /appliance`: readiness checks as services, the host's interfaces, what is served where. */
export function applianceInfoProvider(deps: {
  readiness: () => ReadinessReport;
  addresses: DerivedAddresses;
  consoleInfo: () => ApplianceInfo["console"];
  listeners: Record<string, string>;
  /** cluster sync (issue 10): the upstream's status; absent in standalone mode. */
  upstream?: () => UpstreamStatus;
  /** overlay (issue 12): one line on the WireGuard overlay, when it is enabled. */
  overlay?: () => string | undefined;
  /** The appliance image (issue 11): its first-boot status file. */
  applianceStatusFile?: string;
}): () => ApplianceInfo {
  const version = packageVersion();
  return () => {
    const report = deps.readiness();
    const services: ApplianceInfo["services"] = Object.entries(report.checks).map(([name, check]) => {
      const entry: ApplianceInfo["services"][number] = { name, state: check.ok ? "ok" : "failing" };
      if (check.detail) entry.detail = check.detail;
      else if (deps.listeners[name]) entry.detail = deps.listeners[name];
      return entry;
    });
    const interfaces = Object.entries(networkInterfaces()).map(([name, list]) => {
      const entry: ApplianceInfo["interfaces"][number] = {
        name,
        addresses: (list ?? []).map((i) => `${i.address}/${i.cidr?.split("/")[1] ?? ""}`.replace(/\/$/, "")),
      };
      const mac = list?.find((i) => i.mac && i.mac !== "00:00:00:00:00:00")?.mac;
      if (mac) entry.mac = mac;
      return entry;
    });
    const upstream = deps.upstream?.();
    const info: ApplianceInfo = {
      version,
      mode: upstream ? "cluster" : "standalone",
      services,
      interfaces,
      dhcp: { mode: deps.addresses.dhcpMode, serverIp: deps.addresses.serverIp, serveUrl: deps.addresses.serveUrl },
    };
    if (upstream) info.upstream = upstreamFacts(upstream);
    const overlay = deps.overlay?.();
    if (overlay) info.overlay = overlay;
    if (deps.applianceStatusFile) info.config = readApplianceConfigStatus(deps.applianceStatusFile);
    const consoleInfo = deps.consoleInfo();
    if (consoleInfo) info.console = consoleInfo;
    return info;
  };
}
