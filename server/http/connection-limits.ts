import type { Server, Socket } from "node:net";
import { normalizeIp } from "./client-identity.js";

/**
 * Connection caps for an HTTP listener (issue 5 §4.4, docs/security.md): a total, so a flood
 * cannot exhaust file descriptors, and one per client address, so one host (a broken
 * firmware retrying in a loop, or an attacker on the PXE LAN) cannot take every slot while
 * the other machines of the rack wait. Refused connections get a short `503` and are closed.
 */
export interface ConnectionLimits {
  /** Open connections at most (Node's server.maxConnections). 0 = unlimited. */
  maxConnections: number;
  /** Open connections per client address at most. 0 = unlimited. */
  perClient: number;
  /** Peers exempt from the per-client cap (trusted reverse proxies carry many clients). */
  exempt?: (ip: string) => boolean;
}

/**
 * Defaults: a PXE client opens a handful of connections (GRUB and iPXE one at a time, curl or
 * cloud-init a few); 32 per address leaves room for an installer fetching in parallel, and 1024
 * in total stays well under the usual 1024-4096 file descriptor limit with TFTP beside it.
 */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = { maxConnections: 1024, perClient: 32 };

const REFUSAL =
  "HTTP/1.1 503 Service Unavailable\r\n" +
  "Content-Type: text/plain; charset=utf-8\r\n" +
  "X-Content-Type-Options: nosniff\r\n" +
  "Retry-After: 1\r\n" +
  "Connection: close\r\n" +
  "Content-Length: 21\r\n" +
  "\r\n" +
  "too many connections\n";

export interface ConnectionCounter {
  /** Open connections of one client address (tests, metrics). */
  openFrom(ip: string): number;
}

/**
 * Installs the caps on `server` (before Node's own connection handling, so a refused socket
 * never reaches the HTTP parser). `onRefused` is told about each refusal (counted and logged
 * by the caller, rate-limited).
 */
export function limitConnections(
  server: Server,
  limits: ConnectionLimits,
  onRefused: (ip: string | undefined, reason: "total" | "per-client") => void = () => undefined,
): ConnectionCounter {
  const open = new Map<string, number>();
  if (limits.maxConnections > 0) {
    // Node refuses beyond this itself (the socket is destroyed and "drop" is emitted).
    server.maxConnections = limits.maxConnections;
    server.on("drop", (data?: { remoteAddress?: string }) => onRefused(data?.remoteAddress, "total"));
  }
  if (limits.perClient > 0) {
    server.prependListener("connection", (socket: Socket) => {
      const ip = socket.remoteAddress === undefined ? undefined : normalizeIp(socket.remoteAddress);
      if (ip === undefined || limits.exempt?.(ip)) return;
      const count = open.get(ip) ?? 0;
      if (count >= limits.perClient) {
        onRefused(ip, "per-client");
        refuse(socket);
        return;
      }
      open.set(ip, count + 1);
      socket.once("close", () => {
        const left = (open.get(ip) ?? 1) - 1;
        if (left <= 0) open.delete(ip);
        else open.set(ip, left);
      });
    });
  }
  return { openFrom: (ip) => open.get(ip) ?? 0 };
}

function refuse(socket: Socket): void {
  // Nothing the client sends is read: the HTTP parser must not answer this socket too.
  socket.pause();
  socket.on("error", () => undefined);
  socket.end(REFUSAL);
  // A client that never reads cannot hold the socket: closed once written, or after 1 s at most.
  const timer = setTimeout(() => socket.destroy(), 1000);
  timer.unref();
  socket.once("close", () => clearTimeout(timer));
  socket.once("finish", () => socket.destroy());
}
