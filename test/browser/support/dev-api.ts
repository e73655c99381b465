/**
 * A stand-in of the console API for developing the UI's looks only (never used by a proof:
 * the browser tests run the real appliance). `node dist/test/browser/support/dev-api.js PORT N`
 * serves dist/console and N fake Machines on 127.0.0.1.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import fastifyStatic from "@fastify/static";
import Fastify from "fastify";
import { repoRoot } from "../../support/paths.js";

const port = Number(process.argv[2] ?? 15290);
const count = Number(process.argv[3] ?? 40);
const app = Fastify();
const root = path.join(repoRoot(), "dist", "console");
app.register(fastifyStatic, { root });
let seq = 1_000;
const phases = ["Ready", "Provisioning", "Ready", "Ready", "Failed", "PoweringOn"];
const machines = Array.from({ length: count }, (_, i) => ({
  name: `node-${String(i + 1).padStart(2, "0")}`,
  phase: phases[i % phases.length]!,
  image: i % 3 === 0 ? "ghcr.io/example/ubuntu-netboot:24.04" : "ghcr.io/example/flatcar:3975",
  bmc: "redfish",
  power: i % 7 === 3 ? "Off" : "On",
  repavePending: i % 11 === 5,
  quarantined: false,
  conditions: [],
  site: i % 2 ? "rack-a" : "rack-b",
  ip: `10.0.0.${20 + i}`,
  mac: `52:54:00:00:00:${(i + 16).toString(16)}`,
  failed: i % 6 === 4,
  failureReason: i % 6 === 4 ? "not-found" : undefined,
  lastEvent:
    i % 6 === 4
      ? { seq: seq++, time: new Date().toISOString(), step: "tftp.transfer", result: "not-found", reason: "not-found" }
      : { seq: seq++, time: new Date(Date.now() - i * 60_000).toISOString(), step: "pxe.disable", result: "ok" },
}));
const t0 = Date.now() - 120_000;
const at = (s: number) => new Date(t0 + s * 1000).toISOString();
const events = [
  { step: "operation.requested", result: "ok", detail: { kind: "HostReplace", user: "alice", transport: "console" } },
  { step: "bmc.set-boot-override", result: "ok", detail: { target: "Pxe", durationMs: 412 } },
  { step: "bmc.power", result: "ok", detail: { resetType: "PowerCycle", durationMs: 903 } },
  { step: "dhcp.discover", result: "ok", ip: "0.0.0.0", detail: { arch: "x86 BIOS" } },
  { step: "dhcp.offer", result: "ok", detail: { yiaddr: "10.0.0.21", bootFile: "undionly.kpxe" } },
  { step: "dhcp.ack", result: "ok", detail: { yiaddr: "10.0.0.21" } },
  {
    step: "tftp.transfer",
    result: "ok",
    ip: "10.0.0.21",
    detail: { path: "undionly.kpxe", bytes: 71_234, durationMs: 380 },
  },
  { step: "http.template", result: "ok", ip: "10.0.0.21", detail: { path: "/pxe/boot.ipxe", status: 200, bytes: 812 } },
  {
    step: "http.artifact",
    result: "ok",
    ip: "10.0.0.21",
    detail: { path: "/pxe/vmlinuz", status: 200, bytes: 11_534_336, durationMs: 2100 },
  },
  {
    step: "http.artifact",
    result: "ok",
    ip: "10.0.0.21",
    detail: { path: "/pxe/initrd", status: 200, bytes: 48_234_496, durationMs: 6800 },
  },
  { step: "pxe.disable", result: "ok", ip: "10.0.0.21" },
  { step: "operation.done", result: "ok", detail: { kind: "HostReplace" } },
].map((e, i) => ({ ...e, seq: 500 + i, time: at(i * 6), machine: "node-01" }));
const failedEvents = [
  { step: "bmc.power", result: "ok", detail: { resetType: "PowerCycle", durationMs: 880 } },
  { step: "dhcp.discover", result: "ok" },
  { step: "dhcp.offer", result: "ok", detail: { bootFile: "grubx64.efi" } },
  {
    step: "tftp.transfer",
    result: "not-found",
    reason: "not-found",
    detail: { path: "grubx64.efi", image: "ghcr.io/example/flatcar:3975" },
  },
].map((e, i) => ({ ...e, seq: 400 + i, time: at(-3600 + i * 5), machine: "node-01" }));

app.get("/api/v1/session", async () => ({ user: { name: "admin", role: "admin" }, csrfToken: "x" }));
app.get("/api/v1/machines", async () => ({ items: machines, total: machines.length }));
app.get<{ Params: { name: string } }>("/api/v1/machines/:name", async (req) => {
  const m = machines.find((x) => x.name === req.params.name)!;
  return {
    ...m,
    metadata: { name: m.name, labels: { "unbounded-cloud.io/site": m.site } },
    spec: {
      pxe: {
        image: m.image,
        dhcpLeases: [{ mac: m.mac, ipv4: m.ip, subnetMask: "255.255.255.0", gateway: "10.0.0.1", dns: ["10.0.0.1"] }],
        redfish: {
          url: "https://10.0.1.21",
          username: "admin",
          passwordRef: { name: "bmc", namespace: "default", key: "password" },
        },
      },
    },
    status: {
      image: { digest: "sha256:5f1a3c0e2b9d7c6a4e8f0b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e" },
      conditions: [
        { type: "Repaved", status: "True", reason: "PxeDisabled", lastTransitionTime: at(66) },
        { type: "PoweredOff", status: "False", reason: "PoweredOn", lastTransitionTime: at(12) },
      ],
    },
    bmcDetail: {
      kind: "redfish",
      address: "https://10.0.1.21/",
      certFingerprint:
        "ab:12:cd:34:ef:56:78:90:ab:12:cd:34:ef:56:78:90:ab:12:cd:34:ef:56:78:90:ab:12:cd:34:ef:56:78:90",
    },
    operations: [
      { name: "node-01-repave-x", kind: "HostReplace", phase: "Complete", requestedBy: "alice", createdAt: at(0) },
    ],
  };
});
app.get("/api/v1/machines/:name/events", async () => ({ lastSeq: 600, events: [...failedEvents, ...events] }));
app.get("/api/v1/machines/:name/yaml", async () => ({
  yaml: readFileSync(path.join(repoRoot(), "examples", "inventory", "node-01.yaml"), "utf8"),
}));
app.get("/api/v1/discovered", async () => ({
  items: [
    {
      mac: "52:54:00:aa:bb:cc",
      firstSeen: at(0),
      lastSeen: at(100),
      count: 6,
      arch: "x86 UEFI",
      vendorClass: "PXEClient:Arch:00007:UNDI:003016",
      lastIp: "0.0.0.0",
    },
  ],
}));
app.get("/api/v1/images", async () => ({
  items: [
    {
      ref: "ghcr.io/example/ubuntu-netboot:24.04",
      state: "ready",
      digest: "sha256:5f1a3c0e2b9d7c6a4e8f",
      bytes: 612_000_000,
      machines: ["node-01", "node-04"],
    },
    {
      ref: "ghcr.io/example/flatcar:3975",
      state: "pulling",
      bytes: 120_000_000,
      totalBytes: 410_000_000,
      machines: ["node-02"],
    },
  ],
}));
app.get("/api/v1/operations", async () => ({
  items: [
    {
      metadata: {
        name: "node-01-repave-lx2",
        creationTimestamp: at(0),
        annotations: { "metalman.io/requested-by": "alice" },
      },
      spec: { operationKind: "HostReplace", machineRef: "node-01" },
      status: { phase: "Complete" },
    },
  ],
}));
app.get("/api/v1/appliance", async () => ({
  version: "0.1.0",
  mode: "standalone",
  services: [
    { name: "dhcp", state: "serving", detail: "relay on :6767" },
    { name: "tftp", state: "serving" },
    { name: "http", state: "serving" },
  ],
  interfaces: [{ name: "eth1", addresses: ["10.0.0.1/24"], role: "provisioning" }],
  console: { fingerprint: "3A:9F:12:..." },
}));
app.get("/api/v1/audit", async () => ({
  items: [
    {
      seq: 1,
      time: at(0),
      user: "alice",
      role: "operator",
      from: "10.0.9.4",
      action: "machine.repave",
      target: "node-01",
      result: "ok",
    },
  ],
}));
app.get("/api/v1/events", async (_req, reply) => {
  reply.raw.writeHead(200, { "content-type": "text/event-stream" });
  reply.raw.write("retry: 2000\n\n");
  const timer = setInterval(() => {
    const m = machines[Math.floor(Math.random() * machines.length)]!;
    const e = { seq: seq++, time: new Date().toISOString(), step: "dhcp.ack", result: "ok", machine: m.name, ip: m.ip };
    reply.raw.write(`id: ${e.seq}\nevent: machine-event\ndata: ${JSON.stringify(e)}\n\n`);
  }, 1000);
  reply.raw.on("close", () => clearInterval(timer));
});
await app.listen({ port, host: "127.0.0.1" });
console.log(`dev-api on http://127.0.0.1:${port}/`);
