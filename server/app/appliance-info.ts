import { readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ApplianceInfo } from "../api/appliance.js";
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

/** `GET /appliance`: readiness checks as services, the host's interfaces, what is served where. */
export function applianceInfoProvider(deps: {
  readiness: () => ReadinessReport;
  addresses: DerivedAddresses;
  consoleInfo: () => ApplianceInfo["console"];
  listeners: Record<string, string>;
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
    const info: ApplianceInfo = {
      version,
      mode: "standalone",
      services,
      interfaces,
      dhcp: { mode: deps.addresses.dhcpMode, serverIp: deps.addresses.serverIp, serveUrl: deps.addresses.serveUrl },
    };
    const consoleInfo = deps.consoleInfo();
    if (consoleInfo) info.console = consoleInfo;
    return info;
  };
}
