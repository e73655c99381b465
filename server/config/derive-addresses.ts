import { isIPv4 } from "../inventory/formats.js";
import { ConfigError, type ServePxeConfig } from "./serve-pxe-config.js";

/** What address derivation needs from the host; injected so the rules are a pure function. */
export interface AddressProbes {
  /** The local address the kernel picks for 8.8.8.8 (no packet sent). Throws when there is no route. */
  outboundIp(): string;
  /** First IPv4 address of the named interface. */
  interfaceIPv4(name: string): string | undefined;
  /** Name of the interface that holds `ip`. */
  interfaceOwning(ip: string): string | undefined;
}

export interface DerivedAddresses {
  /** The IPv4 DHCP advertises as server identifier and next-server (TFTP). Never 0.0.0.0. */
  serverIp: string;
  /** Base URL handed to machines, without a trailing slash. */
  serveUrl: string;
  /** proxy: boot information only, beside the site's DHCP server (on dhcpInterface, :67 and :4011). */
  dhcpMode: "interface" | "relay" | "proxy";
  /** "" in relay mode. */
  dhcpInterface: string;
}

/**
 * Spec §1.1 address derivation, with two fixes:
 * - §12 item 25: with `--serve-url` and bind 0.0.0.0 upstream advertised 0.0.0.0 in DHCP; we take
 *   the serve-url host when it is an IPv4 address, else the outbound IP.
 * - With `--dhcp-interface` and bind 0.0.0.0 (and no serve-url) the server IP comes from that
 *   interface, not from the default route: machines on the provisioning network must reach it.
 * In interface mode the DHCP server IP is the interface's first IPv4 (as upstream); with
 * `--dhcp-auto-interface` the interface is the one holding the server IP, which stays.
 */
export function deriveAddresses(
  config: Pick<ServePxeConfig, "bindAddress" | "serveUrl" | "httpPort" | "dhcpInterface" | "dhcpAutoInterface"> &
    Partial<Pick<ServePxeConfig, "dhcpMode">>,
  probes: AddressProbes,
): DerivedAddresses {
  const interfaceIp = (name: string) => {
    const ip = probes.interfaceIPv4(name);
    if (!ip) throw new ConfigError(`--dhcp-interface: interface ${name} does not exist or has no IPv4 address`);
    return ip;
  };
  const outbound = () => {
    try {
      return probes.outboundIp();
    } catch (err) {
      throw new ConfigError(
        `--bind-address: cannot detect this host's outbound IPv4 address (${(err as Error).message}); set --bind-address or --serve-url`,
      );
    }
  };

  let serverIp = config.bindAddress;
  if (serverIp === "0.0.0.0") {
    const urlHost = config.serveUrl ? new URL(config.serveUrl).hostname : "";
    if (config.dhcpInterface && !config.serveUrl) serverIp = interfaceIp(config.dhcpInterface);
    else if (isIPv4(urlHost)) serverIp = urlHost;
    else serverIp = outbound();
  }
  const serveUrl = config.serveUrl || `http://${serverIp}:${config.httpPort}`;

  let dhcpInterface = "";
  if (config.dhcpInterface) {
    dhcpInterface = config.dhcpInterface;
    serverIp = interfaceIp(dhcpInterface);
  } else if (config.dhcpAutoInterface) {
    const owner = probes.interfaceOwning(serverIp);
    if (!owner) throw new ConfigError(`--dhcp-auto-interface: no network interface holds the server IP ${serverIp}`);
    dhcpInterface = owner;
  }
  // The parser has checked that an explicit mode and the interface flags agree.
  const dhcpMode = config.dhcpMode === "proxy" ? "proxy" : dhcpInterface ? "interface" : "relay";
  return { serverIp, serveUrl, dhcpMode, dhcpInterface };
}
