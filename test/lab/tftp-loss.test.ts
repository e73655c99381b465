/**
 * TFTP windowed transfers under packet loss (RFC 7440 §4, issue 5 §1.3): `tc netem` (or, on a
 * kernel without sch_netem, iptables' statistic match) drops 1 % and 5 % of the datagrams in
 * both directions of the veth pair, and two clients fetch an 8 MiB
 * file at windowsize 4 (EDK2's default), 8 and 16 with blksize 1468:
 * - the test client answering like EDK2's Mtftp4RrqHandleData (an out-of-order block is
 *   answered at once with an ACK of the last in-order block; it drops what follows a gap);
 * - atftp (at 1 % only, see below).
 * Every copy must be byte-identical, and the DATA datagrams the server put on the wire (counted
 * by the server's netem qdisc or iptables counter, dropped ones included) must stay near the minimum. Before the fix, one
 * lost block at the end of a window started a duplicate cascade (≈ 2x the minimum) and a lost
 * first block stalled for a full timeout. Needs root; see test/lab/README.md.
 */
import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";
import { after, before, it } from "node:test";
import {
  Appliance,
  type LabImage,
  labSuite,
  makeScratchDir,
  removeDir,
  runInNs,
  runOk,
  sha256File,
  type VethLab,
  vethLabDown,
  vethLabUp,
  writeImage,
  writeInventory,
} from "./harness.js";

const FILE_BYTES = 8 * 1024 * 1024;
const BLKSIZE = 1468;
const MIN_DATA = Math.floor(FILE_BYTES / BLKSIZE) + 1;
const CLIENT_CLI = path.join(path.dirname(new URL(import.meta.url).pathname), "tftp-client-cli.js");

/**
 * Allowed DATA packets: each lost DATA costs about the rest of its window again (the client
 * drops what follows a gap), each lost window ACK one window, plus a few echoes. Before: one loss
 * could double the count. The loss is random and a loaded CI box adds spurious probes, so the
 * bound leaves two more windows per loss of room (4W, not 2W; 3W was broken once in CI by a run
 * of clustered losses, 1.37x at W=8): a cascade (one loss doubling the count) still breaks it by far.
 */
function dataBound(lossPercent: number, windowsize: number): number {
  return Math.ceil(MIN_DATA * (1 + (lossPercent / 100) * (4 * windowsize + 8)));
}

/**
 * Random loss on every datagram a namespace sends (both ends: DATA and ACKs), and a counter of
 * what the server sent. `tc netem` where the kernel has it; kernels built without sch_netem
 * (this lab's VM kernel) get the same from iptables' statistic match.
 */
interface Loss {
  /** Datagrams the server put on the wire (dropped ones included) since the last set(). */
  serverDatagrams(): Promise<number>;
}

async function netemWorks(ns: string, dev: string): Promise<boolean> {
  const probe = await runInNs(ns, ["tc", "qdisc", "add", "dev", dev, "root", "netem", "loss", "0%"], {
    timeoutMs: 10_000,
  });
  if (probe.code !== 0) return false;
  await runInNs(ns, ["tc", "qdisc", "del", "dev", dev, "root"], { timeoutMs: 10_000 });
  return true;
}

async function setLoss(lab: VethLab, percent: number, netem: boolean): Promise<Loss> {
  const ends = [
    [lab.serverNs, lab.serverIf],
    [lab.clientNs, lab.clientIf],
  ] as const;
  if (netem) {
    for (const [ns, dev] of ends) {
      // A fresh qdisc per transfer: its counters start at 0.
      await runInNs(ns, ["tc", "qdisc", "del", "dev", dev, "root"], { timeoutMs: 10_000 });
      await runOk([
        "ip",
        "netns",
        "exec",
        ns,
        "tc",
        "qdisc",
        "add",
        "dev",
        dev,
        "root",
        "netem",
        "loss",
        `${percent}%`,
      ]);
    }
    return {
      async serverDatagrams() {
        const out = (
          await runOk(["ip", "netns", "exec", lab.serverNs, "tc", "-s", "qdisc", "show", "dev", lab.serverIf])
        ).stdout;
        const match = /Sent \d+ bytes (\d+) pkt \(dropped (\d+)/.exec(out);
        assert.ok(match, `no qdisc statistics:\n${out}`);
        return Number(match[1]) + Number(match[2]);
      },
    };
  }
  for (const [ns, dev] of ends) {
    const ipt = (...args: string[]) => runOk(["ip", "netns", "exec", ns, "iptables-legacy", ...args]);
    await ipt("-F", "OUTPUT");
    await ipt("-F", "INPUT");
    await ipt("-Z");
    // OUTPUT only counts every UDP datagram leaving the NIC; INPUT drops at random on arrival
    // (a drop in OUTPUT would fail the sender's send() with EPERM, which is not what a lossy
    // network does).
    await ipt("-A", "OUTPUT", "-o", dev, "-p", "udp");
    // The negotiation stays out of the loss: atftp aborts on a repeated OACK ("unexpected OACK",
    // its own limit, also against atftpd), which a lost ACK 0 causes. The test is about the data
    // phase. u32: the first 4 bytes of the UDP payload (IP header length + 8).
    await ipt("-A", "INPUT", "-i", dev, "-p", "udp", "-m", "u32", "--u32", "0>>22&0x3C@8=0x00040000", "-j", "ACCEPT");
    await ipt("-A", "INPUT", "-i", dev, "-p", "udp", "-m", "u32", "--u32", "0>>22&0x3C@8>>16=6", "-j", "ACCEPT");
    await ipt(
      "-A",
      "INPUT",
      "-i",
      dev,
      "-p",
      "udp",
      "-m",
      "statistic",
      "--mode",
      "random",
      "--probability",
      String(percent / 100),
      "-j",
      "DROP",
    );
  }
  return {
    async serverDatagrams() {
      const out = (
        await runOk(["ip", "netns", "exec", lab.serverNs, "iptables-legacy", "-L", "OUTPUT", "-v", "-x", "-n"])
      ).stdout;
      const counter = out.split("\n").find((line) => /^\s*\d+\s+\d+\s+(udp|17)\s/.test(line));
      assert.ok(counter, `no iptables counter:\n${out}`);
      return Number(counter.trim().split(/\s+/)[0]);
    },
  };
}

labSuite("TFTP: windowed transfers recover from loss (tc netem, EDK2-like client and atftp)", ["atftp", "tc"], () => {
  let lab: VethLab | undefined;
  let scratch: string | undefined;
  let image: LabImage | undefined;
  let appliance: Appliance | undefined;
  let netem = false;

  before(async () => {
    scratch = await makeScratchDir("m3a");
    lab = await vethLabUp("m3a", { staticClient: true });
    netem = await netemWorks(lab.serverNs, lab.serverIf);
    if (!netem) {
      const iptables = await runInNs(lab.serverNs, ["iptables-legacy", "-L", "OUTPUT", "-n"], { timeoutMs: 10_000 });
      assert.equal(
        iptables.code,
        0,
        `neither tc netem nor iptables-legacy (statistic match) works here: ${iptables.stderr}`,
      );
    }
    image = await writeImage(scratch, FILE_BYTES);
    const inventoryDir = await writeInventory(scratch, image, [
      {
        name: "lab-loss",
        leases: [{ mac: "02:4d:4d:00:03:0a", ipv4: lab.clientIp!, subnetMask: "255.255.0.0", gateway: lab.serverIp }],
      },
    ]);
    appliance = await Appliance.start(
      { ns: lab.serverNs, bindAddress: lab.serverIp, inventoryDir, logLevel: "warn", httpPort: 8883, healthPort: 8084 },
      scratch,
    );
  });

  after(async () => {
    await appliance?.stop();
    await vethLabDown(lab);
    await removeDir(scratch);
  });

  async function fetch(client: "edk2" | "atftp", windowsize: number): Promise<void> {
    assert.ok(lab && scratch && image && appliance);
    const port = String(appliance.tftpPort);
    let detail: string;
    let ok: boolean;
    if (client === "edk2") {
      const result = await runInNs(
        lab.clientNs,
        [
          process.execPath,
          CLIENT_CLI,
          "--host",
          lab.serverIp,
          "--port",
          port,
          "--file",
          image.bigFile,
          "--blksize",
          String(BLKSIZE),
          "--windowsize",
          String(windowsize),
          "--tsize",
          "--edk2",
          "--strict-source",
          "--timeout-ms",
          "1000",
        ],
        { timeoutMs: 150_000 },
      );
      detail = `${result.stdout}${result.stderr}`;
      const parsed = JSON.parse(result.stdout.trim().split("\n").pop() || "{}") as {
        outcome?: string;
        sha256?: string;
        size?: number;
      };
      ok = parsed.outcome === "ok" && parsed.sha256 === image.bigSha256 && parsed.size === image.bigSize;
    } else {
      const out = path.join(scratch, `atftp-${windowsize}.out`);
      const result = await runInNs(
        lab.clientNs,
        [
          "atftp",
          "--get",
          "-r",
          image.bigFile,
          "-l",
          out,
          "--tftp-timeout",
          "1",
          "--option",
          `blksize ${BLKSIZE}`,
          "--option",
          `windowsize ${windowsize}`,
          lab.serverIp,
          port,
        ],
        { timeoutMs: 150_000 },
      );
      detail = `code=${result.code} ${result.stdout}${result.stderr}`;
      ok =
        result.code === 0 &&
        existsSync(out) &&
        statSync(out).size === image.bigSize &&
        (await sha256File(out)) === image.bigSha256;
      await rm(out, { force: true });
    }
    assert.ok(ok, `${client} did not get a byte-identical copy: ${detail}\n${appliance.process.tail()}`);
  }

  for (const loss of [1, 5]) {
    for (const windowsize of [4, 8, 16]) {
      // atftp only at 1 %: its client answers a run of old blocks with one "extra ACK" and then
      // ignores them, so when that ACK is lost it waits forever for the server (atftpd as well,
      // see bench/tftp-loss.sh); at 5 % that happens in most transfers.
      for (const client of loss === 1 ? (["edk2", "atftp"] as const) : (["edk2"] as const)) {
        it(`${loss} % loss, windowsize ${windowsize}, ${client === "edk2" ? "EDK2-like client" : "atftp"}: byte-identical, DATA near the minimum`, async (t) => {
          assert.ok(lab);
          let injected = await setLoss(lab, loss, netem);
          let started = Date.now();
          try {
            await fetch(client, windowsize);
          } catch (err) {
            // atftp's own livelock (above): it ignores a run of blocks after one "extra ACK"; when
            // that ACK is lost it never ACKs again and the server ends the session. Seen about once
            // in ten CI runs at 1 %; one more transfer, with fresh counters, is the proof then.
            if (client !== "atftp" || !/no acknowledgement from the client/.test(String(err))) throw err;
            t.diagnostic("atftp stopped acknowledging after a lost extra ACK (its limit); one more transfer");
            injected = await setLoss(lab, loss, netem);
            started = Date.now();
            await fetch(client, windowsize);
          }
          const sent = await injected.serverDatagrams();
          const bound = dataBound(loss, windowsize);
          t.diagnostic(
            `DATA ${sent} (minimum ${MIN_DATA}, ratio ${(sent / MIN_DATA).toFixed(3)}, bound ${bound}), ${Date.now() - started} ms`,
          );
          assert.ok(sent <= bound, `server sent ${sent} datagrams, bound ${bound} (minimum ${MIN_DATA})`);
          if (loss === 1) {
            // No full-timeout stalls: before, every loss at a window's tail waited 1 s (27-43 s
            // for this file at 1 %); now a probe or the client's repeated ACK restarts it at once.
            const ms = Date.now() - started;
            assert.ok(ms < 15_000, `took ${ms} ms`);
          }
        });
      }
    }
  }
});
