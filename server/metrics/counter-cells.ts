import type { Counter } from "prom-client";

/**
 * Counters for hot paths (DHCP: several increments per packet, the event stream: one per
 * event). A prom-client label child re-hashes its labels into a string key on every `inc()`;
 * here an increment is `cell.value++` on a plain object the caller resolved once, and the
 * counter is filled from the cells when it is scraped (its `collect` hook). What a scrape
 * shows is unchanged: the same names, labels and values.
 *
 * Several owners may share one counter (two DHCP servers on one registry, tests): each keeps
 * its own cells, and a scrape sums them. Cells are never dropped, so a counter never goes
 * backwards while the process lives.
 */
export interface CounterCell {
  value: number;
}

interface LabelledCell extends CounterCell {
  readonly labels: Readonly<Record<string, string>>;
}

/** Where a counter keeps the cell sets that feed it (a property of the counter object itself). */
const CELL_SETS = Symbol("metalman.counterCells");

/** prom-client reads `collect` off the metric before every read (it is a constructor option, not typed on the instance). */
type CellCounter = Counter<string> & { [CELL_SETS]?: CounterCells[]; collect?: (this: Counter<string>) => void };

export class CounterCells {
  readonly #cells: LabelledCell[] = [];

  constructor(counter: Counter<string>) {
    const target = counter as CellCounter;
    let sets = target[CELL_SETS];
    if (!sets) {
      const owned: CounterCells[] = [];
      sets = owned;
      target[CELL_SETS] = owned;
      const collect = function (this: Counter<string>) {
        this.reset();
        for (const set of owned) {
          for (const cell of set.#cells) if (cell.value > 0) this.inc(cell.labels, cell.value);
        }
      };
      // prom-client calls `collect` before every read of the metric (registry.metrics(), get()).
      target.collect = collect;
    }
    sets.push(this);
  }

  /** A new cell for these label values; resolve it once and keep it (each call adds one). */
  cell(labels: Readonly<Record<string, string>> = {}): CounterCell {
    const cell: LabelledCell = { value: 0, labels };
    this.#cells.push(cell);
    return cell;
  }
}

/** Cells by one label value, created on first use: the per-increment cost is one Map lookup. */
export class CellsByLabel {
  readonly #cells: CounterCells;
  readonly #label: string;
  readonly #byValue = new Map<string, CounterCell>();

  constructor(counter: Counter<string>, label: string) {
    this.#cells = new CounterCells(counter);
    this.#label = label;
  }

  inc(value: string): void {
    let cell = this.#byValue.get(value);
    if (!cell) {
      cell = this.#cells.cell({ [this.#label]: value });
      this.#byValue.set(value, cell);
    }
    cell.value++;
  }
}
