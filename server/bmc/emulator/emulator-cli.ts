import { readFile } from "node:fs/promises";
import { persistentCertificate, selfSignedCertificate } from "./certificate.js";
import { MemoryPower, type PowerBackend } from "./power.js";
import { QemuPower } from "./qemu-power.js";
import { EmulatedBmc } from "./redfish-service.js";

export const EMULATOR_USAGE = `metalman bmc-emulator: Redfish BMCs for tests and demos (HTTPS, self-signed certificate)

Usage:
  metalman bmc-emulator [flags]

Flags:
  --listen ADDR          address to listen on (default 127.0.0.1)
  --port N               port of the first BMC; BMC i listens on N+i (default 8443; 0 = any free port)
  --count N              VM-less BMCs to start (default 1): power state only
  --name-prefix P        BMC names P01, P02, ... (default node-)
  --username U           (default admin)
  --password-file F      password (first line of F); else $METALMAN_BMC_PASSWORD; else "admin"
  --tls-dir DIR          keep the certificate (cert.pem, key.pem 0600) in DIR across restarts, so a
                         Machine's pinned fingerprint stays valid (default: a fresh one per start)
  --power-off            VM-less BMCs start Off (default On)
  --no-once              refuse BootSourceOverrideEnabled=Once (like BMCs that only know Continuous)
  --require-if-match     PATCH without If-Match answers 428 (iLO/XCC behaviour)
  --config FILE          JSON {"bmcs":[{"name","port","qemu":{"args":[...],"qmpSocket":"..."}}]}:
                         BMCs backed by qemu VMs over QMP (power = the qemu process; a one-time
                         PXE override restarts qemu with -boot once=n)

Prints one JSON line per BMC: {"name","url","fingerprint"} (the fingerprint is what
status.redfish.certFingerprint will pin), then serves until SIGINT/SIGTERM.
`;

export interface EmulatorConfigFile {
  bmcs: Array<{
    name: string;
    port?: number;
    systemId?: string;
    qemu?: { qemu?: string; args: string[]; qmpSocket: string };
  }>;
}

export interface RunningEmulators {
  bmcs: Array<{ bmc: EmulatedBmc; url: string }>;
  fingerprint: string;
  close(): Promise<void>;
}

export interface EmulatorFlags {
  listen: string;
  port: number;
  count: number;
  namePrefix: string;
  username: string;
  password: string;
  onceAllowed: boolean;
  requireIfMatch: boolean;
  tlsDir?: string;
  startOff: boolean;
  config?: EmulatorConfigFile;
}

/** Parses flags; `env` and files are read here because the app passes them in (no global reads). */
export async function parseEmulatorArgs(argv: string[], env: NodeJS.ProcessEnv): Promise<EmulatorFlags | "help"> {
  const flags: EmulatorFlags = {
    listen: "127.0.0.1",
    port: 8443,
    count: 1,
    namePrefix: "node-",
    username: "admin",
    password: env.METALMAN_BMC_PASSWORD ?? "admin",
    onceAllowed: true,
    requireIfMatch: false,
    startOff: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    const int = (min: number, max: number) => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${arg} must be an integer ${min}..${max}`);
      return n;
    };
    switch (arg) {
      case "-h":
      case "--help":
        return "help";
      case "--listen":
        flags.listen = value();
        break;
      case "--port":
        flags.port = int(0, 65535);
        break;
      case "--count":
        flags.count = int(1, 1000);
        break;
      case "--name-prefix":
        flags.namePrefix = value();
        break;
      case "--username":
        flags.username = value();
        break;
      case "--password-file":
        flags.password = (await readFile(value(), "utf8")).split("\n")[0]!;
        break;
      case "--tls-dir":
        flags.tlsDir = value();
        break;
      case "--power-off":
        flags.startOff = true;
        break;
      case "--no-once":
        flags.onceAllowed = false;
        break;
      case "--require-if-match":
        flags.requireIfMatch = true;
        break;
      case "--config":
        flags.config = JSON.parse(await readFile(value(), "utf8")) as EmulatorConfigFile;
        break;
      default:
        throw new Error(`unknown flag ${arg}`);
    }
  }
  return flags;
}

/** Starts every BMC (all share one fresh certificate); on a failed start the started ones are closed. */
export async function startEmulators(flags: EmulatorFlags): Promise<RunningEmulators> {
  const tls = flags.tlsDir
    ? await persistentCertificate(flags.tlsDir, [flags.listen])
    : await selfSignedCertificate([flags.listen]);
  const specs =
    flags.config?.bmcs ??
    Array.from({ length: flags.count }, (_, i) => ({
      name: `${flags.namePrefix}${String(i + 1).padStart(2, "0")}`,
      port: flags.port === 0 ? 0 : flags.port + i,
    }));
  const started: Array<{ bmc: EmulatedBmc; url: string }> = [];
  const close = async () => {
    await Promise.all(started.map(({ bmc }) => bmc.close()));
  };
  try {
    for (const [i, spec] of specs.entries()) {
      const power: PowerBackend =
        "qemu" in spec && spec.qemu ? new QemuPower(spec.qemu) : new MemoryPower(flags.startOff ? "Off" : "On");
      const bmc = new EmulatedBmc({
        name: spec.name,
        username: flags.username,
        password: flags.password,
        power,
        systemId: "systemId" in spec ? spec.systemId : undefined,
        quirks: { onceAllowed: flags.onceAllowed, requireIfMatch: flags.requireIfMatch },
      });
      const port = await bmc.listen(tls, flags.listen, spec.port ?? (flags.port === 0 ? 0 : flags.port + i));
      const host = flags.listen.includes(":") ? `[${flags.listen}]` : flags.listen;
      started.push({ bmc, url: `https://${host}:${port}` });
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { bmcs: started, fingerprint: tls.fingerprint, close };
}
