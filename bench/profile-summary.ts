import { readFileSync } from "node:fs";

/**
 * Quick look at a V8 `.cpuprofile` (from `BENCH_CPU_PROF=1 bench/*.sh`, i.e. node --cpu-prof):
 * self and inclusive time per function over a window of the profile, so a bench can say
 * where the server's time went during the measured run and not during start-up.
 *
 *   node dist/bench/profile-summary.js FILE.cpuprofile [--last SECONDS] [--skip-end SECONDS] [--top N]
 *
 * --last 4 --skip-end 1.5 = the 4 s before the final 1.5 s (shutdown) of the profile.
 * Without --last the whole profile is summarised.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

function option(args: string[], name: string, fallback: number): number {
  const at = args.indexOf(name);
  return at >= 0 && at + 1 < args.length ? Number(args[at + 1]) : fallback;
}

function summarize(profile: CpuProfile, lastUs: number, skipEndUs: number, top: number): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (id: number) => {
    const cf = byId.get(id)?.callFrame;
    if (!cf) return "?";
    const where = cf.url.replace(/^.*\/(dist|node_modules)\//, "$1/");
    return `${cf.functionName || "(anonymous)"} ${where}${where ? `:${cf.lineNumber + 1}` : ""}`;
  };
  const times: number[] = [];
  let t = profile.startTime;
  for (const d of profile.timeDeltas) {
    t += d;
    times.push(t);
  }
  const end = (times.at(-1) ?? t) - skipEndUs;
  const start = lastUs > 0 ? end - lastUs : Number.NEGATIVE_INFINITY;
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    if (times[i] < start || times[i] > end) continue;
    // A sample's weight is the gap to the next sample (the time it stood for).
    const weight = profile.timeDeltas[i + 1] ?? 0;
    total += weight;
    const leaf = label(profile.samples[i]);
    self.set(leaf, (self.get(leaf) ?? 0) + weight);
    const seen = new Set<string>();
    for (let id: number | undefined = profile.samples[i]; id !== undefined; id = parent.get(id)) {
      const key = label(id);
      if (seen.has(key)) continue; // recursion counts once
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + weight);
    }
  }
  const lines = [`window ${(total / 1e6).toFixed(2)} s of samples`];
  const table = (title: string, map: Map<string, number>, filter: (key: string) => boolean) => {
    lines.push(title);
    const rows = [...map].filter(([key]) => filter(key)).sort((a, b) => b[1] - a[1]);
    for (const [key, us] of rows.slice(0, top)) {
      lines.push(
        `${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / (total || 1)).toFixed(1).padStart(5)} %  ${key}`,
      );
    }
  };
  table("-- self time", self, () => true);
  table("-- inclusive time (metalman code)", inclusive, (key) => key.includes("dist/server/"));
  return lines.join("\n");
}

const args = process.argv.slice(2);
const file = args.find((a, i) => !a.startsWith("--") && (i === 0 || !args[i - 1].startsWith("--")));
if (!file) {
  console.error("usage: profile-summary FILE.cpuprofile [--last S] [--skip-end S] [--top N]");
  process.exitCode = 2;
} else {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const lastUs = option(args, "--last", 0) * 1e6;
  const skipEndUs = option(args, "--skip-end", 0) * 1e6;
  console.log(summarize(profile, lastUs, skipEndUs, option(args, "--top", 20)));
}
