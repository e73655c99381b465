/**
 * bench/appliance-bench.ts - the appliance image's figures (issue 11): build time, image size, the
 * time from power-on to serving, and the service's RSS after boot. Run by bench/appliance.sh (root).
 *
 * Build: build/appliance/build.sh --no-build into a scratch folder, timed; with BENCH_COLD=1 a
 * second build with an empty base cache (mmdebstrap downloads every package again).
 * Size: the raw image's length, the blocks it really holds (du), what the bmap maps (what
 * `bmaptool copy` writes), the qcow2 and the update bundle.
 * Boot: QEMU (OVMF, TCG) with the suite's two NICs (test/appliance);
 * from the serial log: power-on to the getty login prompt (the peer: what the same Debian base
 * reaches without waiting for metalman) and to the banner's health=ok (serving), the kernel's own
 * uptime when it turned healthy, and the service's VmRSS then and a minute later.
 * Prints one `appliance:` line per figure and a JSON summary; nothing is asserted.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ApplianceVm, netnsDown, netnsUp, sh } from "../test/appliance/appliance-vm.js";
import { repoRoot } from "../test/support/paths.js";

const VERSION = "0.1.0-bench";
const BOOTS = Math.max(1, Math.min(5, Number(process.env.BENCH_BOOTS ?? "2")));
const MIB = 1024 * 1024;

function timed<T>(body: () => T): { result: T; seconds: number } {
  const started = process.hrtime.bigint();
  const result = body();
  return { result, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

function build(out: string, cache?: string): number {
  const args = [path.join(repoRoot(), "build/appliance/build.sh"), "--no-build", "--out", out, "--version", VERSION];
  if (cache) args.push("--cache", cache);
  return timed(() => sh("bash", args, 40 * 60_000)).seconds;
}

/** Bytes `bmaptool copy` writes: the mapped ranges of the bmap (block size times mapped blocks). */
function bmapMappedBytes(bmap: string): number {
  const text = readFileSync(bmap, "utf8");
  const blockSize = Number(/<BlockSize>\s*(\d+)\s*<\/BlockSize>/.exec(text)?.[1]);
  const mapped = Number(/<MappedBlocksCount>\s*(\d+)\s*<\/MappedBlocksCount>/.exec(text)?.[1]);
  return blockSize * mapped;
}

interface BootFigures {
  toLoginPromptS: number;
  toServingS: number;
  healthyAtUptimeS: number;
  rssAtServingMiB: number;
  rssAfterMinuteMiB: number;
}

async function bootOnce(disk: string, vars: string, dir: string, label: string): Promise<BootFigures> {
  const started = Date.now();
  const vm = new ApplianceVm(disk, vars, dir, label);
  try {
    let loginAt = 0;
    const banner = /metalman-banner: .*health=ok .*rss_kib=(\d+) healthy_at_uptime_s=([\d.]+)/;
    let servingAt = 0;
    let first: RegExpMatchArray | null = null;
    const deadline = Date.now() + 10 * 60_000;
    while (Date.now() < deadline && (loginAt === 0 || servingAt === 0) && vm.running) {
      const serial = vm.serial();
      if (loginAt === 0 && /metalman login:/.test(serial)) loginAt = Date.now();
      if (servingAt === 0) {
        first = serial.match(banner);
        if (first) servingAt = Date.now();
      }
      await sleep(250);
    }
    if (!first || loginAt === 0)
      throw new Error(`${label}: no login prompt or healthy banner:\n${vm.serial().slice(-3000)}`);
    // The banner timer writes the line again every minute: the RSS once the service has settled.
    const from = vm.serial().length;
    const later = await vm.waitSerial(/metalman-banner: .*rss_kib=(\d+)/, 150_000, from).catch(() => first);
    return {
      toLoginPromptS: (loginAt - started) / 1000,
      toServingS: (servingAt - started) / 1000,
      healthyAtUptimeS: Number(first[2]),
      rssAtServingMiB: Number(first[1]) / 1024,
      rssAfterMinuteMiB: Number(later?.[1] ?? first[1]) / 1024,
    };
  } finally {
    await vm.powerOff(60_000);
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function main(): Promise<void> {
  const scratch = mkdtempSync("/tmp/ap-bench-");
  const out = path.join(scratch, "out");
  const name = `metalman-appliance-${VERSION}`;
  try {
    const warmBuildS = build(out);
    // The cache was filled (or reused) by the first build; this one shows a warm factory's time.
    const rebuildS = build(out);
    const coldBuildS =
      process.env.BENCH_COLD === "1" ? build(path.join(scratch, "cold"), path.join(scratch, "cache")) : undefined;
    const img = path.join(out, `${name}.img`);
    const size = {
      rawMiB: statSync(img).size / MIB,
      allocatedMiB: Number(sh("du", ["-B1", img]).split("\t")[0]) / MIB,
      bmapMappedMiB: bmapMappedBytes(path.join(out, `${name}.bmap`)) / MIB,
      qcow2MiB: statSync(path.join(out, `${name}.qcow2`)).size / MIB,
      updateBundleMiB: statSync(path.join(out, `${name}.update.tar`)).size / MIB,
    };
    const disk = path.join(scratch, "disk.img");
    sh("bmaptool", ["copy", "--bmap", path.join(out, `${name}.bmap`), img, disk], 300_000);
    netnsUp();
    const boots: BootFigures[] = [];
    for (let i = 0; i < BOOTS; i++) {
      // A fresh copy each time: every boot is a first boot (certificate, users, data growth).
      if (i > 0) sh("bmaptool", ["copy", "--bmap", path.join(out, `${name}.bmap`), img, disk], 300_000);
      boots.push(await bootOnce(disk, path.join(scratch, `vars-${i}.fd`), scratch, `bench${i}`));
    }
    const figures = {
      version: VERSION,
      accel: "tcg",
      buildSeconds: { firstInThisRun: warmBuildS, rebuild: rebuildS, ...(coldBuildS ? { coldCache: coldBuildS } : {}) },
      size,
      boot: {
        runs: boots.length,
        toLoginPromptS: median(boots.map((b) => b.toLoginPromptS)),
        toServingS: median(boots.map((b) => b.toServingS)),
        healthyAtUptimeS: median(boots.map((b) => b.healthyAtUptimeS)),
        servingOverLoginPrompt: median(boots.map((b) => b.toServingS / b.toLoginPromptS)),
      },
      rssMiB: {
        atServing: median(boots.map((b) => b.rssAtServingMiB)),
        afterAMinute: median(boots.map((b) => b.rssAfterMinuteMiB)),
      },
    };
    const f = (n: number) => n.toFixed(1);
    console.log(
      `appliance: build ${f(warmBuildS)} s (first in this run), rebuild ${f(rebuildS)} s${coldBuildS ? `, cold cache ${f(coldBuildS)} s` : ""}`,
    );
    console.log(
      `appliance: image raw ${f(size.rawMiB)} MiB, holds ${f(size.allocatedMiB)} MiB, bmap writes ${f(size.bmapMappedMiB)} MiB, qcow2 ${f(size.qcow2MiB)} MiB, update bundle ${f(size.updateBundleMiB)} MiB`,
    );
    console.log(
      `appliance: power-on to login prompt ${f(figures.boot.toLoginPromptS)} s, to serving ${f(figures.boot.toServingS)} s (${figures.boot.servingOverLoginPrompt.toFixed(2)}x the login prompt; kernel uptime at healthy ${f(figures.boot.healthyAtUptimeS)} s), TCG, median of ${boots.length}`,
    );
    console.log(
      `appliance: metalman RSS ${f(figures.rssMiB.atServing)} MiB at serving, ${f(figures.rssMiB.afterAMinute)} MiB a minute later`,
    );
    console.log(JSON.stringify(figures));
  } finally {
    netnsDown();
    if (process.env.BENCH_KEEP !== "1") rmSync(scratch, { recursive: true, force: true });
    else if (existsSync(scratch)) console.log(`# kept ${scratch}`);
  }
}

await main();
