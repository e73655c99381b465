import { readFile, unlink } from "node:fs/promises";
import path from "node:path";
import { type Document, isMap, isSeq, parseAllDocuments, parseDocument, type ToStringOptions } from "yaml";
import { writeFileAtomic } from "../util/atomic-file.js";
import type { InventoryWriter } from "./inventory-writer.js";
import { InventoryWriteError } from "./inventory-writer.js";
import { KeyedLock } from "./keyed-lock.js";
import { MachineValidator } from "./machine-schema.js";
import { API_VERSION, type Machine, SITE_LABEL } from "./types.js";

/** What the writer needs of the file inventory (FileInventory has it). */
export interface WritableFileInventory {
  get(name: string): Machine | undefined;
  /** The file that defines `name`. */
  sourceFileOf(name: string): string | undefined;
  /** Re-reads the folder now. */
  reload(): Promise<void>;
}

export interface FileInventoryWriterOptions {
  /** The inventory folder: new Machines go to `<dir>/<name>.yaml`. */
  dir: string;
  inventory: WritableFileInventory;
  /** --site: a new Machine gets this site label (and another site's is refused: it would never be served). */
  site: string;
  /** Keeps what the API scrubbed: `scrub(old) === new` means "unchanged". */
  scrub: (value: unknown) => unknown;
  now?: () => Date;
}

const MANAGED_METADATA = ["uid", "resourceVersion", "generation", "creationTimestamp", "namespace"];
const YAML_OUT: ToStringOptions = { lineWidth: 0, flowCollectionPadding: false };

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Edits the YAML files of the inventory folder through the `yaml` package's Document API: only
 * the nodes whose value changed are set or deleted, so comments, key order, blank lines and
 * the other documents of a multi-document file stay as the operator wrote them. Every write is
 * atomic (temp file, fsync, rename); the folder is re-read before the call resolves, so the
 * backend shows the change (a deleted Machine disappears after the inventory's deletion grace).
 */
export class FileInventoryWriter implements InventoryWriter {
  readonly #validator = new MachineValidator();
  readonly #lock = new KeyedLock();
  readonly #dir: string;

  constructor(private readonly options: FileInventoryWriterOptions) {
    this.#dir = path.resolve(options.dir);
  }

  async create(input: unknown): Promise<Machine> {
    const wanted = this.#clean(input);
    const name = wanted.metadata.name;
    return this.#lock.run(name, async () => {
      if (this.options.inventory.get(name)) throw new InventoryWriteError("EXISTS", `machine ${name} already exists`);
      const file = path.join(this.#dir, `${name}.yaml`);
      if (await exists(file)) {
        throw new InventoryWriteError("EXISTS", `${path.basename(file)} already exists in the inventory folder`);
      }
      this.#validate(wanted, path.basename(file));
      const doc = parseDocument("{}");
      doc.contents = doc.createNode(wanted) as typeof doc.contents;
      doc.commentBefore = ` Created by the metalman console, ${(this.options.now?.() ?? new Date()).toISOString()}.`;
      await writeFileAtomic(file, doc.toString(YAML_OUT));
      await this.options.inventory.reload();
      const machine = this.options.inventory.get(name);
      if (!machine) throw new Error(`${file} was written but the inventory does not show ${name} (see /readyz)`);
      return machine;
    });
  }

  async update(name: string, input: unknown): Promise<Machine> {
    const wanted = this.#clean(input);
    if (wanted.metadata.name !== name) {
      throw new InventoryWriteError(
        "INVALID",
        `metadata.name is ${wanted.metadata.name}, not ${name}: a Machine is not renamed`,
      );
    }
    return this.#lock.run(name, async () => {
      const { file, text, docs, index } = await this.#locate(name);
      const doc = docs[index]!;
      const current = doc.toJS({ maxAliasCount: 100 }) as Plain;
      const next = structuredClone(wanted) as unknown as Plain;
      // What the inventory computes or never reads is not the console's to change.
      delete next.status;
      if (current.status !== undefined) next.status = current.status;
      this.#mergeInto(doc, [], current, next);
      const edited = doc.toJS({ maxAliasCount: 100 });
      this.#validate(edited, path.basename(file));
      const out = docs.map((d) => d.toString(YAML_OUT)).join("");
      if (out !== text) {
        await writeFileAtomic(file, out);
        await this.options.inventory.reload();
      }
      return this.options.inventory.get(name) ?? (edited as Machine);
    });
  }

  delete(name: string): Promise<void> {
    return this.#lock.run(name, async () => {
      const { file, docs, index } = await this.#locate(name);
      const others = docs.filter((d, i) => i !== index && d.contents !== null);
      if (others.length === 0) await unlink(file);
      else await writeFileAtomic(file, others.map((d) => d.toString(YAML_OUT)).join(""));
      await this.options.inventory.reload();
    });
  }

  async #locate(name: string): Promise<{ file: string; text: string; docs: Document.Parsed[]; index: number }> {
    if (!this.options.inventory.get(name)) throw new InventoryWriteError("NOT_FOUND", `machine ${name} not found`);
    const file = this.options.inventory.sourceFileOf(name);
    if (!file || path.dirname(path.resolve(file)) !== this.#dir) {
      throw new InventoryWriteError("READ_ONLY", `machine ${name} is not defined by a file of ${this.#dir}`);
    }
    const text = await readFile(file, "utf8");
    const docs = parseAllDocuments(text, { uniqueKeys: true, keepSourceTokens: false });
    if (!Array.isArray(docs)) throw new InventoryWriteError("READ_ONLY", `${file} is empty`);
    const index = docs.findIndex((d) => {
      const value = d.errors.length === 0 ? (d.toJS({ maxAliasCount: 100 }) as Plain | null) : null;
      return isPlain(value) && value.kind === "Machine" && (value.metadata as Plain | undefined)?.name === name;
    });
    if (index === -1)
      throw new InventoryWriteError("READ_ONLY", `${file} no longer holds machine ${name} as a valid document`);
    if (docs.some((d) => d.errors.length > 0)) {
      throw new InventoryWriteError(
        "READ_ONLY",
        `${file} has a YAML error: fix it by hand first (metalman does not rewrite it)`,
      );
    }
    return { file, text, docs, index };
  }

  /** Sets what differs between `current` and `next` at `at`, recursing into mappings so untouched nodes keep their comments. */
  #mergeInto(doc: Document.Parsed, at: Array<string | number>, current: unknown, next: unknown): void {
    if (isPlain(current) && isPlain(next)) {
      const node = at.length === 0 ? doc.contents : doc.getIn(at, true);
      if (at.length > 0 && !isMap(node)) {
        doc.setIn(at, next);
        return;
      }
      for (const [key, value] of Object.entries(next)) this.#mergeInto(doc, [...at, key], current[key], value);
      for (const key of Object.keys(current)) {
        if (key in next) continue;
        // A key the API never shows (a secret-named one) is not deleted by its absence.
        if (!(key in (this.options.scrub({ [key]: 1 }) as Plain))) continue;
        doc.deleteIn([...at, key]);
      }
      return;
    }
    if (Array.isArray(current) && Array.isArray(next) && current.length === next.length && isSeq(doc.getIn(at, true))) {
      for (const [i, item] of next.entries()) this.#mergeInto(doc, [...at, i], current[i], item);
      return;
    }
    if (JSON.stringify(current) === JSON.stringify(next)) return;
    // The scrubbed form of what the file holds came back: keep the file's value.
    if (current !== undefined && JSON.stringify(this.options.scrub(current)) === JSON.stringify(next)) return;
    doc.setIn(at, next);
  }

  #clean(input: unknown): Machine {
    if (!isPlain(input)) throw new InventoryWriteError("INVALID", "machine: must be a mapping");
    const machine = structuredClone(input) as Plain;
    machine.apiVersion ??= API_VERSION;
    machine.kind ??= "Machine";
    delete machine.status;
    const metadata = isPlain(machine.metadata) ? machine.metadata : {};
    for (const key of MANAGED_METADATA) delete metadata[key];
    if (isPlain(metadata.labels) && Object.keys(metadata.labels).length === 0) delete metadata.labels;
    if (isPlain(metadata.annotations) && Object.keys(metadata.annotations).length === 0) delete metadata.annotations;
    machine.metadata = metadata;
    if (typeof metadata.name !== "string") throw new InventoryWriteError("INVALID", "metadata.name: is required");
    const site = isPlain(metadata.labels) ? metadata.labels[SITE_LABEL] : undefined;
    if ((site ?? "") !== this.options.site) {
      if (site === undefined && this.options.site !== "") {
        metadata.labels = { ...(isPlain(metadata.labels) ? metadata.labels : {}), [SITE_LABEL]: this.options.site };
      } else {
        throw new InventoryWriteError(
          "INVALID",
          `metadata.labels["${SITE_LABEL}"]: this appliance serves ${this.options.site === "" ? "Machines without a site label" : `site ${this.options.site}`}`,
        );
      }
    }
    return machine as unknown as Machine;
  }

  #validate(value: unknown, label: string): void {
    const result = this.#validator.validate(value, label);
    if (!result.ok) throw new InventoryWriteError("INVALID", result.errors[0] ?? "invalid", result.errors);
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await readFile(file);
    return true;
  } catch {
    return false;
  }
}
