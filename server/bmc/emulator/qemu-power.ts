import { type ChildProcess, spawn } from "node:child_process";
import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { EmulatedPowerState, PowerBackend } from "./power.js";

export interface QemuPowerOptions {
  /** The qemu binary (default qemu-system-x86_64). */
  qemu?: string;
  /** Everything but QMP, `-S` and `-boot`: machine, firmware, disks, NICs, serial. */
  args: string[];
  /** Unix socket path for QMP (inside a folder the caller owns and removes). */
  qmpSocket: string;
  /** Called with each qemu process started (for logs); its PID is what the caller may stop. */
  onSpawn?: (child: ChildProcess, args: string[]) => void;
}

/**
 * A qemu VM as the server behind an emulated BMC. Power on = a qemu process; power off =
 * QMP `quit` (or SIGKILL of that PID if QMP does not answer). A start that must boot from
 * the network restarts qemu with `-boot once=n`: qemu then boots the NIC first and returns to
 * the normal order at the next reset, which is exactly a one-time Redfish override. qemu
 * starts paused (`-S`) and is resumed with QMP `cont` once QMP is connected, so no early boot
 * output is missed. GracefulShutdown is QMP `system_powerdown` (ACPI), reset `system_reset`.
 */
export class QemuPower implements PowerBackend {
  readonly #options: QemuPowerOptions;
  #child: ChildProcess | undefined;
  #qmp: Qmp | undefined;
  #shuttingDown = false;
  /** Boot source of every start, for tests: `pxe` or `disk`. */
  readonly boots: Array<"pxe" | "disk"> = [];

  constructor(options: QemuPowerOptions) {
    this.#options = options;
  }

  get pid(): number | undefined {
    return this.#running() ? this.#child?.pid : undefined;
  }

  state(): EmulatedPowerState {
    if (!this.#running()) return "Off";
    return this.#shuttingDown ? "PoweringOff" : "On";
  }

  async on(pxe: boolean): Promise<void> {
    if (this.#running()) return;
    const args = ["-S", "-qmp", `unix:${this.#options.qmpSocket},server=on,wait=off`, ...this.#options.args];
    if (pxe) args.push("-boot", "once=n");
    const child = spawn(this.#options.qemu ?? "qemu-system-x86_64", args, { stdio: ["ignore", "ignore", "pipe"] });
    this.#child = child;
    this.#shuttingDown = false;
    child.once("exit", () => {
      if (this.#child === child) {
        this.#qmp?.close();
        this.#qmp = undefined;
      }
    });
    this.#options.onSpawn?.(child, args);
    this.#qmp = await Qmp.connect(this.#options.qmpSocket, () => this.#running());
    await this.#qmp.execute("cont");
    this.boots.push(pxe ? "pxe" : "disk");
  }

  async forceOff(): Promise<void> {
    const child = this.#child;
    if (!child || !this.#running()) return;
    try {
      await this.#qmp?.execute("quit");
    } catch {
      // QMP gone: the process is stopped by its PID below.
    }
    if (!(await exited(child, 5000))) {
      child.kill("SIGKILL");
      await exited(child, 5000);
    }
  }

  async gracefulShutdown(): Promise<void> {
    if (!this.#running()) return;
    this.#shuttingDown = true;
    await this.#qmp?.execute("system_powerdown");
  }

  async restart(pxe: boolean): Promise<void> {
    if (pxe || !this.#running()) {
      // The boot order of a running qemu cannot be changed for one boot: start it again.
      await this.forceOff();
      await this.on(pxe);
      return;
    }
    await this.#qmp?.execute("system_reset");
    this.boots.push("disk");
  }

  async close(): Promise<void> {
    await this.forceOff();
  }

  #running(): boolean {
    const child = this.#child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }
}

async function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return Promise.race([
    new Promise<boolean>((resolve) => child.once("exit", () => resolve(true))),
    sleep(ms).then(() => false),
  ]);
}

/** The least of QMP a BMC needs: the capabilities handshake, then one command at a time. */
class Qmp {
  #buffer = "";
  #waiters: Array<(reply: Record<string, unknown>) => void> = [];
  #chain: Promise<unknown> = Promise.resolve();

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.#buffer += chunk;
      for (let nl = this.#buffer.indexOf("\n"); nl >= 0; nl = this.#buffer.indexOf("\n")) {
        const line = this.#buffer.slice(0, nl).trim();
        this.#buffer = this.#buffer.slice(nl + 1);
        if (line === "") continue;
        let message: Record<string, unknown>;
        try {
          message = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        // Replies carry `return` or `error`; greetings and events are not waited for.
        if ("return" in message || "error" in message) this.#waiters.shift()?.(message);
      }
    });
    socket.on("error", () => this.close());
  }

  /** Connects (the socket appears shortly after qemu starts), then negotiates capabilities. */
  static async connect(path: string, alive: () => boolean): Promise<Qmp> {
    for (let i = 0; i < 100; i++) {
      if (!alive()) throw new Error("qemu exited before QMP was up");
      const socket = await new Promise<Socket | undefined>((resolve) => {
        const s = connect(path);
        s.once("connect", () => resolve(s));
        s.once("error", () => resolve(undefined));
      });
      if (socket) {
        const qmp = new Qmp(socket);
        await qmp.execute("qmp_capabilities");
        return qmp;
      }
      await sleep(50);
    }
    throw new Error(`QMP socket ${path} did not come up`);
  }

  execute(command: string): Promise<Record<string, unknown>> {
    const run = async () => {
      const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`QMP ${command}: no reply`)), 5000);
        this.#waiters.push((r) => {
          clearTimeout(timer);
          resolve(r);
        });
      });
      this.socket.write(`${JSON.stringify({ execute: command })}\n`);
      const answer = await reply;
      if ("error" in answer) throw new Error(`QMP ${command}: ${JSON.stringify(answer.error)}`);
      return answer;
    };
    const next = this.#chain.then(run, run);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  close(): void {
    this.socket.destroy();
    for (const w of this.#waiters.splice(0)) w({ error: { desc: "QMP closed" } });
  }
}
