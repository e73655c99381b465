import { createSocket } from "node:dgram";
import { interfaceIPv4, interfaceOwning } from "../util/network-interfaces.js";
import type { AddressProbes } from "./derive-addresses.js";

/**
 * Probes of the running host. The outbound IP is detected up front (it needs an async socket):
 * "connecting" a UDP socket to 8.8.8.8:80 makes the kernel choose a source address; nothing is sent.
 */
export async function systemAddressProbes(): Promise<AddressProbes> {
  let outbound: string | undefined;
  let failure = "no route";
  try {
    outbound = await detectOutboundIp();
  } catch (err) {
    failure = (err as Error).message;
  }
  return {
    outboundIp: () => {
      if (!outbound) throw new Error(failure);
      return outbound;
    },
    interfaceIPv4: (name) => interfaceIPv4(name),
    interfaceOwning: (ip) => interfaceOwning(ip),
  };
}

function detectOutboundIp(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    socket.once("error", (err) => {
      socket.close();
      reject(err);
    });
    socket.connect(80, "8.8.8.8", () => {
      const { address } = socket.address();
      socket.close();
      resolve(address);
    });
  });
}
