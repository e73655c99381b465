import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { isCidr } from "./cidr.js";
import { TUNNEL_NAME, type TunnelDriver } from "./tunnel-driver.js";
import { parseDump, type ShownInterface } from "./wg-text.js";

const run = promisify(execFile);

export interface WgCommandDriverOptions {
  /** Run every command inside this network namespace (`ip netns exec`): tests only. */
  netns?: string;
  /** Bound on one command (default 10 s). */
  timeoutMs?: number;
  /** The userspace implementation when the kernel has no WireGuard (default `wireguard-go`). */
  userspaceCommand?: string;
}

/**
 * The TunnelDriver on Debian's `wg` and `ip` (wireguard-tools, iproute2). Interfaces come from
 * the kernel module where it exists, else from `wireguard-go` (many of our jump boxes and these
 * test machines have no module but have /dev/net/tun). The private key travels on stdin only.
 */
export class WgCommandDriver implements TunnelDriver {
  readonly #prefix: string[];
  readonly #timeoutMs: number;
  readonly #userspace: string;

  constructor(options: WgCommandDriverOptions = {}) {
    this.#prefix = options.netns === undefined ? [] : ["ip", "netns", "exec", options.netns];
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#userspace = options.userspaceCommand ?? "wireguard-go";
  }

  async listTunnels(): Promise<string[]> {
    const { stdout } = await this.#run(["ip", "-j", "-d", "link", "show"]);
    const links = JSON.parse(stdout) as { ifname?: string; linkinfo?: { info_kind?: string } }[];
    // wireguard-go's interfaces are tun devices; the module's are kind "wireguard".
    return links
      .filter((l) => l.ifname !== undefined && TUNNEL_NAME.test(l.ifname))
      .filter((l) => l.linkinfo?.info_kind === "wireguard" || l.linkinfo?.info_kind === "tun")
      .map((l) => l.ifname as string)
      .sort();
  }

  async show(name: string): Promise<ShownInterface | undefined> {
    checkName(name);
    try {
      // The dump's first line holds the private key: parseDump reads past it, nothing logs stdout.
      const { stdout } = await this.#run(["wg", "show", name, "dump"]);
      return parseDump(stdout);
    } catch {
      return undefined;
    }
  }

  async ensureInterface(name: string, mtu: number): Promise<void> {
    checkName(name);
    if ((await this.listTunnels()).includes(name)) {
      await this.#run(["ip", "link", "set", "dev", name, "mtu", String(mtu), "up"]);
      return;
    }
    try {
      await this.#run(["ip", "link", "add", "dev", name, "type", "wireguard"]);
    } catch {
      // No kernel module: wireguard-go daemonises and leaves the tun device behind. It refuses to
      // start on kernels that could have the module unless told that userspace is wanted.
      await this.#run([this.#userspace, name], { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1" });
    }
    await this.#run(["ip", "link", "set", "dev", name, "mtu", String(mtu), "up"]);
  }

  async setConfig(name: string, config: string): Promise<void> {
    checkName(name);
    // Node hands a child a socket, not a pipe, as stdin, and wg cannot fopen("/dev/stdin") on a
    // socket: `cat` turns it into a real pipe. No file or argv ever holds the private key.
    await this.#runWithStdin(["sh", "-c", 'cat | exec wg setconf "$1" /dev/stdin', "sh", name], config);
  }

  async setRoutes(name: string, cidrs: readonly string[], source?: string): Promise<void> {
    checkName(name);
    for (const cidr of cidrs) if (!isCidr(cidr)) throw new Error(`overlay: not a CIDR: ${JSON.stringify(cidr)}`);
    const want = new Set(cidrs);
    for (const family of ["-4", "-6"] as const) {
      const { stdout } = await this.#run(["ip", "-j", family, "route", "show", "dev", name, "proto", "static"]);
      const routes = JSON.parse(stdout || "[]") as { dst?: string }[];
      for (const route of routes) {
        const dst = route.dst === undefined ? undefined : withPrefix(route.dst, family);
        if (dst !== undefined && !want.has(dst)) await this.#run(["ip", family, "route", "del", dst, "dev", name]);
      }
    }
    for (const cidr of cidrs) {
      const family = cidr.includes(":") ? "-6" : "-4";
      const src = source !== undefined && source.includes(":") === (family === "-6") ? ["src", source] : [];
      await this.#run(["ip", family, "route", "replace", cidr, "dev", name, "proto", "static", ...src]);
    }
  }

  async removeInterface(name: string): Promise<void> {
    checkName(name);
    try {
      await this.#run(["ip", "link", "del", "dev", name]);
    } catch (err) {
      if (!(await this.listTunnels()).includes(name)) return;
      throw err;
    }
  }

  async #run(argv: string[], env?: NodeJS.ProcessEnv): Promise<{ stdout: string }> {
    const [file, ...args] = [...this.#prefix, ...argv] as [string, ...string[]];
    try {
      const { stdout } = await run(file, args, {
        timeout: this.#timeoutMs,
        maxBuffer: 4 * 1024 * 1024,
        env: env === undefined ? process.env : { ...process.env, ...env },
      });
      return { stdout };
    } catch (err) {
      throw commandError(argv, err);
    }
  }

  #runWithStdin(argv: string[], input: string): Promise<void> {
    const [file, ...args] = [...this.#prefix, ...argv] as [string, ...string[]];
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, { stdio: ["pipe", "ignore", "pipe"], timeout: this.#timeoutMs });
      let stderr = "";
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
        if (stderr.length < 4096) stderr += chunk;
      });
      child.on("error", (err) => reject(commandError(argv, err)));
      child.on("close", (code) => {
        if (code === 0) resolve();
        else reject(new Error(`overlay: wg setconf failed (exit ${code}): ${stderr.trim()}`));
      });
      child.stdin.end(input);
    });
  }
}

function checkName(name: string): void {
  if (!TUNNEL_NAME.test(name)) throw new Error(`overlay: ${JSON.stringify(name)} is not an overlay interface name`);
}

/** `ip -j route` prints host routes without a prefix length. */
function withPrefix(dst: string, family: "-4" | "-6"): string {
  return dst.includes("/") ? dst : `${dst}/${family === "-4" ? 32 : 128}`;
}

/** The command and its stderr, never its stdin (which may hold the private key). */
function commandError(argv: readonly string[], err: unknown): Error {
  const e = err as { stderr?: string; message?: string; code?: unknown };
  const detail = (e.stderr ?? e.message ?? String(err)).toString().trim().slice(0, 500);
  return new Error(`overlay: ${argv.slice(0, 4).join(" ")} failed: ${detail}`);
}
