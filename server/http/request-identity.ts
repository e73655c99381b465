import type { FastifyRequest } from "fastify";
import type { MachineBackend } from "../inventory/backend.js";
import type { Machine } from "../inventory/types.js";
import type { ClientIdentity } from "./client-identity.js";

/**
 * Netboot routes are machine-facing: like upstream they identify the Machine by the
 * request's source IP (its DHCP lease address). Console/API routes get real
 * authentication with the console work; nothing here is meant for humans.
 */
export function requesterIp(identify: ClientIdentity, request: FastifyRequest): string | undefined {
  return identify(request.socket.remoteAddress, request.headers["x-forwarded-for"]);
}

/** The lease MAC of the Machine for this IP, for BootEvents (lower-case). */
export function leaseMac(machine: Machine, ip: string): string | undefined {
  return machine.spec.pxe?.dhcpLeases?.find((lease) => lease.ipv4 === ip)?.mac.toLowerCase();
}

export function machineForIp(backend: MachineBackend, ip: string | undefined): Machine | undefined {
  return ip === undefined ? undefined : backend.byIp(ip);
}
