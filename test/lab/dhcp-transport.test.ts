/**
 * Lab test of the interface-mode DHCP socket (DeviceTransport + native addon) in network namespaces.
 *
 *   [mmt-<id>-c1] mmtc0 10.231.1.10/24 <==veth==> mmt0 10.231.1.1/24 \
 *                                                                      [mmt-<id>-srv]  (no default route)
 *   [mmt-<id>-c2] mmtc0 10.231.2.10/24 <==veth==> mmt1 10.231.2.1/24 /
 *
 * The server namespace has TWO interfaces; DeviceTransport is bound to mmt0 only. Beside it, a
 * plain dgram socket (UdpTransport, what Node offers natively) listens on the same 0.0.0.0:67 as a
 * control: it proves that what the device socket does not see did reach the namespace.
 * Root only; skipped with the reason otherwise (a failure when CI=true). Every wait is bounded;
 * processes are stopped by PID and the namespaces are deleted in `after`, also on failure.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { defaultAddonCandidates } from "../../server/dhcp/transport/native-addon.js";
import { repoRoot } from "../support/paths.js";

const id = `${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
const SRV = `mmt-${id}-srv`;
const C1 = `mmt-${id}-c1`;
const C2 = `mmt-${id}-c2`;
const WAIT_MS = 5000;

function haveCommand(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" }).status === 0;
}

function skipReason(): string | undefined {
  if (process.platform !== "linux") return "needs Linux network namespaces";
  if (process.getuid?.() !== 0) return "needs root (network namespaces, SO_BINDTODEVICE)";
  const missing = ["ip", "python3", "timeout"].filter((tool) => !haveCommand(tool));
  if (missing.length > 0) return `missing tools: ${missing.join(", ")}`;
  if (!defaultAddonCandidates().some((candidate) => existsSync(candidate)))
    return "native addon not built (npx node-gyp rebuild --directory=server/native)";
  return undefined;
}

/** Run a short command; throws with its stderr when it fails. Bounded by WAIT_MS. */
function run(args: string[]): string {
  const result = spawnSync(args[0], args.slice(1), { encoding: "utf8", timeout: WAIT_MS });
  if (result.status !== 0) throw new Error(`${args.join(" ")} failed: ${result.stderr || result.error?.message}`);
  return result.stdout;
}

/** Lines of a child's stdout, with a bounded wait for the first line matching a predicate. */
class LineStream {
  private readonly lines: string[] = [];
  private readonly waiters = new Set<() => void>();
  private ended = false;
  private stderr = "";

  constructor(readonly child: ChildProcess) {
    let partial = "";
    // Kept for error messages only (udhcpc, for one, chats on stderr).
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-2000);
    });
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop()!;
      this.lines.push(...parts);
      for (const wake of this.waiters) wake();
    });
    child.on("close", () => {
      this.ended = true;
      for (const wake of this.waiters) wake();
    });
  }

  private output(): string {
    return `stdout: ${this.lines.join(" | ")}; stderr: ${this.stderr}`;
  }

  all(): readonly string[] {
    return this.lines;
  }

  async waitFor(match: (line: string) => boolean, what: string): Promise<string> {
    const found = () => this.lines.find(match);
    return new Promise((resolve, reject) => {
      const check = () => {
        const line = found();
        if (line !== undefined || this.ended) {
          clearTimeout(timer);
          this.waiters.delete(check);
          if (line !== undefined) resolve(line);
          else reject(new Error(`process exited before ${what}; ${this.output()}`));
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; ${this.output()}`));
      }, WAIT_MS);
      this.waiters.add(check);
      check();
    });
  }
}

const started = new Set<ChildProcess>();

/** Start `argv` inside namespace `ns`; tracked so `after` can stop it by PID. */
function spawnIn(ns: string, argv: string[], env: NodeJS.ProcessEnv = {}): LineStream {
  // `ip netns exec` execs the command, so child.pid is the command's own PID.
  const child = spawn("ip", ["netns", "exec", ns, ...argv], {
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  started.add(child);
  child.on("close", () => started.delete(child));
  return new LineStream(child);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  child.stdin?.end();
  const timer = setTimeout(() => child.pid && child.kill("SIGKILL"), 2000);
  await closed;
  clearTimeout(timer);
}

/**
 * The server: DeviceTransport on mmt0:67 plus a plain UdpTransport on 0.0.0.0:67 as control.
 * Reports JSON lines on stdout; takes JSON send commands on stdin; closes both on stdin EOF.
 */
function serverScript(): string {
  const dist = path.join(repoRoot(), "dist", "server", "dhcp", "transport");
  const device = pathToFileURL(path.join(dist, "device-transport.js")).href;
  const udp = pathToFileURL(path.join(dist, "udp-transport.js")).href;
  return `
    import { createInterface } from "node:readline";
    import { DeviceTransport } from ${JSON.stringify(device)};
    import { UdpTransport } from ${JSON.stringify(udp)};
    const out = (o) => process.stdout.write(JSON.stringify(o) + "\\n");
    const transports = {
      device: new DeviceTransport({ interfaceName: process.env.MMT_IF, port: 67 }),
      udp: new UdpTransport({ port: 67 }),
    };
    for (const [via, t] of Object.entries(transports)) {
      await t.start((d) => out({ event: "rx", via, hex: d.data.toString("hex"), address: d.address, port: d.port,
        interfaceName: d.interfaceName, interfaceIndex: d.interfaceIndex }));
    }
    out({ event: "ready", interfaceIndex: transports.device.interfaceIndex });
    const lines = createInterface({ input: process.stdin });
    lines.on("line", async (line) => {
      const c = JSON.parse(line);
      try {
        await transports[c.via].send(Buffer.from(c.hex, "hex"), c.address, c.port);
        out({ event: "sent", id: c.id });
      } catch (e) {
        out({ event: "sendError", id: c.id, code: e.code ?? String(e) });
      }
    });
    lines.on("close", async () => { for (const t of Object.values(transports)) await t.close(); });
  `;
}

/** A minimal BOOTREQUEST/DHCPDISCOVER with the given xid (enough to look like DHCP on the wire). */
function discover(xid: number): Buffer {
  const packet = Buffer.alloc(244);
  packet.writeUInt8(1, 0); // op BOOTREQUEST
  packet.writeUInt8(1, 1); // htype ethernet
  packet.writeUInt8(6, 2); // hlen
  packet.writeUInt32BE(xid, 4);
  packet.writeUInt16BE(0x8000, 10); // broadcast flag
  Buffer.from([0x02, 0x4d, 0x4d, 0x54, 0x00, 0x01]).copy(packet, 28); // chaddr
  packet.writeUInt32BE(0x63825363, 236); // magic cookie
  Buffer.from([53, 1, 1, 255]).copy(packet, 240); // DHCPDISCOVER, end
  return packet;
}

/** python3: broadcast one datagram to 255.255.255.255:67 from :68 out of `ifname` (no default route needed). */
function broadcastFromClient(ns: string, payload: Buffer): void {
  const code = [
    "import socket,sys",
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)",
    "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)",
    "s.setsockopt(socket.SOL_SOCKET,socket.SO_BROADCAST,1)",
    "s.setsockopt(socket.SOL_SOCKET,25,b'mmtc0')", // SO_BINDTODEVICE
    "s.bind(('0.0.0.0',68))",
    "s.sendto(bytes.fromhex(sys.argv[1]),('255.255.255.255',67))",
  ].join("\n");
  run(["ip", "netns", "exec", ns, "timeout", "5", "python3", "-c", code, payload.toString("hex")]);
}

/** python3 listener on 0.0.0.0:68: prints `ready`, then `got <hex> <src>` or `timeout`. */
function listenInClient(ns: string, seconds: number): LineStream {
  const code = [
    "import socket,sys",
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)",
    "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)",
    "s.bind(('0.0.0.0',68))",
    "s.settimeout(float(sys.argv[1]))",
    "print('ready',flush=True)",
    "try:",
    "  d,a=s.recvfrom(4096)",
    "  print('got %s %s' % (d.hex(), a[0]),flush=True)",
    "except socket.timeout:",
    "  print('timeout',flush=True)",
  ].join("\n");
  return spawnIn(ns, ["timeout", "5", "python3", "-c", code, String(seconds)]);
}

interface Rx {
  event: "rx";
  via: "device" | "udp";
  hex: string;
  address: string;
  port: number;
  interfaceName?: string;
  interfaceIndex?: number;
}

const parse = (line: string) => JSON.parse(line) as Record<string, unknown>;

function received(server: LineStream, via: Rx["via"]): Rx[] {
  return server
    .all()
    .map(parse)
    .filter((o): o is Rx & Record<string, unknown> => o.event === "rx" && o.via === via) as Rx[];
}

function xidOf(hex: string): number {
  return Buffer.from(hex, "hex").readUInt32BE(4);
}

function ifindexIn(ns: string, ifname: string): number {
  return (JSON.parse(run(["ip", "-n", ns, "-j", "link", "show", ifname])) as Array<{ ifindex: number }>)[0].ifindex;
}

async function waitForCarrier(ns: string, ifname: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const [link] = JSON.parse(run(["ip", "-n", ns, "-j", "link", "show", ifname])) as Array<{ operstate: string }>;
    if (link.operstate === "UP") return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${ns}/${ifname} did not come up`);
}

const reason = skipReason();
const inCi = process.env.CI === "true" || process.env.CI === "1";

describe("DHCP device transport in network namespaces", { skip: inCi ? false : reason }, () => {
  let server: LineStream;
  let commandId = 0;

  const send = async (via: Rx["via"], payload: Buffer, address: string, port: number) => {
    const idNow = ++commandId;
    server.child.stdin!.write(JSON.stringify({ id: idNow, via, hex: payload.toString("hex"), address, port }) + "\n");
    return parse(
      await server.waitFor((line) => {
        const o = parse(line);
        return (o.event === "sent" || o.event === "sendError") && o.id === idNow;
      }, `send #${idNow} result`),
    );
  };

  before(async () => {
    if (reason) throw new Error(reason); // only reached with CI=true: prerequisites must be there
    for (const ns of [SRV, C1, C2]) {
      run(["ip", "netns", "add", ns]);
      run(["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    run(["ip", "-n", SRV, "link", "add", "mmt0", "type", "veth", "peer", "name", "mmtc0", "netns", C1]);
    run(["ip", "-n", SRV, "link", "add", "mmt1", "type", "veth", "peer", "name", "mmtc0", "netns", C2]);
    run(["ip", "-n", SRV, "addr", "add", "10.231.1.1/24", "dev", "mmt0"]);
    run(["ip", "-n", SRV, "addr", "add", "10.231.2.1/24", "dev", "mmt1"]);
    run(["ip", "-n", C1, "addr", "add", "10.231.1.10/24", "dev", "mmtc0"]);
    run(["ip", "-n", C2, "addr", "add", "10.231.2.10/24", "dev", "mmtc0"]);
    for (const [ns, ifname] of [
      [SRV, "mmt0"],
      [SRV, "mmt1"],
      [C1, "mmtc0"],
      [C2, "mmtc0"],
    ]) {
      run(["ip", "-n", ns, "link", "set", ifname, "up"]);
    }
    for (const [ns, ifname] of [
      [C1, "mmtc0"],
      [C2, "mmtc0"],
    ]) {
      await waitForCarrier(ns, ifname);
    }
    server = spawnIn(SRV, [process.execPath, "--input-type=module", "-e", serverScript()], { MMT_IF: "mmt0" });
    await server.waitFor((line) => parse(line).event === "ready", "server ready");
  });

  after(async () => {
    await Promise.all([...started].map(stop));
    for (const ns of [SRV, C1, C2]) spawnSync("ip", ["netns", "del", ns], { timeout: WAIT_MS });
  });

  it("the server namespace has no default route (the case where a plain socket cannot broadcast)", () => {
    assert.equal(run(["ip", "-n", SRV, "route", "show", "default"]).trim(), "");
  });

  it("receives a broadcast from client ns 1 with the right interface", async () => {
    broadcastFromClient(C1, discover(0x1001));
    const line = await server.waitFor((l) => {
      const o = parse(l);
      return o.event === "rx" && o.via === "device" && xidOf(o.hex as string) === 0x1001;
    }, "broadcast from ns 1 on the device socket");
    const rx = parse(line) as unknown as Rx;
    assert.equal(rx.address, "10.231.1.10");
    assert.equal(rx.port, 68);
    assert.equal(rx.interfaceName, "mmt0");
    assert.equal(rx.interfaceIndex, ifindexIn(SRV, "mmt0"));
  });

  it("does not receive a broadcast from client ns 2 (the server's other interface)", async () => {
    broadcastFromClient(C2, discover(0x2002));
    // The plain 0.0.0.0:67 socket hears it, so it did reach the server namespace ...
    await server.waitFor((l) => {
      const o = parse(l);
      return o.event === "rx" && o.via === "udp" && xidOf(o.hex as string) === 0x2002;
    }, "broadcast from ns 2 on the control socket");
    // ... and a later broadcast from ns 1 shows the device socket is alive and has moved past it.
    broadcastFromClient(C1, discover(0x1003));
    await server.waitFor((l) => {
      const o = parse(l);
      return o.event === "rx" && o.via === "device" && xidOf(o.hex as string) === 0x1003;
    }, "marker broadcast from ns 1");
    const deviceXids = received(server, "device").map((rx) => xidOf(rx.hex));
    assert.ok(!deviceXids.includes(0x2002), `device socket got ns 2's datagram: ${deviceXids}`);
  });

  it("receives a real udhcpc DISCOVER (source 0.0.0.0:68, raw-socket client)", async (t) => {
    if (!haveCommand("busybox")) return t.skip("busybox not installed (../shared/lab/install.sh)");
    const udhcpc = spawnIn(C1, [
      "timeout",
      "5",
      "busybox",
      "udhcpc",
      "-i",
      "mmtc0",
      "-n",
      "-q",
      "-t",
      "1",
      "-T",
      "1",
      "-s",
      "/bin/true",
    ]);
    const line = await server.waitFor((l) => {
      const o = parse(l);
      return o.event === "rx" && o.via === "device" && o.address === "0.0.0.0";
    }, "udhcpc DISCOVER");
    const rx = parse(line) as unknown as Rx;
    const packet = Buffer.from(rx.hex, "hex");
    assert.equal(rx.port, 68);
    assert.equal(rx.interfaceName, "mmt0");
    assert.equal(packet[0], 1, "BOOTREQUEST");
    assert.equal(packet.readUInt32BE(236), 0x63825363, "DHCP magic cookie");
    await stop(udhcpc.child);
  });

  it("a reply to 255.255.255.255:68 reaches client ns 1 and not client ns 2", async () => {
    const listener1 = listenInClient(C1, 3);
    const listener2 = listenInClient(C2, 2);
    await listener1.waitFor((l) => l === "ready", "listener in ns 1");
    await listener2.waitFor((l) => l === "ready", "listener in ns 2");
    const offer = Buffer.from("metalman-offer");
    const result = await send("device", offer, "255.255.255.255", 68);
    assert.equal(result.event, "sent", `send failed: ${JSON.stringify(result)}`);
    const got1 = await listener1.waitFor((l) => l.startsWith("got ") || l === "timeout", "ns 1 listener result");
    assert.equal(got1, `got ${offer.toString("hex")} 10.231.1.1`);
    const got2 = await listener2.waitFor((l) => l.startsWith("got ") || l === "timeout", "ns 2 listener result");
    assert.equal(got2, "timeout");
  });

  it("control: the plain dgram socket cannot send to 255.255.255.255 without a default route", async () => {
    const result = await send("udp", Buffer.from("x"), "255.255.255.255", 68);
    assert.equal(result.event, "sendError", "the kernel needs a route to pick an interface");
    assert.ok(result.code === "EPERM" || result.code === "ENETUNREACH", `got ${String(result.code)}`);
  });
});
