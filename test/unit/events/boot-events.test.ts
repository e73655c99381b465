import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { pino } from "pino";
import { Registry } from "prom-client";
import { BootEventBus } from "../../../server/events/boot-events.js";
import { countBootEvents, logBootEvents } from "../../../server/events/event-sinks.js";

function lines(): { stream: Writable; written: string[] } {
  const written: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      written.push(String(chunk));
      done();
    },
  });
  return { stream, written };
}

describe("BootEventBus", () => {
  it("keeps the last keepRecent events, oldest first, across many wrap-arounds", () => {
    const bus = new BootEventBus({ keepRecent: 3 });
    assert.deepEqual(bus.recent(), []);
    for (let i = 0; i < 10; i++) bus.emit({ step: "dhcp.discover", result: "ok", machine: `m${i}`, time: `t${i}` });
    assert.deepEqual(
      bus.recent().map((e) => e.machine),
      ["m7", "m8", "m9"],
    );
    bus.emit({ step: "dhcp.ack", result: "ok", machine: "m8", mac: "aa:bb:cc:dd:ee:ff" });
    assert.deepEqual(
      bus.recent({ machine: "m8" }).map((e) => e.step),
      ["dhcp.discover", "dhcp.ack"],
    );
    assert.equal(bus.recent({ mac: "aa:bb:cc:dd:ee:ff" }).length, 1);
    assert.match(bus.recent().at(-1)!.time, /^\d{4}-\d\d-\d\dT/);
  });

  it("keeps fewer events than keepRecent in order, and none with keepRecent 0", () => {
    const bus = new BootEventBus({ keepRecent: 5 });
    bus.emit({ step: "dhcp.discover", result: "ok", machine: "a" });
    bus.emit({ step: "dhcp.offer", result: "ok", machine: "b" });
    assert.deepEqual(
      bus.recent().map((e) => e.machine),
      ["a", "b"],
    );
    const none = new BootEventBus({ keepRecent: 0 });
    let seen = 0;
    none.subscribe(() => seen++);
    none.emit({ step: "dhcp.discover", result: "ok" });
    assert.equal(seen, 1);
    assert.deepEqual(none.recent(), []);
  });

  it("delivers every event to subscribers until they unsubscribe", () => {
    const bus = new BootEventBus();
    const steps: string[] = [];
    const off = bus.subscribe((e) => steps.push(e.step));
    bus.emit({ step: "dhcp.discover", result: "ok" });
    off();
    bus.emit({ step: "dhcp.offer", result: "ok" });
    assert.deepEqual(steps, ["dhcp.discover"]);
  });
});

describe("boot event sinks", () => {
  it("logs one info line per event, and nothing when the level is above info", () => {
    const bus = new BootEventBus();
    const info = lines();
    const warn = lines();
    const offInfo = logBootEvents(bus, pino({ level: "info" }, info.stream));
    const offWarn = logBootEvents(bus, pino({ level: "warn" }, warn.stream));
    bus.emit({ step: "dhcp.ack", result: "ok", machine: "node-01", detail: { bootFile: "ipxe.efi" } });
    offInfo();
    offWarn();
    assert.equal(warn.written.length, 0);
    assert.equal(info.written.length, 1);
    const line = JSON.parse(info.written[0]!);
    assert.equal(line.msg, "dhcp.ack ok node-01");
    assert.equal(line.bootFile, "ipxe.efi");
    assert.equal(line.component, "boot");
  });

  it("counts events by step and result", async () => {
    const bus = new BootEventBus();
    const registry = new Registry();
    const off = countBootEvents(bus, registry);
    bus.emit({ step: "dhcp.ack", result: "ok" });
    bus.emit({ step: "dhcp.ack", result: "ok" });
    bus.emit({ step: "dhcp.discover", result: "ignored" });
    off();
    const text = await registry.metrics();
    assert.match(text, /metalman_boot_events_total\{step="dhcp.ack",result="ok"\} 2/);
    assert.match(text, /metalman_boot_events_total\{step="dhcp.discover",result="ignored"\} 1/);
  });
});
