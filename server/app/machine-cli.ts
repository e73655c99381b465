/**
 * `metalman machine ...` and `metalman operation ...`: the management API's CLI, over the unix
 * socket of a running serve-pxe (`<state-dir>/metalman.sock`). docs/management-api.md lists
 * the commands and the exit codes.
 */

import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import type { ApiClient } from "../api/client.js";
import { runTpmCli } from "../attest/tpm-cli.js";
import { parseGoDuration } from "../config/go-duration.js";
import { type CliOut, type CliValues, parseCli } from "../util/cli-args.js";
import { apiFailure, apiSession, EXIT, OUTPUT_OPTION, table, toJson, UsageError } from "./api-cli.js";

export const MACHINE_USAGE = `metalman machine: act on Machines through a running serve-pxe

Usage:
  metalman machine list                         every Machine: phase, BMC, power, repave, operation
  metalman machine show NAME                    one Machine: status, conditions, operations
  metalman machine events NAME [--since SEQ] [--follow]
                                                its event stream (--follow: live, until Ctrl-C)
  metalman machine power on|off|cycle NAME      power through the BMC (a MachineOperation)
  metalman machine reboot NAME                  reboot through the BMC
  metalman machine repave NAME                  one-time PXE boot + power cycle: reinstall
  metalman machine repin-bmc NAME [--fingerprint SHA256]
                                                trust the BMC's certificate again: without
                                                --fingerprint the next contact pins what it sees
  metalman machine repin-tpm NAME [--ek FILE]   after a board swap: forget (or replace) the pinned TPM EK
                                                (same as metalman tpm repin; see metalman tpm --help)

Flags:
  --state-dir DIR    the serve-pxe --state-dir (default $HOME/.unbounded/metalman/state);
                     the socket is DIR/metalman.sock
  -o, --output FMT   table (default) or json
  --wait             power, reboot, repave: follow the operation and the Machine's events
                     until it finishes
  --timeout DUR      with --wait, give up waiting after DUR (Go duration, default 45m)
  --ttl SECONDS      keep the finished operation this long (default 86400)

Exit codes: 0 done, 1 refused by metalman, 2 usage, 3 metalman not running,
            4 --wait timed out, 5 the operation failed
`;

export const OPERATION_USAGE = `metalman operation: MachineOperations (spec §2.7) through a running serve-pxe

Usage:
  metalman operation list [--machine NAME]
  metalman operation show NAME
  metalman operation create -f FILE             a MachineOperation manifest (YAML or JSON)
  metalman operation create --kind KIND (--machine NAME | --selector KEY=VALUE[,...])
                            [--name NAME] [--param KEY=VALUE]... [--ttl SECONDS] [--wait]
        KIND: HostPowerOn HostPowerOff HostReboot HostReplace NodeReboot AgentUpgrade AgentReset

Flags: --state-dir DIR, -o/--output table|json, --wait, --timeout DUR (as for metalman machine)
Exit codes: as for metalman machine
`;

type Out = CliOut;

interface Operation {
  metadata: { name: string; creationTimestamp?: string; annotations?: Record<string, string> };
  spec: { machineRef?: string; machineSelector?: unknown; operationKind: string; parameters?: Record<string, string> };
  status?: {
    phase?: string;
    message?: string;
    startedAt?: string;
    completedAt?: string;
    targets?: Array<{ machineRef: string; phase: string; stage?: string; message?: string; attempts?: number }>;
  };
}

interface Created {
  operation: Operation;
  eventsSince: number;
}

interface StreamEventView {
  seq: number;
  time: string;
  step: string;
  result: string;
  reason?: string;
  detail?: Record<string, unknown>;
}

const OPTIONS = {
  ...OUTPUT_OPTION,
  wait: { type: "boolean" },
  timeout: { type: "string" },
  ttl: { type: "string" },
  fingerprint: { type: "string" },
  since: { type: "string" },
  follow: { type: "boolean" },
  machine: { type: "string" },
  kind: { type: "string" },
  selector: { type: "string" },
  name: { type: "string" },
  param: { type: "string", multiple: true },
  file: { type: "string", short: "f" },
} as const;

type Values = CliValues<typeof OPTIONS>;

interface Context {
  client: ApiClient;
  out: Out;
  json: boolean;
  values: Values;
}

/** `group` is `machine` or `operation`; resolves to the exit code. */
export async function runManagementCli(
  group: "machine" | "operation",
  argv: string[],
  env: NodeJS.ProcessEnv,
  out: Out,
): Promise<number> {
  // The TPM re-pin is the attestation room's operator action (server/attest/tpm-cli.ts, also
  // `metalman tpm repin`); it is offered here beside repin-bmc, where an operator looks for it.
  if (group === "machine" && argv[0] === "repin-tpm") return runTpmCli(["repin", ...argv.slice(1)], env, out);
  const usage = group === "machine" ? MACHINE_USAGE : OPERATION_USAGE;
  const parsed = parseCli(group, usage, OPTIONS, argv, env, out);
  if (typeof parsed === "number") return parsed;
  const { values, command, args, stateDir } = parsed;
  const session = apiSession(group, values.output, stateDir, env, out);
  if (!session) return EXIT.USAGE;
  const ctx: Context = { ...session, out, values };
  try {
    return group === "machine" ? await machine(ctx, command, args) : await operation(ctx, command, args);
  } catch (err) {
    return apiFailure(group, usage, err, out);
  }
}

function need(args: string[], count: number, what: string): void {
  if (args.length !== count) throw new UsageError(`needs ${what}`);
}

function ttlOf(values: Values): number | undefined {
  if (values.ttl === undefined) return undefined;
  const ttl = Number(values.ttl);
  if (!Number.isSafeInteger(ttl) || ttl < 0) throw new UsageError("--ttl must be a number of seconds");
  return ttl;
}

async function machine(ctx: Context, command: string, args: string[]): Promise<number> {
  const { client, out, json, values } = ctx;
  const name = (i: number) => encodeURIComponent(args[i]!);
  switch (command) {
    case "list": {
      need(args, 0, "no argument");
      const list = await client.get<{ items: Array<Record<string, unknown>> }>("/machines");
      out.stdout(json ? toJson(list) : machineTable(list.items));
      return EXIT.OK;
    }
    case "show": {
      need(args, 1, "NAME");
      const detail = await client.get<Record<string, unknown>>(`/machines/${name(0)}`);
      out.stdout(json ? toJson(detail) : machineText(detail));
      return EXIT.OK;
    }
    case "events":
      need(args, 1, "NAME");
      return events(ctx, args[0]!);
    case "power": {
      need(args, 2, "on|off|cycle NAME");
      const action = args[0]!;
      if (!["on", "off", "cycle"].includes(action)) throw new UsageError(`power ${action}: use on, off or cycle`);
      const body: Record<string, unknown> = { action };
      const ttl = ttlOf(values);
      if (ttl !== undefined) body.ttlSecondsAfterFinished = ttl;
      return acted(ctx, args[1]!, await client.post<Created>(`/machines/${name(1)}/power`, body));
    }
    case "reboot":
    case "repave": {
      need(args, 1, "NAME");
      const ttl = ttlOf(values);
      const body = ttl === undefined ? {} : { ttlSecondsAfterFinished: ttl };
      return acted(ctx, args[0]!, await client.post<Created>(`/machines/${name(0)}/${command}`, body));
    }
    case "repin-bmc": {
      need(args, 1, "NAME");
      const body = values.fingerprint === undefined ? {} : { fingerprint: values.fingerprint };
      const result = await client.post<{ machine: string; previous?: string; pinned?: string }>(
        `/machines/${name(0)}/repin-bmc`,
        body,
      );
      if (json) out.stdout(toJson(result));
      else if (result.pinned) out.stdout(`${result.machine}: BMC certificate pinned to ${result.pinned}\n`);
      else {
        out.stdout(
          `${result.machine}: BMC certificate pin cleared${result.previous ? ` (was ${result.previous})` : ""}; ` +
            "the next contact pins the certificate it sees\n",
        );
      }
      return EXIT.OK;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

async function operation(ctx: Context, command: string, args: string[]): Promise<number> {
  const { client, out, json, values } = ctx;
  switch (command) {
    case "list": {
      need(args, 0, "no argument (filter with --machine NAME)");
      const query = values.machine === undefined ? "" : `?machine=${encodeURIComponent(values.machine)}`;
      const list = await client.get<{ items: Operation[] }>(`/operations${query}`);
      out.stdout(json ? toJson(list) : operationTable(list.items));
      return EXIT.OK;
    }
    case "show": {
      need(args, 1, "NAME");
      const op = await client.get<Operation>(`/operations/${encodeURIComponent(args[0]!)}`);
      out.stdout(json ? toJson(op) : operationText(op));
      return EXIT.OK;
    }
    case "create": {
      need(args, 0, "no argument (use -f FILE or --kind)");
      const body = await operationBody(values);
      const created = await client.post<Created>("/operations", body);
      const target = created.operation.spec.machineRef;
      return acted(ctx, target, created);
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

async function operationBody(values: Values): Promise<unknown> {
  if (values.file !== undefined) {
    if (values.kind !== undefined) throw new UsageError("-f and --kind exclude each other");
    const text = await readFile(values.file, "utf8");
    return parseYaml(text);
  }
  if (values.kind === undefined) throw new UsageError("create needs -f FILE or --kind KIND");
  if ((values.machine === undefined) === (values.selector === undefined)) {
    throw new UsageError("create needs exactly one of --machine NAME and --selector KEY=VALUE[,...]");
  }
  const spec: Record<string, unknown> = { operationKind: values.kind };
  if (values.machine !== undefined) spec.machineRef = values.machine;
  if (values.selector !== undefined)
    spec.machineSelector = { matchLabels: pairs(values.selector.split(","), "--selector") };
  if (values.param !== undefined) spec.parameters = pairs(values.param, "--param");
  const ttl = ttlOf(values);
  if (ttl !== undefined) spec.ttlSecondsAfterFinished = ttl;
  const body: Record<string, unknown> = { spec };
  if (values.name !== undefined) body.metadata = { name: values.name };
  return body;
}

function pairs(items: string[], flag: string): Record<string, string> {
  const map: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UsageError(`${flag} takes KEY=VALUE, got "${item}"`);
    map[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return map;
}

/** After an action: print the operation, and with --wait follow it to its end. */
async function acted(ctx: Context, machine: string | undefined, created: Created): Promise<number> {
  const { out, json, values } = ctx;
  const op = created.operation;
  if (!values.wait) {
    if (json) out.stdout(toJson(created));
    else {
      out.stdout(
        `operation ${op.metadata.name} (${op.spec.operationKind}${machine ? ` on ${machine}` : ""}) created; ` +
          `follow it with: metalman operation show ${op.metadata.name}\n`,
      );
    }
    return EXIT.OK;
  }
  const timeoutMs = parseGoDuration(values.timeout ?? "45m");
  if (timeoutMs === undefined || timeoutMs <= 0) throw new UsageError("--timeout takes a Go duration such as 30m");
  return wait(ctx, machine, created, timeoutMs);
}

/**
 * Follows an operation until it is Complete or Failed, or `timeoutMs` passes: its phase, stage
 * and message (polled every second) and the Machine's events (the SSE stream, from the seq the
 * action was recorded at, so nothing in between is missed).
 */
async function wait(ctx: Context, machine: string | undefined, created: Created, timeoutMs: number): Promise<number> {
  const { client, out, json } = ctx;
  const name = created.operation.metadata.name;
  const say = (line: string) => {
    if (!json) out.stdout(`${clock()} ${line}\n`);
  };
  say(`operation ${name} (${created.operation.spec.operationKind}${machine ? ` on ${machine}` : ""}) created`);
  const abort = new AbortController();
  let streaming: Promise<void> = Promise.resolve();
  if (machine !== undefined) {
    streaming = client
      .stream(
        `/machines/${encodeURIComponent(machine)}/events?follow=1&since=${created.eventsSince}`,
        (message) => {
          if (message.event !== "machine-event") return;
          try {
            say(`event  ${eventLine(JSON.parse(message.data) as StreamEventView)}`);
          } catch {
            // A malformed message is skipped; the operation's status is what decides.
          }
        },
        abort.signal,
      )
      .catch((err: unknown) => {
        // The events are a bonus: the wait goes on from the operation's status.
        if (!abort.signal.aborted) say(`(event stream unavailable: ${(err as Error).message})`);
      });
  }
  const deadline = Date.now() + timeoutMs;
  let last = "";
  let op = created.operation;
  try {
    for (;;) {
      op = await client.get<Operation>(`/operations/${encodeURIComponent(name)}`);
      const progress = progressLine(op, machine);
      if (progress !== last) {
        say(progress);
        last = progress;
      }
      const phase = op.status?.phase;
      if (phase === "Complete" || phase === "Failed") break;
      if (Date.now() >= deadline) {
        say(`still ${phase ?? "Pending"} after ${ctx.values.timeout ?? "45m"}: not waiting any longer (it goes on)`);
        if (json) out.stdout(toJson(op));
        return EXIT.WAIT_TIMEOUT;
      }
      await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
    }
  } finally {
    abort.abort();
    await streaming;
  }
  if (json) out.stdout(toJson(op));
  return op.status?.phase === "Complete" ? EXIT.OK : EXIT.OPERATION_FAILED;
}

async function events(ctx: Context, machine: string): Promise<number> {
  const { client, out, json, values } = ctx;
  const base = `/machines/${encodeURIComponent(machine)}/events`;
  if (values.since !== undefined && !/^-?\d+$/.test(values.since)) throw new UsageError("--since takes a seq");
  const since = values.since === undefined ? "" : `?since=${values.since}`;
  const answer = await client.get<{ lastSeq: number; events: StreamEventView[] }>(`${base}${since}`);
  for (const event of answer.events) out.stdout(json ? `${JSON.stringify(event)}\n` : `${eventLine(event)}\n`);
  if (!values.follow) return EXIT.OK;
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  try {
    await client.stream(
      `${base}?follow=1&since=${answer.lastSeq}`,
      (message) => {
        if (message.event !== "machine-event") return;
        out.stdout(json ? `${message.data}\n` : `${eventLine(JSON.parse(message.data) as StreamEventView)}\n`);
      },
      abort.signal,
    );
  } finally {
    process.off("SIGINT", stop);
  }
  return EXIT.OK;
}

function progressLine(op: Operation, machine: string | undefined): string {
  const target = op.status?.targets?.find((t) => t.machineRef === machine) ?? op.status?.targets?.[0];
  const phase = target?.phase ?? op.status?.phase ?? "Pending";
  const stage = target?.stage ? ` (${target.stage})` : "";
  const message = target?.message ?? op.status?.message;
  return `phase  ${phase}${stage}${message ? `: ${oneLine(message)}` : ""}`;
}

function eventLine(event: StreamEventView): string {
  const detail = Object.entries(event.detail ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  return [`#${event.seq}`, event.time, event.step, event.result, event.reason ?? "", detail]
    .filter((s) => s !== "")
    .join(" ");
}

function clock(): string {
  return new Date().toISOString().slice(11, 19);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function machineTable(items: Array<Record<string, unknown>>): string {
  if (items.length === 0) return "no machines\n";
  return table(
    ["NAME", "PHASE", "BMC", "POWER", "REPAVE", "QUARANTINED", "OPERATION"],
    items.map((m) => {
      const op = m.activeOperation as { kind: string; phase: string } | undefined;
      return [
        String(m.name),
        String(m.phase ?? ""),
        String(m.bmc),
        String(m.power),
        m.repavePending ? "pending" : "",
        m.quarantined ? "yes" : "",
        op ? `${op.kind} ${op.phase}` : "",
      ];
    }),
  );
}

function machineText(m: Record<string, unknown>): string {
  const bmc = m.bmcDetail as { kind: string; address?: string; certFingerprint?: string };
  const lines = [
    `Name:         ${m.name}`,
    `Phase:        ${m.phase || "-"}`,
    `Image:        ${m.image ?? "-"}`,
    `BMC:          ${bmc.kind}${bmc.address ? ` ${bmc.address}` : ""}`,
    `Cert pin:     ${bmc.certFingerprint ?? "-"}`,
    `Power:        ${m.power}`,
    `Repave:       ${m.repavePending ? "pending" : "-"}`,
  ];
  const quarantine = m.quarantine as { message: string } | undefined;
  if (quarantine) lines.push(`QUARANTINED:  ${quarantine.message}`);
  const status = m.status as { conditions?: Array<Record<string, string>> };
  const conditions = status.conditions ?? [];
  lines.push("", "Conditions:");
  if (conditions.length === 0) lines.push("  none");
  else {
    lines.push(
      ...table(
        ["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"],
        conditions.map((c) => [
          c.type ?? "",
          c.status ?? "",
          c.reason ?? "",
          c.lastTransitionTime ?? "",
          oneLine(c.message),
        ]),
      )
        .trimEnd()
        .split("\n")
        .map((l) => `  ${l}`),
    );
  }
  const ops = m.operations as Array<Record<string, string>>;
  lines.push("", "Operations:");
  if (ops.length === 0) lines.push("  none");
  else {
    lines.push(
      ...table(
        ["NAME", "KIND", "PHASE", "STAGE", "BY", "MESSAGE"],
        ops.map((o) => [
          o.name ?? "",
          o.kind ?? "",
          o.phase ?? "",
          o.stage ?? "",
          o.requestedBy ?? "",
          oneLine(o.message),
        ]),
      )
        .trimEnd()
        .split("\n")
        .map((l) => `  ${l}`),
    );
  }
  return `${lines.join("\n")}\n`;
}

function operationTable(items: Operation[]): string {
  if (items.length === 0) return "no operations\n";
  return table(
    ["NAME", "KIND", "MACHINE", "PHASE", "CREATED", "BY"],
    items.map((op) => [
      op.metadata.name,
      op.spec.operationKind,
      op.spec.machineRef ?? "(selector)",
      op.status?.phase ?? "Pending",
      op.metadata.creationTimestamp ?? "",
      op.metadata.annotations?.["metalman.io/requested-by"] ?? "",
    ]),
  );
}

function operationText(op: Operation): string {
  const lines = [
    `Name:          ${op.metadata.name}`,
    `Kind:          ${op.spec.operationKind}`,
    `Target:        ${op.spec.machineRef ?? JSON.stringify(op.spec.machineSelector)}`,
    `Phase:         ${op.status?.phase ?? "Pending"}`,
    `Message:       ${oneLine(op.status?.message) || "-"}`,
    `Created:       ${op.metadata.creationTimestamp ?? "-"}`,
    `Started:       ${op.status?.startedAt ?? "-"}`,
    `Completed:     ${op.status?.completedAt ?? "-"}`,
    `Requested by:  ${op.metadata.annotations?.["metalman.io/requested-by"] ?? "-"} (${op.metadata.annotations?.["metalman.io/requested-via"] ?? "-"})`,
  ];
  if (op.spec.parameters && Object.keys(op.spec.parameters).length > 0) {
    lines.push(
      `Parameters:    ${Object.entries(op.spec.parameters)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ")}`,
    );
  }
  const targets = op.status?.targets ?? [];
  if (targets.length > 0) {
    lines.push(
      "",
      "Targets:",
      ...table(
        ["MACHINE", "PHASE", "STAGE", "ATTEMPTS", "MESSAGE"],
        targets.map((t) => [t.machineRef, t.phase, t.stage ?? "", String(t.attempts ?? 0), oneLine(t.message)]),
      )
        .trimEnd()
        .split("\n")
        .map((l) => `  ${l}`),
    );
  }
  return `${lines.join("\n")}\n`;
}

function oneLine(text: string | undefined): string {
  return (text ?? "").replace(/\s+/g, " ").trim();
}
