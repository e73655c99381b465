/**
 * The DHCP client run the issue 5 lab tests need beyond harness.ts: ISC dhclient left running
 * (`-d`) with a hook script that configures the address, so it reaches RENEWING and unicasts its REQUEST to the server id. Processes are
 * stopped by PID (NsProcess); everything lives in the caller's scratch folder.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { NsProcess, parseEnvDump, runInNs } from "./harness.js";

/**
 * ISC dhclient in the foreground. The hook configures the bound address and default route (so
 * RENEWING unicasts can leave the namespace) and appends each `$reason` to a file, with the
 * environment of RENEW/REBIND kept for assertions. `conf` lines go into dhclient.conf.
 */
export class DhclientRun {
  readonly process: NsProcess;
  readonly #dir: string;
  readonly #ns: string;
  readonly #argv: string[];

  private constructor(process: NsProcess, dir: string, ns: string, argv: string[]) {
    this.process = process;
    this.#dir = dir;
    this.#ns = ns;
    this.#argv = argv;
  }

  static async start(ns: string, dev: string, scratchDir: string, conf: string[]): Promise<DhclientRun> {
    const dir = await mkdtemp(path.join(scratchDir, "dhclient-"));
    const script = path.join(dir, "hook.sh");
    await writeFile(
      script,
      [
        "#!/bin/sh",
        `echo "$reason" >> "${dir}/reasons"`,
        'case "$reason" in',
        "  BOUND|REBOOT)",
        '    ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"',
        "    set -- $new_routers",
        '    [ -n "$1" ] && ip route replace default via "$1"',
        "    ;;",
        `  RENEW|REBIND) env > "${dir}/env.$reason" ;;`,
        "esac",
        "exit 0",
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    const confFile = path.join(dir, "dhclient.conf");
    await writeFile(confFile, `${["timeout 20;", "retry 1;", "initial-interval 1;", ...conf].join("\n")}\n`);
    const argv = ["dhclient", "-4", "-d", "-v", "-cf", confFile, "-sf", script, "-lf", path.join(dir, "leases")];
    argv.push("-pf", path.join(dir, "dhclient.pid"), dev);
    return new DhclientRun(new NsProcess(ns, argv), dir, ns, argv);
  }

  /**
   * `dhclient -r` with the same files: it stops the running dhclient (by its pid file) and
   * unicasts a DHCPRELEASE to the server id from the bound address (RFC 2131 §4.4.6).
   */
  async release(): Promise<void> {
    const argv = this.#argv.filter((arg) => arg !== "-d");
    argv.splice(argv.indexOf("-v"), 0, "-r");
    await runInNs(this.#ns, argv, { timeoutMs: 15_000 });
    await this.process.waitExit(5_000);
  }

  async reasons(): Promise<string[]> {
    const file = path.join(this.#dir, "reasons");
    return existsSync(file) ? (await readFile(file, "utf8")).split("\n").filter((l) => l !== "") : [];
  }

  /** Wait (bounded) until the hook ran with `reason`; true when it did. */
  async waitReason(reason: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ((await this.reasons()).includes(reason)) return true;
      if (!this.process.running) return false;
      await sleep(200);
    }
    return false;
  }

  async envOf(reason: string): Promise<Record<string, string>> {
    const file = path.join(this.#dir, `env.${reason}`);
    return existsSync(file) ? parseEnvDump(await readFile(file, "utf8")) : {};
  }

  async stop(): Promise<void> {
    await this.process.stop(3_000);
  }
}
