import { stat } from "node:fs/promises";
import type { Logger } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { unixSocketIdentity } from "../api/actor.js"; // management API (docs/management-api.md)
import { buildManagementApp } from "../api/app.js"; // management API
import { apiSocketPath, claimUnixSocket } from "../api/unix-socket.js"; // management API
import { scrub } from "../api/views.js"; // web console (issue 8): what the writer keeps when the API scrubbed it
import { attestSetup } from "../attest/attest-setup.js";
import { pollRepinRequests } from "../attest/repin-requests.js";
import type { TokenSource } from "../attest/token-source.js";
import { redfishDriverFactory } from "../bmc/driver-factory.js"; // BMC flows (issue 6)
import { BmcReconciler, type DriverFactory } from "../bmc/flows/reconciler.js"; // BMC flows (issue 6)
import { type AddressProbes, type DerivedAddresses, deriveAddresses } from "../config/derive-addresses.js";
import type { ServePxeConfig } from "../config/serve-pxe-config.js";
import { type RunningConsole, startConsole } from "../console/console-setup.js"; // web console (issue 8)
import { DhcpServer } from "../dhcp/server.js";
import { DeviceTransport, PXE_BOOT_SERVER_PORT } from "../dhcp/transport/device-transport.js";
import { UdpTransport } from "../dhcp/transport/udp-transport.js";
import type { DhcpTransport } from "../dhcp/transport.js";
import { BootEventBus } from "../events/boot-events.js";
import { countBootEvents, logBootEvents } from "../events/event-sinks.js";
import { buildHealthApp, buildNetbootApp, closeGracefully } from "../http/app.js";
import type { ReadinessReport } from "../http/health.js";
import { DirImageStore } from "../images/dir-image-store.js";
import { FileDiscoveryStore } from "../inventory/discovery-store.js";
import { FileInventory } from "../inventory/file-inventory.js";
import { FileInventoryWriter } from "../inventory/file-inventory-writer.js"; // web console (issue 8)
import type { SecretReader } from "../inventory/secrets.js";
import { NetbootResolver } from "../netboot/resolver.js";
import { userDataFromConfigMaps } from "../netboot/user-data.js";
import { type TemplateContext, TemplateRenderer } from "../template/render.js";
import { TftpServer } from "../tftp/server.js";
import { applianceInfoProvider } from "./appliance-info.js"; // web console (issue 8)
import { StopDeadline, waitUntilIdle } from "./stop-deadline.js";

export interface RunningAppliance {
  readonly addresses: DerivedAddresses;
  readonly metrics: Registry;
  readonly events: BootEventBus;
  readonly inventory: FileInventory;
  /** The management API's unix socket (`<stateDir>/metalman.sock`, docs/management-api.md). */
  readonly apiSocket: string;
  /** The web console's HTTPS listener (docs/console-api.md), unless --console-port 0. */
  readonly console?: { url: string; fingerprint: string };
  /**
   * Graceful stop (docs/events.md "Shutdown"): state is flushed first; then every listener
   * stops accepting at once; downloads in flight get `graceMs` (default: --shutdown-grace)
   * to finish and are cut after it; then state is flushed and closed for good. A second call
   * returns the same promise, and can only shorten the grace (a second SIGTERM: cut now).
   */
  close(options?: { graceMs?: number }): Promise<void>;
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
  deps: {
    log: Logger;
    probes: AddressProbes;
    /** attest (issue 9): Secrets for the standalone bootstrap-token source; a cluster token source. */
    secrets?: SecretReader;
    tokens?: TokenSource;
    /**
     * BMC flows (issue 6): the Redfish/IPMI driver factory; default: the Redfish driver for
     * Machines with spec.pxe.redfish. `false`: no BMC flows (tests that drive operations themselves).
     */
    bmcDrivers?: DriverFactory | false;
  },
): Promise<RunningAppliance> {
  const { log } = deps;
  const addresses = deriveAddresses(config, deps.probes);
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics, prefix: "metalman_process_" });
  // Failing subscribers are logged (rate-limited) under the bus's own component.
  const events = new BootEventBus({ log: log.child({ component: "events" }) });
  const unsubscribers = [logBootEvents(events, log), countBootEvents(events, metrics)];
  // Shutdown in three phases: `flushers` write pending state before anything else (a kill
  // during the grace loses nothing); `drainers` stop accepting at once and finish or cut their
  // work by the deadline, all at the same time; `closers` close what remains, newest first.
  const flushers: Array<() => Promise<void>> = [];
  const drainers: Array<(deadline: StopDeadline) => Promise<void>> = [];
  const closers: Array<() => Promise<void>> = [];
  const attempt = async (what: string, step: () => Promise<void>) => {
    try {
      await step();
    } catch (err) {
      log.warn({ err, step: what }, "error while shutting down");
    }
  };
  let stopping: { done: Promise<void>; deadline: StopDeadline } | undefined;
  const markStopping = () => {
    // /readyz fails from the first moment of a shutdown.
    listening.dhcp = listening.tftp = listening.http = false;
  };
  const closeAll = (options: { graceMs?: number } = {}): Promise<void> => {
    const graceMs = options.graceMs ?? config.shutdownGraceMs;
    if (stopping) {
      stopping.deadline.shorten(graceMs);
      return stopping.done;
    }
    const deadline = new StopDeadline(graceMs);
    const done = (async () => {
      markStopping();
      for (const flush of flushers) await attempt("flush", flush);
      await Promise.all(drainers.splice(0).map((drain) => attempt("drain", () => drain(deadline))));
      for (const close of closers.splice(0).reverse()) await attempt("close", close);
      for (const unsubscribe of unsubscribers.splice(0)) unsubscribe();
      deadline.dispose();
    })();
    stopping = { done, deadline };
    return done;
  };
  const listening = { dhcp: false, tftp: false, http: false };

  try {
    // A mistyped --inventory would otherwise start a server that answers nobody.
    const inventoryStat = await stat(config.inventory).catch(() => undefined);
    if (!inventoryStat?.isDirectory()) {
      throw new Error(
        `--inventory: ${config.inventory} is not a directory (create it, or point at your Machine files)`,
      );
    }
    // Management API: its socket is claimed before any state is read, so a second serve-pxe on
    // this --state-dir stops here. It answers 503 until the API is attached below.
    const apiSocket = await claimUnixSocket(apiSocketPath(config.stateDir));
    drainers.push((deadline) => apiSocket.release(deadline.reached));
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
    flushers.push(() => discovery.flush());

    const images = new DirImageStore({
      baseDirOf: (machine) => inventory.sourceDirOf(machine.metadata.name),
      log: log.child({ component: "images" }),
      // dir: images only under --image-root (docs/security.md).
      imageRoots: config.imageRoots,
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
      // cloud-init/user-data from the Machine's userDataConfigMapRef (a ConfigMap in the inventory folder).
      userData: userDataFromConfigMaps(inventory.secrets),
    });

    const readiness = (): ReadinessReport => {
      // From the backend interface: the cluster backend reports its own problems the same way.
      const problems = inventory.problems();
      const check = (kind: "inventory" | "state", what: string) => {
        const list = problems.filter((p) => p.kind === kind);
        return {
          ok: list.length === 0,
          detail: list.length === 0 ? undefined : `${list.length} ${what}: ${list[0]?.message}`,
        };
      };
      const checks = {
        dhcp: { ok: listening.dhcp },
        tftp: { ok: listening.tftp },
        http: { ok: listening.http },
        inventory: check("inventory", "invalid"),
        state: check("state", "untrusted state file(s)"),
      };
      return { ready: Object.values(checks).every((c) => c.ok), checks };
    };

    // attest (issue 9): POST /attest. Standalone, the bootstrap token comes from a kubeadm-shaped
    // Secret in the inventory folder (inventory.secrets); tests and the cluster sync may inject their own.
    const attest = await attestSetup(config, { secrets: deps.secrets ?? inventory.secrets, tokens: deps.tokens });
    const http = buildNetbootApp({
      attest,
      log,
      backend: inventory,
      resolver,
      events,
      metrics,
      readiness,
      trustedProxies: config.trustedProxies,
      connectionLimits: {
        maxConnections: config.httpMaxConnections,
        perClient: config.httpMaxConnectionsPerClient,
      },
    });
    await http.listen({ host: config.bindAddress, port: config.httpPort });
    drainers.push(async (deadline) => {
      const { cut } = await closeGracefully(http, deadline.reached);
      if (cut > 0) log.warn({ connections: cut }, "shutdown: grace period over, cut HTTP downloads in flight");
    });
    listening.http = true;

    const tftp = new TftpServer({
      bindAddress: config.bindAddress,
      port: config.tftpPort,
      backend: inventory,
      resolver,
      events,
      log: log.child({ component: "tftp" }),
      metrics,
      maxTransfers: config.tftpMaxTransfers,
      maxTransfersPerClient: config.tftpMaxTransfersPerClient,
      lockstepThreads: config.tftpLockstepThreads, // lock-step thread path (docs/tftp.md)
    });
    await tftp.start();
    drainers.push(async (deadline) => {
      // TFTP keeps answering during the grace (a Machine between two files gets the next one;
      // with DHCP closed no new boot starts), then aborts what is left (clients get an ERROR).
      const idle = await waitUntilIdle(() => tftp.activeTransfers === 0, deadline);
      if (!idle) log.warn({ transfers: tftp.activeTransfers }, "shutdown: grace period over, aborting TFTP transfers");
      await tftp.close();
    });
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
    // No new leases once stopping: a boot that cannot finish should not start.
    drainers.push(() => dhcp.close());
    listening.dhcp = true;

    const health = buildHealthApp({ log, readiness, metrics });
    await health.listen({ host: config.healthBindAddress, port: config.healthPort });
    // Closed at once: probes see us go (and /readyz already fails).
    drainers.push(() => health.close());

    // Management API on its own Fastify instance (never the netboot listener). Closing it ends
    // its event streams, so the socket's drain above is not held up by them.
    // web console (issue 8): Machine writes (standalone: the inventory folder's YAML), discovered
    // MACs and appliance facts, on the socket and on the console alike.
    let webConsole: RunningConsole | undefined;
    const apiExtras = {
      writer: new FileInventoryWriter({ dir: config.inventory, inventory, site: config.site, scrub }),
      discovery,
      appliance: applianceInfoProvider({
        readiness,
        addresses,
        consoleInfo: () => (webConsole ? { fingerprint: webConsole.tls.fingerprint, url: webConsole.url } : undefined),
        listeners: {
          http: `${config.bindAddress}:${config.httpPort}`,
          tftp: `${config.bindAddress}:${config.tftpPort}`,
          dhcp: `${addresses.dhcpMode} ${config.bindAddress}:${config.dhcpPort}`,
        },
      }),
    };
    const api = buildManagementApp({ log, backend: inventory, events, identify: unixSocketIdentity, ...apiExtras });
    await api.ready();
    apiSocket.attach(api.routing);
    drainers.push(() => api.close());

    // Web console (issue 8, docs/console-api.md): the same management API on its own HTTPS
    // listener, behind sessions, CSRF and roles.
    if (config.consolePort !== 0) {
      const started = await startConsole(
        {
          stateDir: config.stateDir,
          address: config.consoleAddress,
          port: config.consolePort,
          tlsCert: config.consoleTlsCert,
          tlsKey: config.consoleTlsKey,
          trustedProxies: config.trustedProxies,
        },
        { backend: inventory, events, ...apiExtras },
        log,
      );
      webConsole = started;
      drainers.push(() => started.close());
    }

    // attest (issue 9): `metalman tpm repin` requests (<stateDir>/attest/requests).
    unsubscribers.push(
      pollRepinRequests(config.stateDir, inventory, events, (err) => log.warn({ err }, "tpm repin request failed")),
    );
    // BMC flows (issue 6, docs/bmc-flows.md): the Redfish driver for Machines with spec.pxe.redfish,
    // unless a test injects its own factory (or turns the flows off).
    if (deps.bmcDrivers !== false) {
      const bmc = new BmcReconciler({
        backend: inventory,
        driverFor:
          deps.bmcDrivers ??
          redfishDriverFactory({
            backend: inventory,
            secrets: inventory.secrets,
            events,
            log: log.child({ component: "bmc" }),
          }),
        events,
        log: log.child({ component: "bmc" }),
        options: { site: config.site },
      });
      bmc.start();
      closers.push(() => bmc.stop());
    }

    // A Machine deleted (and perhaps created again) starts a new timeline on the event stream.
    unsubscribers.push(
      inventory.watch((change) => {
        if (change.type === "DELETED") events.forget(change.machine.metadata.name);
      }),
    );

    return {
      addresses,
      metrics,
      events,
      inventory,
      apiSocket: apiSocket.path,
      console: webConsole ? { url: webConsole.url, fingerprint: webConsole.tls.fingerprint } : undefined,
      close: closeAll,
      describe: () => [
        `serve-url     ${addresses.serveUrl}`,
        `http          ${config.bindAddress}:${config.httpPort}  (artifacts, /pxe/disable, /cloudinit/log, /attest, /metrics)`,
        `tftp          ${config.bindAddress}:${config.tftpPort}`,
        `dhcp          ${transport.description}${bootServerTransport ? ` + ${bootServerTransport.description}` : ""}  mode=${addresses.dhcpMode} server-ip=${addresses.serverIp}`,
        `health        ${config.healthBindAddress}:${config.healthPort}  (/healthz, /readyz with details)`,
        `image roots   ${config.imageRoots.join(", ")}`,
        `inventory     ${config.inventory}  (${inventory.list().length} machines, ${inventory.problems().filter((p) => p.kind === "inventory").length} invalid files)`,
        `state         ${config.stateDir}`,
        `api           ${apiSocket.path}  (management API and CLI: metalman machine list)`,
        `site          ${config.site === "" ? "(none: machines without the site label)" : config.site}`,
        ...consoleBanner(webConsole, config.stateDir),
      ],
    };
  } catch (err) {
    await closeAll({ graceMs: 0 });
    throw err;
  }
}

/** Banner lines of the web console; the first admin's password appears here once, never in the log. */
function consoleBanner(running: RunningConsole | undefined, stateDir: string): string[] {
  if (!running) return ["console       off (--console-port 0)"];
  const lines = [
    `console       ${running.url}  (web console; docs/console-api.md)`,
    `  TLS SHA-256 ${running.tls.fingerprint}  (${running.tls.source === "operator" ? running.tls.certFile : `self-signed, ${running.tls.certFile}`})`,
  ];
  if (running.firstAdmin) {
    lines.push(
      `  first login user "${running.firstAdmin.name}" password ${running.firstAdmin.password}`,
      `  (shown only now; change it with: metalman user passwd ${running.firstAdmin.name} --state-dir ${stateDir})`,
    );
  }
  return lines;
}
