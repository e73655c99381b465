/**
 * The event stream contract (docs/events.md): seq numbers and resume, "gone", per-Machine
 * history that strangers cannot push out, isolated subscribers, aggregated stranger logs.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { pino } from "pino";
import { Registry } from "prom-client";
import { BootEventBus, type StreamEvent } from "../../../server/events/boot-events.js";
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

/** A logger whose records land in an array (synchronously). */
function capture(level = "info"): { log: pino.Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const log = pino({ level }, { write: (line: string) => records.push(JSON.parse(line)) });
  return { log, records };
}

describe("BootEventBus: recent() and delivery", () => {
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

  it("merges Machine and stranger events in seq order; keepRecent 0 keeps none but still delivers", () => {
    const bus = new BootEventBus({ keepRecent: 5 });
    bus.emit({ step: "dhcp.discover", result: "ok", machine: "a" });
    bus.emit({ step: "dhcp.discover", result: "ignored", reason: "unknown-mac" });
    bus.emit({ step: "dhcp.offer", result: "ok", machine: "b" });
    assert.deepEqual(
      bus.recent().map((e) => e.machine ?? "-"),
      ["a", "-", "b"],
    );
    const none = new BootEventBus({ keepRecent: 0 });
    let seen = 0;
    none.subscribe(() => seen++);
    none.emit({ step: "dhcp.discover", result: "ok" });
    assert.equal(seen, 1);
    assert.deepEqual(none.recent(), []);
  });

  it("delivers every event to subscribers until they unsubscribe, frozen, with increasing seq", () => {
    const bus = new BootEventBus({ startSeq: 1 });
    const seen: StreamEvent[] = [];
    const off = bus.subscribe((e) => seen.push(e));
    const detail = { path: "a" };
    bus.emit({ step: "dhcp.discover", result: "ok", detail });
    bus.emit({ step: "bmc.power-cycle", result: "started", machine: "n1" });
    off();
    bus.emit({ step: "dhcp.offer", result: "ok" });
    assert.deepEqual(
      seen.map((e) => [e.seq, e.step]),
      [
        [1, "dhcp.discover"],
        [2, "bmc.power-cycle"],
      ],
    );
    assert.ok(Object.isFrozen(seen[0]) && Object.isFrozen(seen[0]!.detail));
    detail.path = "changed by the caller later";
    assert.equal(seen[0]!.detail?.path, "a");
    assert.equal(bus.lastSeq, 3);
  });

  it("numbers events so that a restarted bus continues above the previous one", async () => {
    const before = new BootEventBus();
    for (let i = 0; i < 100; i++) before.emit({ step: "dhcp.ack", result: "ok", machine: "m" });
    await new Promise((resolve) => setTimeout(resolve, 2));
    const after = new BootEventBus();
    const first = after.emit({ step: "dhcp.ack", result: "ok", machine: "m" });
    assert.ok(first.seq > before.lastSeq, `${first.seq} > ${before.lastSeq}`);
    // A seq from the old process: what came between was never held here, so the reader must re-list.
    assert.equal(after.since(before.lastSeq).ok, false);
    assert.equal(after.since(after.firstSeq - 1).ok, true);
    // A seq this stream never issued (ahead of it) is "gone", not "nothing new".
    assert.deepEqual(after.since(first.seq + 10), {
      ok: false,
      reason: "gone",
      oldestSeq: first.seq,
      lastSeq: first.seq,
    });
  });

  it("delivers events emitted by a subscriber after the current one, in seq order for everyone", () => {
    const bus = new BootEventBus({ startSeq: 1 });
    const order: string[] = [];
    bus.subscribe((e) => {
      order.push(`first:${e.seq}`);
      if (e.seq === 1) bus.emit({ step: "operation.accepted", result: "ok", machine: "m" });
    });
    bus.subscribe((e) => order.push(`second:${e.seq}`));
    bus.emit({ step: "dhcp.ack", result: "ok", machine: "m" });
    assert.deepEqual(order, ["first:1", "second:1", "first:2", "second:2"]);
  });
});

describe("BootEventBus: per-Machine history", () => {
  it("a flood of 100 000 stranger events leaves a Machine's 50 events intact", () => {
    const bus = new BootEventBus({ keepRecent: 1000, perMachine: 128, startSeq: 1 });
    const mine: number[] = [];
    for (let i = 0; i < 50; i++) {
      mine.push(bus.emit({ step: "tftp.transfer", result: "ok", machine: "node-01", detail: { n: i } }).seq);
      // Interleaved with strangers, as on a busy LAN.
      for (let j = 0; j < 2000; j++) {
        bus.emit({ step: "dhcp.discover", result: "ignored", reason: "unknown-mac", mac: `02:00:00:00:${j % 256}:01` });
      }
    }
    assert.equal(bus.stats().strangerEvents, 100_000);
    const history = bus.history("node-01");
    assert.deepEqual(
      history.map((e) => e.seq),
      mine,
    );
    assert.deepEqual(
      history.map((e) => e.detail?.n),
      [...Array(50).keys()],
    );
    // And a console that saw the first 10 resumes with the other 40, stream-wide and per Machine.
    const resumed = bus.since(mine[9]!);
    assert.ok(resumed.ok);
    assert.deepEqual(
      resumed.events.map((e) => e.seq),
      mine.slice(10),
    );
    const perMachine = bus.since(mine[9]!, { machine: "node-01" });
    assert.ok(perMachine.ok && perMachine.events.length === 40);
  });

  it("a Machine that emits a lot cannot push out another Machine's history", () => {
    const bus = new BootEventBus({ keepRecent: 100, perMachine: 20, startSeq: 1 });
    for (let i = 0; i < 5; i++) bus.emit({ step: "dhcp.ack", result: "ok", machine: "quiet" });
    for (let i = 0; i < 10_000; i++) bus.emit({ step: "dhcp.discover", result: "ok", machine: "looping" });
    assert.equal(bus.history("quiet").length, 5);
    assert.equal(bus.history("looping").length, 20);
    // The stream-wide journal lost quiet's events, so resuming stream-wide from before them is "gone"...
    assert.equal(bus.since(1).ok, false);
    // ...but quiet's own timeline resumes fine.
    const own = bus.since(1, { machine: "quiet" });
    assert.ok(own.ok);
    assert.equal(own.events.length, 4);
  });

  it("bounds the number of Machines with a history, forgetting the least recently active", () => {
    const bus = new BootEventBus({ maxMachines: 3, startSeq: 1 });
    for (const name of ["a", "b", "c"]) bus.emit({ step: "dhcp.ack", result: "ok", machine: name });
    bus.emit({ step: "dhcp.ack", result: "ok", machine: "a" }); // a is active again: b is the oldest now
    bus.emit({ step: "dhcp.ack", result: "ok", machine: "d" });
    assert.equal(bus.stats().machinesTracked, 3);
    assert.deepEqual(bus.history("b"), []);
    assert.equal(bus.history("a").length, 2);
    // b's timeline lost events: resuming it says so, instead of "nothing new".
    assert.equal(bus.since(1, { machine: "b" }).ok, false);
    bus.forget("a");
    assert.deepEqual(bus.history("a"), []);
  });

  it("bounds the events of all histories together, forgetting whole least recently active histories", () => {
    const bus = new BootEventBus({ maxHistoryEvents: 5, startSeq: 1 });
    for (let i = 0; i < 3; i++) bus.emit({ step: "dhcp.ack", result: "ok", machine: "a" });
    for (let i = 0; i < 2; i++) bus.emit({ step: "dhcp.ack", result: "ok", machine: "b" });
    assert.equal(bus.stats().machinesTracked, 2, "5 events fit");
    bus.emit({ step: "dhcp.ack", result: "ok", machine: "b" });
    // The sixth event is over the bound: a (least recently active) goes, b keeps all of its own.
    assert.deepEqual(bus.history("a"), []);
    assert.equal(bus.history("b").length, 3);
    assert.equal(bus.since(1, { machine: "a" }).ok, false, "a's timeline is gone, not empty");
    // A single Machine over the bound keeps its newest events in its own ring; nobody else is left to forget.
    const one = new BootEventBus({ maxHistoryEvents: 2, perMachine: 4 });
    for (let i = 0; i < 6; i++) one.emit({ step: "dhcp.ack", result: "ok", machine: "solo" });
    assert.equal(one.history("solo").length, 4);
  });

  it("keeps a history for every Machine of a 10 000-Machine site by default (no eviction churn)", () => {
    const bus = new BootEventBus({ startSeq: 1 });
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 10_000; i++) bus.emit({ step: "dhcp.ack", result: "ok", machine: `m${i}` });
    }
    assert.equal(bus.stats().machinesTracked, 10_000);
    assert.equal(bus.history("m0").length, 2);
    assert.equal(bus.since(1, { machine: "m0" }).ok, true);
  });
});

describe("BootEventBus: resume by seq", () => {
  it("since(seq) returns the later Machine events; strangers are live only", () => {
    const bus = new BootEventBus({ startSeq: 100 });
    const a = bus.emit({ step: "dhcp.discover", result: "ok", machine: "n1" });
    bus.emit({ step: "dhcp.discover", result: "ignored", reason: "unknown-mac" });
    const c = bus.emit({ step: "dhcp.offer", result: "ok", machine: "n1" });
    const d = bus.emit({ step: "image.pull", result: "progress", machine: "n2" });
    const answer = bus.since(a.seq);
    assert.ok(answer.ok);
    assert.deepEqual(
      answer.events.map((e) => e.seq),
      [c.seq, d.seq],
    );
    assert.equal(answer.lastSeq, d.seq);
    const n2 = bus.since(a.seq, { machine: "n2" });
    assert.ok(n2.ok && n2.events.length === 1 && n2.events[0] === d);
    assert.deepEqual(bus.since(d.seq), { ok: true, events: [], lastSeq: d.seq });
  });

  it("subscribe({ since }) replays what was missed, then continues live without a gap or a double", () => {
    const bus = new BootEventBus({ startSeq: 1 });
    for (let i = 0; i < 5; i++) bus.emit({ step: "dhcp.ack", result: "ok", machine: i % 2 ? "odd" : "even" });
    const got: number[] = [];
    const sub = bus.subscribe((e) => got.push(e.seq), { since: 2 });
    assert.ok(sub.ok);
    assert.equal(sub.replayed, 3);
    bus.emit({ step: "dhcp.ack", result: "ok", machine: "odd" });
    bus.emit({ step: "dhcp.ack", result: "ignored" }); // a stranger, live
    assert.deepEqual(got, [3, 4, 5, 6, 7]);
    sub.unsubscribe();
    bus.emit({ step: "dhcp.ack", result: "ok", machine: "odd" });
    assert.equal(got.length, 5);

    const oddOnly: number[] = [];
    const odd = bus.subscribe((e) => oddOnly.push(e.seq), { since: 0, machine: "odd" });
    assert.ok(odd.ok);
    bus.emit({ step: "dhcp.ack", result: "ok", machine: "even" });
    bus.emit({ step: "dhcp.ack", result: "ok", machine: "odd" });
    assert.deepEqual(oddOnly, [2, 4, 6, 8, 10]);
  });

  it("answers gone when the seq fell out of retention, and then subscribes nothing", () => {
    const bus = new BootEventBus({ keepRecent: 10, perMachine: 10, startSeq: 1 });
    for (let i = 0; i < 25; i++) bus.emit({ step: "dhcp.ack", result: "ok", machine: "n" });
    // Held: 16..25. Resuming after 15 misses nothing; after 14, seq 15 is lost.
    assert.equal(bus.since(15).ok, true);
    const gone = bus.since(14);
    assert.deepEqual(gone, { ok: false, reason: "gone", oldestSeq: 16, lastSeq: 25 });
    assert.equal(bus.since(14, { machine: "n" }).ok, false);
    assert.equal(bus.since(Number.NaN).ok, false);
    let calls = 0;
    const sub = bus.subscribe(() => calls++, { since: 3 });
    assert.equal(sub.ok, false);
    bus.emit({ step: "dhcp.ack", result: "ok", machine: "n" });
    assert.equal(calls, 0, "a gone subscription must not receive events");
  });
});

describe("BootEventBus: subscribers that throw", () => {
  it("isolates a throwing subscriber: emit returns, the others get every event, failures are counted and logged rate-limited", () => {
    const { log, records } = capture("warn");
    const bus = new BootEventBus({ log, errorLogIntervalMs: 60_000 });
    const before: string[] = [];
    const after: string[] = [];
    bus.subscribe((e) => before.push(e.step));
    bus.subscribe(() => {
      throw new Error("console client went away");
    });
    bus.subscribe((e) => after.push(e.step));
    for (let i = 0; i < 1000; i++)
      assert.doesNotThrow(() => bus.emit({ step: "dhcp.offer", result: "ok", machine: "n" }));
    assert.equal(before.length, 1000);
    assert.equal(after.length, 1000);
    assert.equal(bus.stats().subscriberErrors, 1000);
    assert.equal(records.length, 1, "one warning per interval, not one per event");
    assert.match(String(records[0]!.msg), /subscriber threw/);
    assert.equal((records[0]!.err as { message: string }).message, "console client went away");
  });

  it("catches an async subscriber's rejection too (no unhandled rejection)", async () => {
    const bus = new BootEventBus();
    let unhandled = 0;
    const onUnhandled = () => unhandled++;
    process.on("unhandledRejection", onUnhandled);
    try {
      bus.subscribe(async () => {
        throw new Error("late");
      });
      bus.emit({ step: "dhcp.ack", result: "ok" });
      await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(bus.stats().subscriberErrors, 1);
      assert.equal(unhandled, 0);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("a subscriber that mutates an event throws (frozen) and is isolated like any other", () => {
    const bus = new BootEventBus();
    const seen: string[] = [];
    bus.subscribe((e) => {
      (e as { step: string }).step = "dhcp.nak";
    });
    bus.subscribe((e) => seen.push(e.step));
    bus.emit({ step: "dhcp.ack", result: "ok" });
    assert.deepEqual(seen, ["dhcp.ack"]);
    assert.equal(bus.stats().subscriberErrors, 1);
  });
});

describe("boot event sinks", () => {
  it("logs one info line per Machine event, and nothing when the level is above info", () => {
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
    assert.equal(typeof line.seq, "number");
  });

  it("aggregates stranger events: the first at once, then one summary line per interval with counters", async () => {
    const bus = new BootEventBus();
    const { log, records } = capture();
    let clock = 1_000_000;
    const off = logBootEvents(bus, log, { strangerIntervalMs: 10_000, now: () => clock });
    bus.emit({ step: "dhcp.discover", result: "ignored", reason: "unknown-mac", mac: "02:00:00:00:00:01" });
    assert.equal(records.length, 1, "a newly plugged machine shows up at once");
    assert.match(String(records[0]!.msg), /stranger traffic: 1 event\(s\) from 1 source/);
    assert.equal((records[0]!.strangers as { sample: { mac: string } }).sample.mac, "02:00:00:00:00:01");
    for (let i = 0; i < 10_000; i++) {
      bus.emit({
        step: "dhcp.discover",
        result: "ignored",
        reason: "unknown-mac",
        mac: `02:00:00:00:${(i % 200).toString(16)}:02`,
      });
      if (i % 2 === 0)
        bus.emit({ step: "http.artifact", result: "not-found", reason: "unknown-client", ip: "10.0.0.9" });
      bus.emit({ step: "dhcp.ack", result: "ok", machine: "node-01" });
    }
    assert.equal(records.filter((r) => r.machine === "node-01").length, 10_000, "Machine events are all logged");
    assert.equal(records.length, 10_001, "no stranger line inside the interval");
    clock += 10_000;
    bus.emit({ step: "tftp.transfer", result: "not-found", reason: "unknown-client", ip: "10.0.0.10" });
    const summaries = records.filter((r) => r.strangers !== undefined);
    assert.equal(summaries.length, 2);
    const summary = summaries[1]!.strangers as { events: number; sources: number; byKind: Record<string, number> };
    assert.equal(summary.events, 15_001);
    assert.equal(summary.sources, 202);
    assert.equal(summary.byKind["dhcp.discover ignored unknown-mac"], 10_000);
    assert.equal(summary.byKind["http.artifact not-found unknown-client"], 5_000);
    // Pending counts are written on close, not lost.
    bus.emit({ step: "dhcp.discover", result: "ignored", reason: "unknown-mac", mac: "02:00:00:00:00:03" });
    off();
    assert.equal(records.filter((r) => r.strangers !== undefined).length, 3);
  });

  it("writes the pending stranger summary when the interval ends, without another event", async () => {
    const bus = new BootEventBus();
    const { log, records } = capture();
    const off = logBootEvents(bus, log, { strangerIntervalMs: 30 });
    for (let i = 0; i < 100; i++) bus.emit({ step: "dhcp.discover", result: "ignored", mac: "02:00:00:00:00:09" });
    assert.equal(records.length, 1);
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.equal(records.length, 2);
    assert.equal((records[1]!.strangers as { events: number }).events, 99);
    off();
  });

  it("counts events by step and result, strangers apart, and the bus's own health", async () => {
    const bus = new BootEventBus();
    const registry = new Registry();
    const off = countBootEvents(bus, registry);
    bus.subscribe(() => {
      throw new Error("x");
    });
    bus.emit({ step: "dhcp.ack", result: "ok", machine: "a" });
    bus.emit({ step: "dhcp.ack", result: "ok", machine: "b" });
    bus.emit({ step: "dhcp.discover", result: "ignored" });
    off();
    const text = await registry.metrics();
    assert.match(text, /metalman_boot_events_total\{step="dhcp.ack",result="ok"\} 2/);
    assert.match(text, /metalman_boot_events_total\{step="dhcp.discover",result="ignored"\} 1/);
    assert.match(text, /metalman_boot_stranger_events_total\{step="dhcp.discover",result="ignored"\} 1/);
    assert.doesNotMatch(text, /metalman_boot_stranger_events_total\{step="dhcp.ack"/);
    assert.match(text, /metalman_event_subscriber_errors_total 3/);
    assert.match(text, /metalman_event_machines_tracked 2/);
  });
});
