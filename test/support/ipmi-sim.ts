/**
 * OpenIPMI's `ipmi_sim` (Debian openipmi) as the BMC of a test: an IPMI 2.0 LAN channel on
 * loopback (or a namespace address) with one admin user. Two ways to stand behind it:
 *  - `chassis`: a chassis_control program (ipmi_sim runs it for `get/set power|reset|boot`),
 *    here a shell script keeping power and boot device in files: a VM-less server;
 *  - `vm`: the VM serial interface (codec VM) that qemu's `-device ipmi-bmc-extern` connects
 *    to, and `startcmd`, which ipmi_sim runs on "power on" (the VM's power is its process).
 * Started with argv only (ipmi_sim reads lan.conf), stopped by PID.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export interface IpmiSimOptions {
  dir: string;
  address: string;
  port: number;
  username: string;
  password: string;
  chassis?: true;
  vm?: { serialPort: number; startcmd: string; poweroffWaitSeconds?: number; killWaitSeconds?: number };
  /** How ipmi_sim is started (e.g. `["ip","netns","exec",NS]` before it). */
  prefix?: string[];
}

const CHASSIS_SCRIPT = `#!/bin/sh
# ipmi_sim chassis_control: "get NAME..." prints NAME:VALUE lines; "set NAME VALUE..." stores them.
d="$(dirname "$0")/chassis"
mkdir -p "$d"
verb=$1; shift
case "$verb" in
get) for p in "$@"; do
       case $p in
       boot) echo "boot:$(cat "$d/boot" 2>/dev/null || echo default)";;
       power) echo "power:$(cat "$d/power" 2>/dev/null || echo 0)";;
       esac
     done;;
set) while [ $# -gt 1 ]; do
       case $1 in
       reset) echo reset >> "$d/log"; echo 1 > "$d/power";;
       shutdown) echo shutdown >> "$d/log"; echo 0 > "$d/power";;
       *) echo "$2" > "$d/$1"; echo "$1 $2" >> "$d/log";;
       esac
       shift 2
     done;;
esac
exit 0
`;

export class IpmiSim {
  readonly child: ChildProcess;
  readonly output: string[] = [];

  private constructor(
    readonly o: IpmiSimOptions,
    child: ChildProcess,
  ) {
    this.child = child;
    child.stdout?.on("data", (b: Buffer) => this.output.push(b.toString()));
    child.stderr?.on("data", (b: Buffer) => this.output.push(b.toString()));
  }

  static async start(o: IpmiSimOptions): Promise<IpmiSim> {
    mkdirSync(path.join(o.dir, "state"), { recursive: true });
    const lines = [
      `name "bm${o.port}"`,
      "set_working_mc 0x20",
      "  startlan 1",
      `    addr ${o.address} ${o.port}`,
      "    priv_limit admin",
      ...["callback", "user", "operator", "admin"].map((p) => `    allowed_auths_${p} md5`),
      "    guid a123456789abcdefa123456789abcdef",
      "  endlan",
    ];
    if (o.chassis) {
      const script = path.join(o.dir, "chassis-control.sh");
      writeFileSync(script, CHASSIS_SCRIPT);
      chmodSync(script, 0o700);
      lines.push(`  chassis_control "${script}"`);
    }
    if (o.vm) {
      lines.push(`  serial 15 ${o.address} ${o.vm.serialPort} codec VM`);
      lines.push(`  startcmd "${o.vm.startcmd}"`, "  startnow false");
      lines.push(`  poweroff_wait ${o.vm.poweroffWaitSeconds ?? 10}`, `  kill_wait ${o.vm.killWaitSeconds ?? 5}`);
    }
    // User 1 is the anonymous one (disabled); user 2 the admin the tests log in as.
    lines.push(`  user 1 false "" "" user 10 md5`);
    lines.push(`  user 2 true "${o.username}" "${o.password}" admin 10 md5`);
    const conf = path.join(o.dir, "lan.conf");
    writeFileSync(conf, `${lines.join("\n")}\n`, { mode: 0o600 });
    const emu = path.join(o.dir, "sim.emu");
    writeFileSync(
      emu,
      [
        "mc_setbmc 0x20",
        "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr",
        "sel_enable 0x20 1000 0x0a",
        "mc_enable 0x20",
        "",
      ].join("\n"),
    );
    const [cmd, ...pre] = [...(o.prefix ?? []), "ipmi_sim"];
    const child = spawn(cmd!, [...pre, "-c", conf, "-f", emu, "-s", path.join(o.dir, "state"), "-n"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const sim = new IpmiSim(o, child);
    // Ready once ipmitool gets an answer (bounded).
    for (let i = 0; i < 50; i++) {
      if (child.exitCode !== null) throw new Error(`ipmi_sim exited: ${sim.output.join("")}`);
      if (sim.ipmitool(["chassis", "power", "status"]).status === 0) return sim;
      await sleep(100);
    }
    await sim.stop();
    throw new Error(`ipmi_sim did not answer on ${o.address}:${o.port}: ${sim.output.join("")}`);
  }

  /** The real client, the way an operator types it (password through -E, as the driver does). */
  ipmitool(args: string[]): { status: number | null; stdout: string; stderr: string } {
    const [cmd, ...pre] = [...(this.o.prefix ?? []), "ipmitool"];
    const r = spawnSync(
      cmd!,
      [
        ...pre,
        ...["-I", "lanplus", "-C", "3", "-H", this.o.address, "-p", String(this.o.port), "-U", this.o.username, "-E"],
        ...["-N", "1", "-R", "1", ...args],
      ],
      { env: { ...process.env, IPMI_PASSWORD: this.o.password }, encoding: "utf8", timeout: 10_000 },
    );
    return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  }

  /** The chassis_control state (`power`, `boot`, `log`), chassis mode only. */
  chassis(name: "power" | "boot" | "log"): string {
    try {
      return readFileSync(path.join(this.o.dir, "chassis", name), "utf8").trim();
    } catch {
      return "";
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    const done = await Promise.race([
      exited.then(() => true),
      sleep(3000, undefined, { ref: false }).then(() => false),
    ]);
    if (!done) {
      this.child.kill("SIGKILL");
      await exited;
    }
  }
}
