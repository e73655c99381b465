/**
 * Cluster sync at scale (issue 10 targets): 10,000 Machines in the fake API server (its own
 * process, bench/cluster-fake-server.ts, so RSS is the appliance side only); time from start
 * to serving (first list indexed), API-write-to-index latency, and RSS after the sync.
 * Targets: < 3 s, < 100 ms, < 150 MiB. Run: node dist/bench/cluster-sync.js [count]
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { HttpKubeApi, loadKubeConfig } from "../server/cluster/kube-api.js";
import { KubeMachineBackend } from "../server/cluster/kube-backend.js";
import { kubeconfigYaml } from "../test/support/kubectl.js";
import { benchMac, benchMachine } from "./cluster-machines.js";

const count = Number(process.argv[2] ?? 10_000);
const dir = mkdtempSync(path.join(tmpdir(), "metalman-bench-cluster-"));
const child = spawn(
  process.execPath,
  [path.join(path.dirname(fileURLToPath(import.meta.url)), "cluster-fake-server.js"), String(count)],
  { stdio: ["ignore", "pipe", "inherit"] },
);
const url = await new Promise<string>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("fake API server did not start in 60 s")), 60_000);
  child.stdout.once("data", (d: Buffer) => {
    clearTimeout(timer);
    resolve(d.toString().trim());
  });
});
writeFileSync(path.join(dir, "kubeconfig"), kubeconfigYaml(url));
const client = new HttpKubeApi(await loadKubeConfig({ kubeconfig: path.join(dir, "kubeconfig") }), {
  timeoutMs: 30_000,
});
const backend = new KubeMachineBackend({
  api: client,
  site: "bench",
  stateDir: path.join(dir, "state"),
  log: pino({ level: "silent" }),
});

// What the process holds before any Machine (Node, client-node, pino): reported beside the total.
const baseline = process.memoryUsage().rss / 2 ** 20;
const t0 = performance.now();
await backend.start(30_000);
const syncMs = performance.now() - t0;
if (!backend.byMac(benchMac(count - 1))) throw new Error("not synced");
const rss = process.memoryUsage().rss / 2 ** 20;

const latencies: number[] = [];
for (let k = 0; k < 50; k++) {
  const i = (k * 197) % count;
  const ip = `172.16.${k}.${(i % 250) + 1}`;
  const m = benchMachine(i, ip);
  const start = performance.now();
  await client.request("PUT", `/apis/unbounded-cloud.io/v1alpha3/machines/${m.metadata.name}`, m);
  for (let spin = 0; !backend.byIp(ip) && spin < 100_000; spin++) await new Promise((r) => setImmediate(r));
  latencies.push(performance.now() - start);
}
latencies.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    machines: count,
    syncToServingMs: Math.round(syncMs),
    apiWriteToIndexMs: { p50: +latencies[25]!.toFixed(2), p99: +latencies[49]!.toFixed(2) },
    rssMiB: Math.round(rss),
    rssBeforeSyncMiB: Math.round(baseline),
    targets: { syncToServingMs: 3000, apiWriteToIndexMs: 100, rssMiB: 150 },
  }),
);
await backend.close();
client.close();
child.kill("SIGTERM");
rmSync(dir, { recursive: true, force: true });
