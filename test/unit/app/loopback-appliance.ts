/**
 * Starting the whole appliance on loopback in a unit test: free ports, the address probes that
 * pin every derived address to 127.0.0.1, and the serve-pxe flags for it. Used by the tests
 * that go through startAppliance (test/unit/app, test/unit/inventory).
 */
import dgram from "node:dgram";
import { createServer } from "node:net";
import type { AddressProbes } from "../../../server/config/derive-addresses.js";
import { parseServePxeArgs } from "../../../server/config/serve-pxe-config.js";

export const loopbackProbes: AddressProbes = {
  outboundIp: () => "127.0.0.1",
  interfaceIPv4: () => undefined,
  interfaceOwning: () => undefined,
};

/** A TCP port that was free a moment ago; UDP ports of the same number are almost always free too. */
export async function freeTcpPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A UDP port that was free a moment ago. */
export async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** serve-pxe config on 127.0.0.1 with fresh ports and silent logs; `extraArgs` come last. */
export async function loopbackConfig(opts: {
  inventory: string;
  stateDir: string;
  cacheDir: string;
  extraArgs?: string[];
}) {
  // TFTP and DHCP are UDP: probed as UDP (a TCP probe misses a UDP port another test holds).
  const [http, health, tftp, dhcp] = [
    await freeTcpPort(),
    await freeTcpPort(),
    await freeUdpPort(),
    await freeUdpPort(),
  ];
  return parseServePxeArgs(
    [
      `--inventory=${opts.inventory}`,
      `--state-dir=${opts.stateDir}`,
      `--cache-dir=${opts.cacheDir}`,
      "--bind-address=127.0.0.1",
      `--http-port=${http}`,
      `--health-port=${health}`,
      `--tftp-port=${tftp}`,
      `--dhcp-port=${dhcp}`,
      "--log-level=silent",
      // web console (issue 8): off unless a test asks for it (8443 is shared by every test on the host).
      "--console-port=0",
      ...(opts.extraArgs ?? []),
    ],
    {},
  );
}
