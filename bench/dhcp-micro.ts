import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { Registry } from "prom-client";
import { encode } from "../server/dhcp/codec.js";
import { ipOption, u8Option } from "../server/dhcp/options.js";
import { DhcpServer } from "../server/dhcp/server.js";
import type { DhcpTransport, ReceivedDatagram } from "../server/dhcp/transport.js";
import { BootEventBus } from "../server/events/boot-events.js";
import { countBootEvents, logBootEvents } from "../server/events/event-sinks.js";
import { DirImageStore } from "../server/images/dir-image-store.js";
import { FileDiscoveryStore } from "../server/inventory/discovery-store.js";
import { FileInventory } from "../server/inventory/file-inventory.js";

/**
 * In-process DHCP cost, without sockets: CPU microseconds per DORA (DISCOVER + REQUEST handled,
 * OFFER + ACK encoded) of the server's JavaScript (decode, policy, events, metrics, encode), with
 * the wiring of serve-pxe (FileInventory, DirImageStore, the event bus with its log and counter
 * subscribers, log level warn). The socket and the kernel are left out on purpose: on this shared
 * box a perfdhcp figure moves 2x between minutes, while CPU time per DORA in one process is
 * steady enough to compare two builds (run it in both, interleaved).
 *
 *   node dist/bench/dhcp-micro.js INVENTORY_DIR IMAGE_ROOT [--dora N] [--rounds R]
 *
 * INVENTORY_DIR: bench/dhcp.sh's Machines ($BENCH_STATE/dhcp-inventory-10000), IMAGE_ROOT its
 * --image-root ($BENCH_STATE). Relay mode, giaddr 10.213.0.10, server 10.213.0.1, the MACs of
 * the reservations in random order (as perfdhcp -M draws them).
 */

const SERVER_IP = "10.213.0.1";
const RELAY_IP = "10.213.0.10";

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

/** A relayed DISCOVER or REQUEST as perfdhcp -4 -g single sends it (options 53, 55, and 50/54 for REQUEST). */
function packet(type: 1 | 3, mac: Buffer, xid: number, ip: string): Buffer {
  const options = new Map<number, Buffer>([[53, u8Option(type)]]);
  if (type === 3) {
    options.set(50, ipOption(ip));
    options.set(54, ipOption(SERVER_IP));
  }
  options.set(55, Buffer.from([1, 28, 2, 3, 15, 6, 12]));
  const chaddr = Buffer.alloc(16);
  mac.copy(chaddr);
  return encode({
    op: 1,
    htype: 1,
    hlen: 6,
    hops: 1,
    xid,
    secs: 0,
    flags: 0,
    ciaddr: "0.0.0.0",
    yiaddr: "0.0.0.0",
    siaddr: "0.0.0.0",
    giaddr: RELAY_IP,
    chaddr,
    sname: "",
    file: "",
    options,
  });
}

class CountingTransport implements DhcpTransport {
  readonly description = "in-process";
  sent = 0;
  onSent: (() => void) | undefined;
  deliver: ((datagram: ReceivedDatagram) => void) | undefined;
  async start(onDatagram: (datagram: ReceivedDatagram) => void): Promise<void> {
    this.deliver = onDatagram;
  }
  readonly trySend = (): Error | undefined => {
    this.sent++;
    this.onSent?.();
    return undefined;
  };
  send(): Promise<void> {
    this.trySend();
    return Promise.resolve();
  }
  async close(): Promise<void> {}
}

async function main(): Promise<void> {
  const [inventoryDir, imageRoot] = process.argv.slice(2);
  if (!inventoryDir || !imageRoot)
    throw new Error("usage: dhcp-micro.js INVENTORY_DIR IMAGE_ROOT [--dora N] [--rounds R]");
  const doras = arg("--dora", 100_000);
  const rounds = arg("--rounds", 5);
  const stateDir = mkdtempSync(path.join(tmpdir(), "mm-dhcp-micro-"));
  const log = pino({ level: "warn" }, pino.destination("/dev/null"));
  const metrics = new Registry();
  const events = new BootEventBus({ log });
  logBootEvents(events, log);
  countBootEvents(events, metrics);
  const inventory = new FileInventory({ dir: inventoryDir, stateDir, log, metrics });
  await inventory.load();
  const discovery = new FileDiscoveryStore({ stateDir, log, metrics });
  await discovery.load();
  const images = new DirImageStore({
    baseDirOf: (machine) => inventory.sourceDirOf(machine.metadata.name),
    log,
    imageRoots: [imageRoot],
  });
  const transport = new CountingTransport();
  const server = new DhcpServer({
    transport,
    backend: inventory,
    discovery,
    images,
    events,
    log,
    metrics,
    mode: "relay",
    serverIp: SERVER_IP,
    serveUrl: `http://${SERVER_IP}:8080`,
  });
  await server.start();

  const clients = inventory
    .list()
    .flatMap((m) =>
      (m.spec.pxe?.dhcpLeases ?? []).map((l) => ({ mac: Buffer.from(l.mac.replaceAll(":", ""), "hex"), ip: l.ipv4 })),
    );
  if (clients.length === 0) throw new Error(`no Machines with leases in ${inventoryDir}`);
  // Pre-built packets (the client's cost is not ours): one DISCOVER and one REQUEST per client.
  const discovers = clients.map((c, i) => packet(1, c.mac, i + 1, c.ip));
  const requests = clients.map((c, i) => packet(3, c.mac, i + 1, c.ip));
  const order = Array.from({ length: 65_536 }, () => Math.floor(Math.random() * clients.length));

  // Waves of 64 DORAs: datagrams queue up as under a flood, then the server drains them.
  const wave = 64;
  const run = async (n: number) => {
    let k = 0;
    for (let done = 0; done < n; done += wave) {
      const until = transport.sent + 2 * wave;
      const drained = new Promise<void>((resolve) => {
        transport.onSent = () => {
          if (transport.sent >= until) resolve();
        };
      });
      for (let i = 0; i < wave; i++) {
        const c = order[k++ & 0xffff]!;
        transport.deliver?.({ data: discovers[c]!, address: RELAY_IP, port: 67 });
        transport.deliver?.({ data: requests[c]!, address: RELAY_IP, port: 67 });
      }
      await drained;
    }
  };
  await run(20_000); // warm-up: JIT, every code path
  const results: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await run(doras);
    const cpu = process.cpuUsage(cpu0);
    const wall = Number(process.hrtime.bigint() - t0) / 1e3;
    const usPerDora = (cpu.user + cpu.system) / doras;
    results.push(usPerDora);
    console.log(`round ${r + 1}: ${usPerDora.toFixed(2)} us CPU per DORA (wall ${(wall / doras).toFixed(2)} us)`);
  }
  results.sort((a, b) => a - b);
  console.log(
    `median ${results[Math.floor(results.length / 2)]!.toFixed(2)} us CPU per DORA, best ${results[0]!.toFixed(2)}`,
  );
  await server.close();
  await inventory.close();
  await discovery.close();
  // 10,000 status files: removed by a child after we exit, so a --cpu-prof profile ends with the bench.
  spawn("rm", ["-rf", stateDir], { detached: true, stdio: "ignore" }).unref();
}

await main();
