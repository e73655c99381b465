import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { MachineStateStore, parseState } from "../inventory/machine-state-store.js";
import { awaitResult, type OperatorRequest, submitRequest } from "../inventory/operator-requests.js";
import type { MachineStatus } from "../inventory/types.js";
import { type CliOut, parseCli, waitMsOf } from "../util/cli-args.js";

const OPTIONS = {
  wait: { type: "string" },
  "as-installed": { type: "boolean" },
} as const;

export const STATE_USAGE = `metalman state: inspect and repair metalman's own Machine state

Usage:
  metalman state list                          states, quarantined Machines, archived (deleted) Machines
  metalman state accept-reset MACHINE [--as-installed]
        lift a quarantine by accepting that the Machine's status is lost: it starts with an empty
        status (a pending repave is then offered again); --as-installed records the requested
        reboot and repave counters as done, so nothing is pending
  metalman state restore MACHINE FILE          lift a quarantine with a repaired state file (for example the
                                               .corrupt copy, fixed by hand): its status, uid and pins come back
  metalman state adopt MACHINE UID             give a re-created Machine the archived state (pins, counters,
                                               uid) of the deleted Machine UID (see "list")

Flags:
  --state-dir DIR   the serve-pxe --state-dir (default $HOME/.unbounded/metalman/state)
  --wait SECONDS    how long to wait for a running serve-pxe to apply the request (default 10);
                    without one it is applied at its next start, before it serves anyone
`;

type Out = CliOut;

export async function runStateCli(argv: string[], env: NodeJS.ProcessEnv, out: Out): Promise<number> {
  const parsed = parseCli("state", STATE_USAGE, OPTIONS, argv, env, out);
  if (typeof parsed === "number") return parsed;
  const { values, command, args, stateDir } = parsed;
  const waitMs = waitMsOf(values.wait);
  const need = (n: number, what: string) => {
    if (args.length !== n) throw new Error(`${command} needs ${what}`);
  };
  try {
    switch (command) {
      case "list":
        out.stdout(await listStates(stateDir));
        return 0;
      case "accept-reset":
        need(1, "MACHINE");
        return submit(stateDir, waitMs, out, {
          action: "accept-reset",
          machine: args[0]!,
          asInstalled: values["as-installed"] ?? false,
        });
      case "restore": {
        need(2, "MACHINE FILE");
        return submit(stateDir, waitMs, out, await restoreRequest(args[0]!, args[1]!));
      }
      case "adopt":
        need(2, "MACHINE UID");
        return submit(stateDir, waitMs, out, { action: "adopt", machine: args[0]!, uid: args[1]! });
      default:
        out.stderr(`metalman state: unknown command "${command}"\n\n${STATE_USAGE}`);
        return 2;
    }
  } catch (err) {
    out.stderr(`metalman state ${command}: ${(err as Error).message}\n`);
    return 2;
  }
}

async function submit(stateDir: string, waitMs: number, out: Out, request: OperatorRequest): Promise<number> {
  const id = await submitRequest(stateDir, request);
  const result = await awaitResult(stateDir, id, waitMs);
  if (result === undefined) {
    out.stdout(`request ${id} queued in ${stateDir}/requests; metalman serve-pxe applies it at its next start\n`);
    return 3;
  }
  (result.ok ? out.stdout : out.stderr)(`${result.message}\n`);
  return result.ok ? 0 : 1;
}

/** The repaired file may be a whole state file (as metalman writes them) or just `{"status": {...}}`. */
async function restoreRequest(machine: string, file: string): Promise<OperatorRequest> {
  const value = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
  const state = parseState(value);
  if (state) {
    if (state.name !== machine) throw new Error(`${file} holds the state of ${state.name}, not ${machine}`);
    return {
      action: "restore",
      machine,
      status: state.status,
      uid: state.uid,
      creationTimestamp: state.creationTimestamp,
    };
  }
  const status = value.status;
  if (typeof status !== "object" || status === null || Array.isArray(status)) {
    throw new Error(`${file} is neither a metalman state file nor {"status": {...}}`);
  }
  return { action: "restore", machine, status: status as MachineStatus };
}

/** Read-only: never moves or rewrites a file (serve-pxe does that). */
async function listStates(stateDir: string): Promise<string> {
  const store = new MachineStateStore(stateDir, undefined as never);
  const lines: string[] = [];
  let names: string[] = [];
  try {
    names = (await readdir(store.dir)).sort();
  } catch {
    // No state yet.
  }
  for (const file of names) {
    if (file.startsWith(".")) continue;
    const full = path.join(store.dir, file);
    if (/\.json\.corrupt(\.\d+)?$/.test(file)) {
      lines.push(`corrupt      ${full}  (kept for the operator)`);
      continue;
    }
    if (!file.endsWith(".json")) continue;
    try {
      const state = parseState(JSON.parse(await readFile(full, "utf8")));
      if (!state) throw new Error("not a state file");
      const flag = state.quarantine ? "QUARANTINED" : "ok";
      lines.push(`${flag.padEnd(12)} ${state.name}  uid=${state.uid} generation=${state.generation}`);
      if (state.quarantine) lines.push(`             ${state.quarantine.message}`);
    } catch (err) {
      lines.push(`unreadable   ${full}: ${(err as Error).message} (serve-pxe quarantines it at start)`);
    }
  }
  for (const archived of await store.loadArchive()) {
    lines.push(
      `archived     ${archived.name}  uid=${archived.uid} deleted=${archived.deletedAt ?? "?"}  (metalman state adopt ${archived.name} ${archived.uid})`,
    );
  }
  return lines.length === 0 ? `no machine state in ${stateDir}\n` : `${lines.join("\n")}\n`;
}
