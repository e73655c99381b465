import type { FastifyPluginAsync } from "fastify";
import { stringify as toYaml } from "yaml";
import type { MachineOperation } from "../inventory/backend.js";
import { ApiError } from "./errors.js";
import type { SurfaceOptions } from "./plugin.js";
import { EMPTY_QUERY, NAME_PARAMS } from "./schemas.js";
import { type MachineSummary, machineDetail, machineObjectView, machineSummary, operationsFor } from "./views.js";

const SORT_KEYS = ["name", "phase", "power", "site", "ip", "lastEvent"] as const;
type SortKey = (typeof SORT_KEYS)[number];

const LIST_QUERY = {
  type: "object",
  additionalProperties: false,
  properties: {
    phase: { type: "string", maxLength: 64 },
    power: { type: "string", maxLength: 64 },
    failed: { type: "boolean" },
    repavePending: { type: "boolean" },
    quarantined: { type: "boolean" },
    site: { type: "string", maxLength: 63 },
    q: { type: "string", maxLength: 253 },
    sort: { type: "string", enum: SORT_KEYS.flatMap((k) => [k, `-${k}`]) },
    limit: { type: "integer", minimum: 1, maximum: 10_000 },
    continue: { type: "string", maxLength: 64, pattern: "^[0-9]+$" },
  },
} as const;

interface ListQuery {
  phase?: string;
  power?: string;
  failed?: boolean;
  repavePending?: boolean;
  quarantined?: boolean;
  site?: string;
  q?: string;
  sort?: string;
  limit?: number;
  continue?: string;
}

/** `phase=Ready,Failed`: any of the comma-separated values. */
function oneOf(filter: string | undefined, value: string): boolean {
  if (filter === undefined || filter === "") return true;
  return filter.split(",").some((f) => f.trim() === value);
}

function compare(key: SortKey, a: MachineSummary, b: MachineSummary): number {
  switch (key) {
    case "lastEvent":
      return (a.lastEvent?.seq ?? -1) - (b.lastEvent?.seq ?? -1);
    case "ip":
      return ipOrder(a.ip) - ipOrder(b.ip);
    default:
      return String(a[key] ?? "").localeCompare(String(b[key] ?? ""));
  }
}

function ipOrder(ip: string | undefined): number {
  if (!ip) return -1;
  return ip.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

/**
 * `GET /machines` (filters, sort, pages) and `GET /machines/NAME`, `GET /machines/NAME/yaml`:
 * what the backend holds, with status, quarantine, the operations naming the Machine and its
 * newest event. Read-only; never a secret (views.ts scrubs).
 */
export const machinesPlugin: FastifyPluginAsync<SurfaceOptions> = async (app, { backend, events }) => {
  const lastEventOf = (name: string) => events.history(name).at(-1);

  app.get<{ Querystring: ListQuery }>("/machines", { schema: { querystring: LIST_QUERY } }, async (request) => {
    const query = request.query;
    const machines = backend.list();
    const byMachine = new Map<string, MachineOperation[]>();
    for (const op of backend.operations.list()) {
      const names = new Set([op.spec.machineRef, ...(op.status?.targets ?? []).map((t) => t.machineRef)]);
      for (const name of names) if (name) byMachine.set(name, [...(byMachine.get(name) ?? []), op]);
    }
    const needle = query.q?.toLowerCase();
    let items = machines
      .map((machine) =>
        machineSummary(machine, byMachine.get(machine.metadata.name) ?? [], lastEventOf(machine.metadata.name)),
      )
      .filter(
        (m) =>
          oneOf(query.phase, m.phase) &&
          oneOf(query.power, m.power) &&
          oneOf(query.site, m.site) &&
          (query.failed === undefined || m.failed === query.failed) &&
          (query.repavePending === undefined || m.repavePending === query.repavePending) &&
          (query.quarantined === undefined || m.quarantined === query.quarantined) &&
          (needle === undefined ||
            [m.name, m.mac, m.ip, m.image].some((field) => field?.toLowerCase().includes(needle))),
      );
    if (query.sort) {
      const descending = query.sort.startsWith("-");
      const key = query.sort.replace(/^-/, "") as SortKey;
      // Stable, ties by name: pages do not reshuffle between requests.
      items = items.sort((a, b) => (descending ? -1 : 1) * compare(key, a, b) || a.name.localeCompare(b.name));
    }
    const total = items.length;
    const offset = query.continue === undefined ? 0 : Number(query.continue);
    const page = query.limit === undefined ? items.slice(offset) : items.slice(offset, offset + query.limit);
    const answer: { resourceVersion: string; total: number; items: MachineSummary[]; continue?: string } = {
      resourceVersion: machines.resourceVersion,
      total,
      items: page,
    };
    if (offset + page.length < total) answer.continue = String(offset + page.length);
    return answer;
  });

  app.get<{ Params: { name: string } }>(
    "/machines/:name",
    { schema: { params: NAME_PARAMS, querystring: EMPTY_QUERY } },
    async (request) => {
      const { name } = request.params;
      const machine = backend.get(name);
      if (!machine) throw new ApiError("MACHINE_NOT_FOUND", name, { machine: name });
      return machineDetail(machine, operationsFor(backend, name), backend.quarantine(name), lastEventOf(name));
    },
  );

  app.get<{ Params: { name: string } }>(
    "/machines/:name/yaml",
    { schema: { params: NAME_PARAMS, querystring: EMPTY_QUERY } },
    async (request) => {
      const { name } = request.params;
      const machine = backend.get(name);
      if (!machine) throw new ApiError("MACHINE_NOT_FOUND", name, { machine: name });
      return { machine: name, yaml: toYaml(machineObjectView(machine)) };
    },
  );
};
