import { stat } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { unixSocketIdentity } from "../api/actor.js"; // management API (docs/management-api.md)
import { buildManagementApp } from "../api/app.js"; // management API
import { apiSocketPath, claimUnixSocket } from "../api/unix-socket.js"; // management API
import { scrub } from "../api/views.js"; // web console (issue 8): what the writer keeps when the API scrubbed it
import { UpgradeSpool } from "../appliance/upgrade-spool.js"; // appliance image (issue 11)
import { attestSetup } from "../attest/attest-setup.js";
import { pollRepinRequests } from "../attest/repin-requests.js";
import type { TokenSource } from "../attest/token-source.js";
import { bmcDriverFactory } from "../bmc/driver-factory.js"; // BMC flows (issue 6): Redfish and IPMI
import { BmcReconciler, type DriverFactory } from "../bmc/flows/reconciler.js"; // BMC flows (issue 6)
import { templateView } from "../bmc/pending-replace.js"; // issue 6: HostReplace → repave pending
import { type ClusterMode, startClusterMode } from "../cluster/cluster-mode.js"; // cluster sync (issue 10)
import { statusOf } from "../cluster/kube-api.js";
import type { KubeMachineBackend } from "../cluster/kube-backend.js"; // cluster sync (issue 10)
import type { UpstreamStatus } from "../cluster/upstream-status.js"; // cluster sync (issue 10)
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
import { type ImagesSetup, imagesSetup } from "../images/images-setup.js"; // OCI images (issue 7)
import { FileDiscoveryStore } from "../inventory/discovery-store.js";
import { FileInventory } from "../inventory/file-inventory.js";
import { FileInventoryWriter } from "../inventory/file-inventory-writer.js"; // web console (issue 8)
import type { SecretReader } from "../inventory/secrets.js";
import { NetbootResolver } from "../netboot/resolver.js";
import { userDataFromConfigMaps } from "../netboot/user-data.js";
import { KubeKeyPublisher } from "../overlay/kube-key-publisher.js"; // overlay (issue 12)
import { KubeOverlaySource } from "../overlay/kube-overlay-source.js";
import { OverlayService } from "../overlay/overlay-service.js";
import { NET_API_GROUP, NET_API_VERSION } from "../overlay/resources.js";
import { WgCommandDriver } from "../overlay/wg-command-driver.js";
import { type TemplateContext, TemplateRenderer } from "../template/render.js";
import { TftpServer } from "../tftp/server.js";
import { applianceInfoProvider } from "./appliance-info.js"; // web console (issue 8)
import { StopDeadline, waitUntilIdle } from "./stop-deadline.js";

export interface RunningAppliance {
  readonly addresses: DerivedAddresses;
  readonly metrics: Registry;
  readonly events: BootEventBus;
  /** cluster sync (issue 10): the Kubernetes backend with --kubeconfig / --in-cluster. */
  readonly inventory: FileInventory | KubeMachineBackend;
  /** cluster sync (issue 10): connection, leader, last sync, queued updates (docs/cluster.md); standalone: undefined. */
  readonly upstream?: () => UpstreamStatus;
  readonly cluster?: ClusterMode;
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
    /** OCI images (issue 7): registry client tuning and the retry delay after a failed pull (tests). */
    images?: Pick<Parameters<typeof imagesSetup>[1], "client" | "retryMs">;
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
  // overlay (issue 12): started after the listeners, read by /readyz and the banner.
  const overlayState: OverlayState = { enabled: false };

  try {
    // A mistyped --inventory would otherwise start a server that answers nobody.
    const clusterMode = config.kubeconfig !== undefined || config.inCluster; // cluster sync (issue 10)
    const inventoryStat = await stat(config.inventory).catch(() => undefined);
    if (!clusterMode && !inventoryStat?.isDirectory()) {
      throw new Error(
        `--inventory: ${config.inventory} is not a directory (create it, or point at your Machine files)`,
      );
    }
    // Management API: its socket is claimed before any state is read, so a second serve-pxe on
    // this --state-dir stops here. It answers 503 until the API is attached below.
    const apiSocket = await claimUnixSocket(apiSocketPath(config.stateDir));
    drainers.push((deadline) => apiSocket.release(deadline.reached));
    // cluster sync (issue 10, docs/cluster.md): Machines from the API server, else the inventory folder.
    let inventory: FileInventory | KubeMachineBackend;
    let cluster: ClusterMode | undefined;
    if (clusterMode) {
      cluster = await startClusterMode({
        kubeconfig: config.kubeconfig,
        inCluster: config.inCluster,
        site: config.site,
        stateDir: config.stateDir,
        leaseDurationMs: config.leaderElectLeaseDurationMs,
        renewDeadlineMs: config.leaderElectRenewDeadlineMs,
        retryPeriodMs: config.leaderElectRetryPeriodMs,
        apiserverUrl: config.apiserverUrl,
        log,
        metrics,
        events,
      });
      const running = cluster;
      closers.push(() => running.close());
      inventory = cluster.backend;
    } else {
      const files = new FileInventory({
        dir: config.inventory,
        stateDir: config.stateDir,
        site: config.site,
        log,
        metrics,
      });
      await files.load();
      closers.push(() => files.close());
      inventory = files;
    }
    const fileInventory = inventory instanceof FileInventory ? inventory : undefined;

    const discovery = new FileDiscoveryStore({ stateDir: config.stateDir, log, metrics });
    await discovery.load();
    closers.push(() => discovery.close());
    flushers.push(() => discovery.flush());

    // OCI images (issue 7, docs/images.md): dir: folders and the registry cache behind one store;
    // the reconciler pulls what the Machines name from the inventory watch.
    const imageSetup: ImagesSetup = await imagesSetup(config, {
      backend: inventory,
      secrets: deps.secrets ?? inventory.secrets,
      baseDirOf: (name) => fileInventory?.sourceDirOf(name),
      events,
      metrics,
      log,
      ...deps.images,
    });
    closers.push(() => imageSetup.close());
    const images = imageSetup.store;
    const backendFacts = () => cluster?.backend.facts ?? {}; // cluster sync (issue 10): cluster-info, kube-dns, /version
    const templateContext: TemplateContext = {
      serveUrl: addresses.serveUrl,
      get apiserverUrl() {
        return config.apiserverUrl ?? backendFacts().apiserverUrl ?? "";
      },
      // Standalone: no cluster. Cluster mode: the facts, read at render time (they are watched).
      cluster: {
        get caCertBase64() {
          return backendFacts().caCertBase64 ?? "";
        },
        get clusterDNS() {
          return backendFacts().clusterDNS ?? "";
        },
        get version() {
          return backendFacts().version ?? "";
        },
      },
    };
    const renderer = new TemplateRenderer();
    const resolver = new NetbootResolver({
      images,
      // issue 6: a pending HostReplace operation makes templates see a repave pending (server/bmc/pending-replace.ts).
      render: (source, machine, name) =>
        renderer.render(source, templateView(machine, inventory.operations), templateContext, name),
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
        images: imageSetup.reconciler.readiness(), // OCI images (issue 7)
        // cluster sync (issue 10): serving from the last-known state is ready, but says so.
        ...(cluster ? { upstream: upstreamCheck(cluster.upstream()) } : {}),
        // overlay (issue 12): never gates readiness (netboot works without it), says its state.
        ...(overlayState.enabled ? { overlay: overlayCheck(overlayState) } : {}),
      };
      return { ready: Object.values(checks).every((c) => c.ok), checks };
    };

    // attest (issue 9): POST /attest. Standalone, the bootstrap token comes from a kubeadm-shaped
    // Secret in the inventory folder (inventory.secrets); tests and the cluster sync may inject their own.
    const attest = await attestSetup(config, {
      secrets: deps.secrets ?? inventory.secrets,
      tokens: deps.tokens ?? cluster?.tokens, // cluster sync (issue 10): TokenRequest for metalman-bootstrap
    });
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
      // cluster sync (issue 10): on one L2 segment, only the leader offers (docs/cluster.md).
      answersBroadcast: leaderOf(cluster),
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
      // cluster mode: no writer yet (machine writes answer READ_ONLY_INVENTORY)
      writer: fileInventory
        ? new FileInventoryWriter({ dir: config.inventory, inventory: fileInventory, site: config.site, scrub })
        : undefined,
      discovery,
      images: imageSetup.reconciler, // OCI images (issue 7): GET/POST /api/v1/images
      // The appliance image (issue 11): update bundles uploaded from the console.
      upgrades: config.applianceUpgradeDir ? new UpgradeSpool({ dir: config.applianceUpgradeDir }) : undefined,
      appliance: applianceInfoProvider({
        readiness,
        addresses,
        consoleInfo: () => (webConsole ? { fingerprint: webConsole.tls.fingerprint, url: webConsole.url } : undefined),
        upstream: cluster?.upstream,
        overlay: () => (overlayState.enabled ? overlayCheck(overlayState).detail : undefined),
        applianceStatusFile: config.applianceStatusFile,
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
          adminPasswordHashFile: config.consoleAdminPasswordHashFile,
          firstAdminPasswordFile: config.consoleFirstAdminPasswordFile,
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
    const bmcDrivers = deps.bmcDrivers;
    if (bmcDrivers !== false) {
      const startBmc = () => {
        const bmc = new BmcReconciler({
          backend: inventory,
          driverFor:
            bmcDrivers ??
            bmcDriverFactory({
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
        return bmc;
      };
      if (!cluster) {
        const bmc = startBmc();
        closers.push(() => bmc.stop());
      } else {
        // cluster sync (issue 10): BMC actions only on the Lease holder (docs/cluster.md "Leader duties").
        let bmc: BmcReconciler | undefined;
        const follow = (leader: boolean) => {
          if (leader && !bmc) bmc = startBmc();
          else if (!leader && bmc) {
            const stopping = bmc;
            bmc = undefined;
            void stopping.stop();
          }
        };
        unsubscribers.push(cluster.leader.onChange(follow));
        follow(cluster.leader.isLeader());
        closers.push(async () => {
          await bmc?.stop();
          bmc = undefined;
        });
      }
    }

    // overlay (issue 12, docs/overlay.md): WireGuard to the site's gateways, cluster mode only.
    if (cluster && config.overlay === "auto" && config.site !== "" && (await servesUnboundedNet(cluster, log))) {
      const overlayLog = log.child({ component: "overlay" });
      const service = new OverlayService({
        site: config.site,
        keyFile: path.join(config.stateDir, "overlay", "wireguard.key"),
        nodeName: config.overlayNodeName ?? `metalman-${config.site}`,
        internalIP: config.overlayNodeIp ?? addresses.serverIp,
        source: new KubeOverlaySource({ api: cluster.api, log: overlayLog }),
        publisher: new KubeKeyPublisher(cluster.api),
        driver: new WgCommandDriver(),
        log: overlayLog,
        metrics,
      });
      overlayState.enabled = true;
      try {
        await service.start();
        overlayState.service = service;
        closers.push(() => service.stop());
      } catch (err) {
        // A bad key file stops the overlay, never the netboot services (and is never replaced).
        overlayState.error = err instanceof Error ? err.message : String(err);
        overlayLog.error({ err: overlayState.error }, "overlay: not started");
      }
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
      upstream: cluster?.upstream,
      cluster,
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
        `image cache   ${config.cacheDir}  (OCI images; metalman image list)`,
        cluster
          ? `cluster       ${cluster.upstream().server}  (${inventory.list().length} machines, ${cluster.upstream().connection}, lease ${cluster.leader.status().lease})`
          : `inventory     ${config.inventory}  (${inventory.list().length} machines, ${inventory.problems().filter((p) => p.kind === "inventory").length} invalid files)`,
        `state         ${config.stateDir}`,
        `api           ${apiSocket.path}  (management API and CLI: metalman machine list)`,
        `site          ${config.site === "" ? "(none: machines without the site label)" : config.site}`,
        ...consoleBanner(webConsole, config.stateDir),
        ...(overlayState.enabled
          ? [`overlay       ${overlayCheck(overlayState).detail ?? ""}  (docs/overlay.md)`]
          : []),
      ],
    };
  } catch (err) {
    await closeAll({ graceMs: 0 });
    throw err;
  }
}

/** cluster sync (issue 10): who answers broadcast DHCP (LeaderElector.answersBroadcast); standalone: always. */
function leaderOf(cluster: ClusterMode | undefined): (() => boolean) | undefined {
  const leader = cluster?.leader;
  return leader ? () => leader.answersBroadcast() : undefined;
}

/** cluster sync (issue 10): the `/readyz` line of the uplink; offline is still ready (it serves the last-known state). */
function upstreamCheck(u: UpstreamStatus): { ok: boolean; detail?: string } {
  if (u.connection === "connected") return { ok: true };
  if (u.servingFrom === "none") return { ok: false, detail: `no Machines yet: API server ${u.server} ${u.connection}` };
  return {
    ok: true,
    detail: `offline since ${u.offlineSince ?? "start"}: serving the last-known state of ${u.lastSyncAt ?? "?"}, ${u.queuedUpdates} status update(s) queued`,
  };
}

/** Banner lines of the web console; the first admin's password appears here once, never in the log. */
function consoleBanner(running: RunningConsole | undefined, stateDir: string): string[] {
  if (!running) return ["console       off (--console-port 0)"];
  const lines = [
    `console       ${running.url}  (web console; docs/console-api.md)`,
    `  TLS SHA-256 ${running.tls.fingerprint}  (${running.tls.source === "operator" ? running.tls.certFile : `self-signed, ${running.tls.certFile}`})`,
  ];
  if (running.firstAdmin?.passwordFile) {
    lines.push(
      `  first login user "${running.firstAdmin.name}": password in ${running.firstAdmin.passwordFile} (0600)`,
    );
  } else if (running.firstAdmin) {
    lines.push(
      `  first login user "${running.firstAdmin.name}" password ${running.firstAdmin.password}`,
      `  (shown only now; change it with: metalman user passwd ${running.firstAdmin.name} --state-dir ${stateDir})`,
    );
  }
  return lines;
}

/** overlay (issue 12): what /readyz and the banner know of the WireGuard overlay. */
interface OverlayState {
  enabled: boolean;
  service?: OverlayService;
  error?: string;
}

function overlayCheck(state: OverlayState): { ok: boolean; detail?: string } {
  if (state.error !== undefined) return { ok: true, detail: `overlay not started: ${state.error}` };
  const status = state.service?.status();
  if (status === undefined) return { ok: true, detail: "overlay starting" };
  const healthy = status.tunnels.filter((t) => t.healthy).length;
  return {
    ok: true,
    detail: `overlay ${status.state}: ${healthy}/${status.tunnels.length} tunnels healthy${status.keyPublished ? "" : ", key not published yet"}${status.lastError ? `, ${status.lastError}` : ""}`,
  };
}

/**
 * overlay (issue 12): `--overlay auto` joins only a cluster that serves unbounded-net's API group;
 * a cluster without it (404) has no gateways to reach, so nothing is configured. Unreachable at
 * start: the overlay starts and waits for the resources (its reflectors retry).
 */
async function servesUnboundedNet(cluster: ClusterMode, log: Logger): Promise<boolean> {
  try {
    await cluster.api.request("GET", `/apis/${NET_API_GROUP}/${NET_API_VERSION}`);
    return true;
  } catch (err) {
    if (statusOf(err) === 404) {
      log.info({ component: "overlay" }, `overlay: off (the cluster does not serve ${NET_API_GROUP})`);
      return false;
    }
    return true;
  }
}
