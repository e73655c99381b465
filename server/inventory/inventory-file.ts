import type { Logger } from "pino";
import { parseAllDocuments } from "yaml";
import { isManifestDocument, type ManifestObject, parseManifest } from "./file-secrets.js";
import type { MachineValidator } from "./machine-schema.js";
import { API_VERSION, type Machine } from "./types.js";

/** Result of parsing one inventory file: its valid Machines in document order, and its problems. */
export interface ParsedInventoryFile {
  machines: Machine[];
  problems: string[];
  /** `v1` Secrets and ConfigMaps of the file (docs/bmc-redfish.md); values never reach `problems`. */
  manifests: ManifestObject[];
}

/**
 * Parses a (possibly multi-document) YAML file. `v1` Secrets and ConfigMaps are parsed into
 * `manifests`; documents of other kinds (image metadata...) are skipped with a debug log, so one folder can hold a whole site's manifests.
 * `label` names the file in messages (`machines/node-01.yaml`).
 */
export function parseInventoryFile(
  text: string,
  label: string,
  validator: MachineValidator,
  log: Logger,
  now: Date,
): ParsedInventoryFile {
  const machines: Machine[] = [];
  const problems: string[] = [];
  const manifests: ManifestObject[] = [];
  let documents: ReturnType<typeof parseAllDocuments>;
  try {
    documents = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: false });
  } catch (err) {
    return { machines, manifests, problems: [`${label}: invalid YAML: ${(err as Error).message}`] };
  }
  if (!Array.isArray(documents)) documents = [];
  const multi = documents.length > 1;
  documents.forEach((doc, index) => {
    const where = multi ? `${label} (document ${index + 1})` : label;
    if (doc.errors.length > 0) {
      problems.push(`${where}: invalid YAML: ${doc.errors[0]!.message.split("\n")[0]}`);
      return;
    }
    let value: unknown;
    try {
      // A low alias budget stops "billion laughs" documents from exhausting memory.
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      problems.push(`${where}: invalid YAML: ${(err as Error).message}`);
      return;
    }
    if (value === null || value === undefined) return;
    if (isManifestDocument(value)) {
      const result = parseManifest(value, where);
      if (result.object) manifests.push(result.object);
      problems.push(...result.problems);
      return;
    }
    if (!looksLikeMachine(value)) {
      log.debug({ file: where }, "inventory: skipping a document that is not a Machine");
      return;
    }
    const result = validator.validate(value, where, now);
    if (result.ok) machines.push(result.machine);
    else problems.push(...result.errors);
  });
  return { machines, problems, manifests };
}

/** A Machine of any version is validated (a wrong apiVersion is then reported, not ignored). */
function looksLikeMachine(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const { kind, apiVersion } = value as Record<string, unknown>;
  return kind === "Machine" || (kind === undefined && apiVersion === API_VERSION);
}
