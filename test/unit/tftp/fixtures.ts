import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Logger } from "pino";
import { pino } from "pino";
import { Registry } from "prom-client";
import { BootEventBus } from "../../../server/events/boot-events.js";
import type { MachineBackend } from "../../../server/inventory/backend.js";
import { API_VERSION, type Machine } from "../../../server/inventory/types.js";
import type { Artifact, ArtifactResolver } from "../../../server/netboot/artifact.js";
import { TftpServer, type TftpServerOptions } from "../../../server/tftp/server.js";
import { loadUdpAddon } from "../../../server/tftp/transfer-socket.js";
import { unusedOperations } from "../http/fake-backend.js";

/**
 * Transfer socket implementations the loopback tests run over (see server/tftp/transfer-socket.ts);
 * "thread": native sockets with lock-step file transfers on a worker thread (lockstepThreads).
 */
export const SOCKET_KINDS = ["native", "thread", "dgram"] as const;
export type SocketKind = (typeof SOCKET_KINDS)[number];

/** describe() options: the native variant is skipped (visibly) when the addon is not built. */
export function socketSuite(kind: SocketKind): { skip: string | false } {
  const missing = kind !== "dgram" && loadUdpAddon() === undefined;
  return { skip: missing ? "metalman_udp.node not built (npx node-gyp rebuild --directory=server/native)" : false };
}

/** The one machine the fake inventory knows: it "leases" 127.0.0.1. */
export const MACHINE: Machine = {
  apiVersion: API_VERSION,
  kind: "Machine",
  metadata: { name: "node-1", resourceVersion: "1" },
  spec: {
    pxe: {
      image: "dir:/nonexistent",
      dhcpLeases: [{ mac: "02:00:00:00:00:01", ipv4: "127.0.0.1", subnetMask: "255.0.0.0", gateway: "127.0.0.1" }],
    },
  },
};

export function fakeBackend(machines: Machine[] = [MACHINE]): MachineBackend {
  const byIp = (ip: string) => machines.find((m) => m.spec.pxe?.dhcpLeases?.some((l) => l.ipv4 === ip));
  return {
    get: (name) => machines.find((m) => m.metadata.name === name),
    list: () => Object.assign([...machines], { resourceVersion: "1" }),
    byMac: () => undefined,
    byIp,
    watch: () => () => {},
    updateStatus: () => Promise.reject(new Error("read-only fake")),
    problems: () => [],
    quarantine: () => undefined,
    operations: unusedOperations,
  };
}

/** Serves a table of path → artifact; anything else is not found. */
export function fakeResolver(table: Record<string, Artifact>): ArtifactResolver & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async resolve(_machine, path) {
      calls.push(path);
      return table[path] ?? { kind: "not-found", reason: `${path}: not found` };
    },
  };
}

export function rendered(body: Buffer | string): Artifact {
  return { kind: "rendered", body: Buffer.from(body), contentType: "text/plain" };
}

export interface TestServer {
  server: TftpServer;
  port: number;
  events: BootEventBus;
  metrics: Registry;
  logLines: string[];
}

/** A started server on 127.0.0.1, random port, silent logger that records warn+ lines. */
export async function startServer(
  table: Record<string, Artifact>,
  extra: Partial<TftpServerOptions> = {},
): Promise<TestServer> {
  const logLines: string[] = [];
  const log: Logger = pino({ level: "warn" }, { write: (line: string) => logLines.push(line) });
  const events = new BootEventBus();
  const metrics = new Registry();
  const server = new TftpServer({
    bindAddress: "127.0.0.1",
    port: 0,
    backend: fakeBackend(),
    resolver: fakeResolver(table),
    events,
    log,
    metrics,
    ...extra,
  });
  await server.start();
  const wanted = extra.nativeSockets === undefined ? undefined : extra.nativeSockets ? "native" : "dgram";
  if (wanted !== undefined && server.transferSockets !== wanted) {
    await server.close();
    throw new Error(`asked for ${wanted} transfer sockets, server uses ${server.transferSockets}`);
  }
  return { server, port: server.address.port, events, metrics, logLines };
}

export async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const data = await metric.get();
  return data.values
    .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
    .reduce((sum, v) => sum + v.value, 0);
}

/** Resolves with the next `tftp.transfer` event (or rejects after timeoutMs). */
export function nextTransferEvent(events: BootEventBus, timeoutMs = 10_000) {
  return new Promise<import("../../../server/events/boot-events.js").BootEvent>((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error("no tftp.transfer event"));
    }, timeoutMs);
    const off = events.subscribe((e) => {
      if (e.step !== "tftp.transfer") return;
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}

/** Waits (bounded) until the server has no transfer left, so the next event belongs to the next request. */
export async function settled(server: TftpServer): Promise<void> {
  for (let i = 0; i < 200 && server.activeTransfers > 0; i++) await new Promise((r) => setTimeout(r, 10));
}

/**
 * `body` as a file artifact in a fresh temp dir (the lock-step thread reads files only), or as a
 * rendered one; `cleanup` removes the dir.
 */
export async function blobArtifact(
  body: Buffer,
  asFile: boolean,
): Promise<{ artifact: Artifact; cleanup: () => Promise<void> }> {
  if (!asFile) return { artifact: rendered(body), cleanup: async () => {} };
  const dir = await mkdtemp(path.join(tmpdir(), "metalman-tftp-blob-"));
  const absPath = path.join(dir, "blob.bin");
  await writeFile(absPath, body);
  return {
    artifact: { kind: "file", absPath, size: body.length, mtime: new Date() },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
