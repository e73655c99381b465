/**
 * bench/bmc.sh's client side: N Redfish BMCs (URLs from the emulator's JSON lines on stdin)
 * polled and power-cycled at once through the product's RedfishDriver (one pool and one
 * request at a time per BMC, TOFU pin kept in memory). Prints one JSON line: wall times of
 * the poll and the cycle rounds, failures, and this process's peak RSS.
 * Usage: node dist/bench/bmc-storm.js USER PASSWORD < emulator-lines.jsonl
 */
import { createInterface } from "node:readline";
import { RedfishDriver } from "../server/bmc/redfish/driver.js";
import type { PinStore } from "../server/bmc/tls-pin.js";

const [username = "admin", password = "admin"] = process.argv.slice(2);
const urls: string[] = [];
for await (const line of createInterface({ input: process.stdin })) {
  if (line.startsWith("{")) urls.push((JSON.parse(line) as { url: string }).url);
}

function memoryPins(): PinStore {
  let pin: string | undefined;
  return {
    current: () => pin,
    capture: async (fp) => {
      pin ??= fp;
      return pin;
    },
    mismatch: () => undefined,
  };
}

const drivers = urls.map(
  (url) => new RedfishDriver({ url, username, password, deviceID: "1", pins: memoryPins(), settleMs: 200 }),
);
async function round(fn: (d: RedfishDriver) => Promise<unknown>): Promise<{ ms: number; failures: number }> {
  const t0 = performance.now();
  const results = await Promise.allSettled(drivers.map(fn));
  return { ms: Math.round(performance.now() - t0), failures: results.filter((r) => r.status === "rejected").length };
}
const poll = await round((d) => d.powerState());
const cycle = await round((d) => d.power("PowerCycle"));
await Promise.all(drivers.map((d) => d.close()));
process.stdout.write(
  `${JSON.stringify({ bmcs: drivers.length, poll, cycle, peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) })}\n`,
);
