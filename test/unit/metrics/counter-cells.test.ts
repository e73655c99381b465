import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Counter, Registry } from "prom-client";
import { DhcpMetrics } from "../../../server/dhcp/metrics.js";
import { CellsByLabel, CounterCells } from "../../../server/metrics/counter-cells.js";

describe("counter cells (server/metrics/counter-cells.ts)", () => {
  it("a scrape shows what the cells counted, by label, and never goes backwards", async () => {
    const registry = new Registry();
    const counter = new Counter({ name: "t_total", help: "t", labelNames: ["type"], registers: [registry] });
    const cells = new CellsByLabel(counter, "type");
    cells.inc("discover");
    cells.inc("discover");
    cells.inc("request");
    let text = await registry.metrics();
    assert.match(text, /t_total\{type="discover"\} 2/);
    assert.match(text, /t_total\{type="request"\} 1/);
    cells.inc("request");
    text = await registry.metrics();
    assert.match(text, /t_total\{type="discover"\} 2/, "scraping twice does not double");
    assert.match(text, /t_total\{type="request"\} 2/);
  });

  it("two owners of one counter (two DHCP servers on one registry) are summed", async () => {
    const registry = new Registry();
    const a = new DhcpMetrics(registry);
    const b = new DhcpMetrics(registry);
    a.received.inc("discover");
    b.received.inc("discover");
    b.ignored.inc("unknown-mac");
    const text = await registry.metrics();
    assert.match(text, /metalman_dhcp_packets_received_total\{type="discover"\} 2/);
    assert.match(text, /metalman_dhcp_ignored_total\{reason="unknown-mac"\} 1/);
  });

  it("an unlabelled cell counts too", async () => {
    const registry = new Registry();
    const counter = new Counter({ name: "u_total", help: "u", registers: [registry] });
    const cell = new CounterCells(counter).cell();
    cell.value += 3;
    assert.match(await registry.metrics(), /u_total 3/);
  });
});
