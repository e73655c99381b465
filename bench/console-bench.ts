/**
 * The browser side of bench/console.sh: Chromium (playwright-core, Debian's binary) logs in to
 * the console of an appliance holding 5,000 Machines and measures
 *   1. time to first table render: navigation start -> first Machine row painted with all
 *      5,000 loaded (performance.now() in the page, read on the frame the rows appear);
 *   2. time to apply a filter: the `change` event -> the next painted frame (two rAFs), per
 *      filter, median and max;
 *   3. SSE event-to-screen latency while bench/console.sh runs a boot storm: for every Machine
 *      row whose boot-step cell changes on screen, now - the event's server time (the table is
 *      sorted by newest event, so the storm's rows are the visible ones). The same host
 *      clock stamps both ends. Also the SSE arrival latency of every event (all Machines).
 * It prints `ready` when the storm may start and waits for the file STORM_DONE, then prints
 * one JSON line of results. Bench tool, not part of the appliance.
 *
 * Usage: node dist/bench/console-bench.js URL USER PASSWORD STORM_DONE_FILE EXPECTED_MACHINES [CHROMIUM]
 */
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { CHROMIUM, launchBrowser } from "../test/browser/support/browser.js";

const [url, user, password, doneFile, expectedText, executable] = process.argv.slice(2);
if (!url || !user || !password || !doneFile || !expectedText) {
  process.stderr.write("usage: console-bench.js URL USER PASSWORD STORM_DONE_FILE EXPECTED_MACHINES [CHROMIUM]\n");
  process.exit(2);
}
const expected = Number(expectedText);

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

// The browser tests' launch (test/browser/support/browser.ts): same flags, a 1440x900 context.
const browser = await launchBrowser({ executablePath: executable ?? CHROMIUM });
try {
  const { page } = browser;
  await page.goto(url);
  await page.getByLabel("User name").fill(user);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByTestId("whoami").waitFor({ timeout: 30_000 });

  // 1. First render, measured on fresh loads (the session cookie stays): three runs.
  const renders: number[] = [];
  for (let run = 0; run < 3; run++) {
    await page.goto(`${url}#/machines`);
    await page.reload();
    // A function, not a string: the console's CSP forbids eval, which string predicates use.
    const ms = await page.waitForFunction(
      (n: number) => {
        const g = globalThis as unknown as {
          metalmanConsole?: { machines: { items: unknown[] } };
          document: { querySelector(selector: string): unknown };
          performance: { now(): number };
        };
        const c = g.metalmanConsole;
        if (!c || c.machines.items.length < n || !g.document.querySelector("tr[data-machine]")) return false;
        return g.performance.now();
      },
      expected,
      { polling: "raf", timeout: 60_000 },
    );
    renders.push(Number(await ms.jsonValue()));
  }

  // 2. Filters through the real controls.
  const filterScript = (selector: string, value: string, checkbox: boolean) => `(async () => {
    const el = document.querySelector(${JSON.stringify(selector)});
    const t0 = performance.now();
    if (${checkbox}) el.checked = !el.checked; else el.value = ${JSON.stringify(value)};
    el.dispatchEvent(new Event("change", { bubbles: true }));
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    return { ms: performance.now() - t0, rows: window.metalmanConsole.machines.filtered.length };
  })()`;
  const filters: Array<{ name: string; ms: number; rows: number }> = [];
  const phases = (await page.evaluate("window.metalmanConsole.machines.options.phases")) as string[];
  for (let run = 0; run < 3; run++) {
    for (const [name, selector, value, checkbox] of [
      ["power", "#f-power", "Unknown", false],
      ["power: any", "#f-power", "", false],
      ["phase", "#f-phase", phases[0] ?? "", false],
      ["phase: any", "#f-phase", "", false],
      ["failed", 'input[type="checkbox"]', "", true],
      ["failed off", 'input[type="checkbox"]', "", true],
    ] as const) {
      const result = (await page.evaluate(filterScript(selector, value, checkbox))) as { ms: number; rows: number };
      filters.push({ name, ...result });
    }
  }
  // Text search: one keystroke's worth.
  const search = (await page.evaluate(`(async () => {
    const el = document.querySelector("#f-q");
    const t0 = performance.now();
    el.value = "storm-4"; el.dispatchEvent(new Event("input", { bubbles: true }));
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    const ms = performance.now() - t0;
    el.value = ""; el.dispatchEvent(new Event("input", { bubbles: true }));
    return ms;
  })()`)) as number;

  // 3. Live latency during the storm: newest events first, watch the visible rows.
  await page.evaluate(`(() => {
    const c = window.metalmanConsole;
    c.machines.clearFilters();
    c.machines.sortKey = "lastEvent"; c.machines.sortDesc = true;
    window.__screen = []; window.__arrival = [];
    c.live.subscribe((e) => { if (e.machine) window.__arrival.push(Date.now() - Date.parse(e.time)); });
    const seen = new Map();
    const observer = new MutationObserver(() => {
      const now = Date.now();
      for (const row of document.querySelectorAll("tr[data-machine]")) {
        const m = c.machines.get(row.dataset.machine);
        const e = m && m.lastEvent;
        if (!e || seen.get(m.name) === e.seq) continue;
        seen.set(m.name, e.seq);
        const cell = row.querySelector('[data-testid="last-step"]');
        if (cell && cell.textContent.startsWith(e.step)) window.__screen.push(now - Date.parse(e.time));
      }
    });
    observer.observe(document.querySelector("tbody"), { subtree: true, childList: true, characterData: true });
    // The rows that were on screen before the storm are not storm events.
    setTimeout(() => { window.__screen.length = 0; window.__arrival.length = 0; }, 0);
  })()`);
  await sleep(300);
  process.stdout.write("ready\n");
  const deadline = Date.now() + 30 * 60_000;
  while (!existsSync(doneFile) && Date.now() < deadline) await sleep(250);
  await sleep(1500);
  const screen = (await page.evaluate("window.__screen")) as number[];
  const arrival = (await page.evaluate("window.__arrival")) as number[];
  const heap = (await page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")) as number;
  const filterMs = filters.map((f) => f.ms);
  process.stdout.write(
    `${JSON.stringify({
      machines: expected,
      firstRenderMs: { runs: renders.map((r) => Math.round(r)), median: Math.round(percentile(renders, 50)) },
      filterMs: {
        median: Number(percentile(filterMs, 50).toFixed(1)),
        max: Number(Math.max(...filterMs).toFixed(1)),
        runs: filters.map((f) => `${f.name}=${f.ms.toFixed(1)}ms/${f.rows}`),
      },
      searchMs: Number(search.toFixed(1)),
      sse: {
        screenUpdates: screen.length,
        screenP50: percentile(screen, 50),
        screenP99: percentile(screen, 99),
        screenMax: Math.max(...screen),
        arrivals: arrival.length,
        arrivalP50: percentile(arrival, 50),
        arrivalP99: percentile(arrival, 99),
      },
      pageHeapMiB: Number((heap / 1048576).toFixed(1)),
    })}\n`,
  );
} finally {
  await browser.close();
}
