import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { stringify } from "yaml";
import { FileInventory } from "../inventory/file-inventory.js";
import type { Machine } from "../inventory/types.js";
import { type CliOut, parseCli } from "../util/cli-args.js";

const OPTIONS = {
  inventory: { type: "string" },
  site: { type: "string" },
  namespace: { type: "string" },
  "keep-counters": { type: "boolean" },
} as const;

export const INVENTORY_USAGE = `metalman inventory: the local inventory folder (standalone mode)

Usage:
  metalman inventory export --inventory DIR [--site SITE] [--namespace NS] [--keep-counters]
      every valid Machine of the folder as Kubernetes manifests on stdout, for moving an appliance
      from standalone to cluster mode:  metalman inventory export --inventory DIR | kubectl apply -f -

Flags:
  --inventory DIR   the serve-pxe --inventory folder (required)
  --site SITE       set the unbounded-cloud.io/site label, so the cluster's appliance of that site serves them
  --namespace NS    metadata.namespace of the manifests (Machines are cluster-scoped upstream: default none)
  --keep-counters   keep spec.operations (reboot/repave counters); by default they are left out, because
                    in the cluster a Machine starts with an empty status and any counter above 0 would
                    count as a pending reboot or repave there

Only spec, name, labels and annotations are written: status stays with this appliance (the cluster
writes its own), and Secrets are never exported (the Machines' passwordRef names are listed on
stderr, to create them in the cluster yourself). Invalid files are reported on stderr and skipped.
`;

/** The manifest of one Machine as the cluster should get it: no status, no server-set metadata. */
export function exportManifest(
  machine: Machine,
  options: { site?: string; namespace?: string; keepCounters?: boolean } = {},
): object {
  const labels = { ...(machine.metadata.labels ?? {}) };
  if (options.site !== undefined) labels["unbounded-cloud.io/site"] = options.site;
  const metadata: Record<string, unknown> = { name: machine.metadata.name };
  if (options.namespace) metadata.namespace = options.namespace;
  if (Object.keys(labels).length > 0) metadata.labels = labels;
  if (machine.metadata.annotations && Object.keys(machine.metadata.annotations).length > 0) {
    metadata.annotations = machine.metadata.annotations;
  }
  const { operations, ...rest } = machine.spec;
  const spec = options.keepCounters && operations ? { ...rest, operations } : rest;
  return { apiVersion: machine.apiVersion, kind: "Machine", metadata, spec };
}

export async function runInventoryCli(argv: string[], env: NodeJS.ProcessEnv, out: CliOut): Promise<number> {
  const parsed = parseCli("inventory", INVENTORY_USAGE, OPTIONS, argv, env, out);
  if (typeof parsed === "number") return parsed;
  const { values, command, args } = parsed;
  if (command !== "export" || args.length > 0) {
    out.stderr(`metalman inventory: unknown command "${[command, ...args].join(" ")}"\n\n${INVENTORY_USAGE}`);
    return 2;
  }
  if (!values.inventory) {
    out.stderr(`metalman inventory export: --inventory DIR is required\n\n${INVENTORY_USAGE}`);
    return 2;
  }
  // Read-only on the operator's folder: the inventory's own state goes to a throwaway folder.
  const scratch = await mkdtemp(path.join(tmpdir(), "metalman-export-"));
  const inventory = new FileInventory({
    dir: path.resolve(values.inventory),
    stateDir: scratch,
    log: pino({ level: "silent" }),
    watch: false,
  });
  try {
    await inventory.load();
    for (const problem of inventory.problems()) {
      if (problem.kind === "inventory") out.stderr(`skipped: ${problem.message}\n`);
    }
    const machines = inventory.list();
    const docs = machines.map((m) =>
      stringify(
        exportManifest(m, { site: values.site, namespace: values.namespace, keepCounters: values["keep-counters"] }),
      ),
    );
    out.stdout(docs.map((d) => `---\n${d}`).join(""));
    const secrets = new Set<string>();
    for (const m of machines) {
      for (const ref of [m.spec.pxe?.redfish?.passwordRef, m.spec.pxe?.ipmi?.passwordRef]) {
        if (ref) secrets.add(`${ref.namespace}/${ref.name}`);
      }
    }
    out.stderr(
      `exported ${machines.length} Machine(s)${secrets.size > 0 ? `; create these Secrets in the cluster too: ${[...secrets].sort().join(", ")}` : ""}\n`,
    );
    return 0;
  } catch (err) {
    out.stderr(`metalman inventory export: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await inventory.close();
    await rm(scratch, { recursive: true, force: true });
  }
}
