import { stat } from "node:fs/promises";
import type { Logger } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { type AddressProbes, type DerivedAddresses, deriveAddresses } from "../config/derive-addresses.js";
import type { ServePxeConfig } from "../config/serve-pxe-config.js";
import { DhcpServer } from "../dhcp/server.js";
import { DeviceTransport, PXE_BOOT_SERVER_PORT } from "../dhcp/transport/device-transport.js";
import { UdpTransport } from "../dhcp/transport/udp-transport.js";
import type { DhcpTransport } from "../dhcp/transport.js";
import { BootEventBus } from "../events/boot-events.js";
import { countBootEvents, logBootEvents } from "../events/event-sinks.js";
import { buildHealthApp, buildNetbootApp } from "../http/app.js";
import type { ReadinessReport } from "../http/health.js";
import { DirImageStore } from "../images/dir-image-store.js";
import { FileDiscoveryStore } from "../inventory/discovery-store.js";
import { FileInventory } from "../inventory/file-inventory.js";
import { NetbootResolver } from "../netboot/resolver.js";
import { type TemplateContext, TemplateRenderer } from "../template/render.js";
import { TftpServer } from "../tftp/server.js";

export interface RunningAppliance {
  readonly addresses: DerivedAddresses;
  readonly metrics: Registry;
  readonly events: BootEventBus;
  readonly inventory: FileInventory;
  /** Stops every listener (health first, so probes see us go), then flushes state. */
  close(): Promise<void>;
  /** Lines describing what is served, for the banner. */
  describe(): string[];
}

/**
 * Composes the appliance from its parts: inventory (the backend), image store, resolver,
 * then the DHCP, TFTP and HTTP servers, and the health port last, so `/healthz` answers
 * only once every service is listening. On a failed start everything already opened is closed.
 */
export async function startAppliance(
  config: ServePxeConfig,
  deps: { log: Logger; probes: AddressProbes },
): Promise<RunningAppliance> {
  const { log } = deps;
  const addresses = deriveAddresses(config, deps.probes);
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics, prefix: "metalman_process_" });
  const events = new BootEventBus();
  const unsubscribers = [logBootEvents(events, log), countBootEvents(events, metrics)];
  const closers: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch (err) {
        log.warn({ err }, "error while shutting down");
      }
    }
    closers.length = 0;
    for (const unsubscribe of unsubscribers) unsubscribe();
  };

  try {
    // A mistyped --inventory would otherwise start a server that answers nobody.
    const inventoryStat = await stat(config.inventory).catch(() => undefined);
    if (!inventoryStat?.isDirectory()) {
      throw new Error(
        `--inventory: ${config.inventory} is not a directory (create it, or point at your Machine files)`,
      );
    }
    const inventory = new FileInventory({
      dir: config.inventory,
      stateDir: config.stateDir,
      site: config.site,
      log,
      metrics,
    });
    await inventory.load();
    closers.push(() => inventory.close());

    const discovery = new FileDiscoveryStore({ stateDir: config.stateDir, log, metrics });
    await discovery.load();
    closers.push(() => discovery.close());

    const images = new DirImageStore({
      baseDirOf: (machine) => inventory.sourceDirOf(machine.metadata.name),
      log: log.child({ component: "images" }),
    });
    const templateContext: TemplateContext = {
      serveUrl: addresses.serveUrl,
      apiserverUrl: config.apiserverUrl ?? "",
      // Standalone: no cluster yet. The Kubernetes sync fills these from cluster-info.
      cluster: { caCertBase64: "", clusterDNS: "", version: "" },
    };
    const renderer = new TemplateRenderer();
    const resolver = new NetbootResolver({
      images,
      render: (source, machine, name) => renderer.render(source, machine, templateContext, name),
    });

    const listening = { dhcp: false, tftp: false, http: false };
    const readiness = (): ReadinessReport => {
      const problems = inventory.errors();
      const checks = {
        dhcp: { ok: listening.dhcp },
        tftp: { ok: listening.tftp },
        http: { ok: listening.http },
        inventory: {
          ok: problems.length === 0,
          detail: problems.length === 0 ? undefined : `${problems.length} invalid: ${problems[0]?.message}`,
        },
      };
      return { ready: Object.values(checks).every((c) => c.ok), checks };
    };

    const http = buildNetbootApp({
      log,
      backend: inventory,
      resolver,
      events,
      metrics,
      readiness,
      trustedProxies: config.trustedProxies,
    });
    await http.listen({ host: config.bindAddress, port: config.httpPort });
    closers.push(() => http.close());
    listening.http = true;

    const tftp = new TftpServer({
      bindAddress: config.bindAddress,
      port: config.tftpPort,
      backend: inventory,
      resolver,
      events,
      log: log.child({ component: "tftp" }),
      metrics,
    });
    await tftp.start();
    closers.push(() => tftp.close());
    listening.tftp = true;

    // DhcpServer names its own component; the transport logs under the same name.
    const dhcpLog = log.child({ component: "dhcp" });
    const transport: DhcpTransport =
      addresses.dhcpMode === "relay"
        ? // Relay mode binds --bind-address (upstream binds every address, spec §12 item 10).
          new UdpTransport({ port: config.dhcpPort, address: config.bindAddress, logger: dhcpLog })
        : new DeviceTransport({ interfaceName: addresses.dhcpInterface, port: config.dhcpPort, logger: dhcpLog });
    // proxyDHCP: PXE clients follow a proxy offer with a unicast REQUEST to the boot server port.
    const bootServerTransport =
      addresses.dhcpMode === "proxy"
        ? new DeviceTransport({ interfaceName: addresses.dhcpInterface, port: PXE_BOOT_SERVER_PORT, logger: dhcpLog })
        : undefined;
    const dhcp = new DhcpServer({
      transport,
      backend: inventory,
      discovery,
      images,
      events,
      log,
      metrics,
      mode: addresses.dhcpMode,
      bootServerTransport,
      serverIp: addresses.serverIp,
      serveUrl: addresses.serveUrl,
      interfaceName: addresses.dhcpInterface || undefined,
    });
    await dhcp.start();
    closers.push(() => dhcp.close());
    listening.dhcp = true;

    const health = buildHealthApp({ log, readiness, metrics });
    await health.listen({ host: "0.0.0.0", port: config.healthPort });
    closers.push(() => health.close());

    return {
      addresses,
      metrics,
      events,
      inventory,
      close: closeAll,
      describe: () => [
        `serve-url     ${addresses.serveUrl}`,
        `http          ${config.bindAddress}:${config.httpPort}  (artifacts, /pxe/disable, /cloudinit/log, /metrics)`,
        `tftp          ${config.bindAddress}:${config.tftpPort}`,
        `dhcp          ${transport.description}${bootServerTransport ? ` + ${bootServerTransport.description}` : ""}  mode=${addresses.dhcpMode} server-ip=${addresses.serverIp}`,
        `health        0.0.0.0:${config.healthPort}  (/healthz, /readyz)`,
        `inventory     ${config.inventory}  (${inventory.list().length} machines, ${inventory.errors().length} invalid files)`,
        `state         ${config.stateDir}`,
        `site          ${config.site === "" ? "(none: machines without the site label)" : config.site}`,
      ],
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
