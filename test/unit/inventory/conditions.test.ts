import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { findCondition, removeCondition, setCondition } from "../../../server/inventory/conditions.js";

const t0 = new Date("2026-04-27T10:00:00.123Z");
const t1 = new Date("2026-04-27T10:05:00Z");

describe("conditions (meta.SetStatusCondition semantics)", () => {
  it("adds a new condition with lastTransitionTime = now", () => {
    const list = setCondition(
      undefined,
      { type: "Repaved", status: "False", reason: "Pending", message: "image=x", observedGeneration: 2 },
      t0,
    );
    assert.deepEqual(list, [
      {
        type: "Repaved",
        status: "False",
        reason: "Pending",
        message: "image=x",
        observedGeneration: 2,
        lastTransitionTime: "2026-04-27T10:00:00Z",
      },
    ]);
  });

  it("keeps lastTransitionTime when status is unchanged but overwrites reason, message and generation", () => {
    const first = setCondition(
      [],
      { type: "CloudInitDone", status: "False", reason: "Running", message: "a", observedGeneration: 1 },
      t0,
    );
    const second = setCondition(
      first,
      { type: "CloudInitDone", status: "False", reason: "Failed", message: "b", observedGeneration: 3 },
      t1,
    );
    assert.equal(second[0]!.lastTransitionTime, "2026-04-27T10:00:00Z");
    assert.equal(second[0]!.reason, "Failed");
    assert.equal(second[0]!.message, "b");
    assert.equal(second[0]!.observedGeneration, 3);
    assert.equal(first[0]!.reason, "Running", "input not mutated");
  });

  it("moves lastTransitionTime when status changes", () => {
    const first = setCondition([], { type: "PoweredOff", status: "False", reason: "PoweringOff", message: "" }, t0);
    const second = setCondition(first, { type: "PoweredOff", status: "True", reason: "ForceOff", message: "" }, t1);
    assert.equal(second[0]!.lastTransitionTime, "2026-04-27T10:05:00Z");
    assert.equal(second.length, 1);
  });

  it("removes and finds by type", () => {
    let list = setCondition([], { type: "A", status: "True", reason: "r", message: "" }, t0);
    list = setCondition(list, { type: "B", status: "True", reason: "r", message: "" }, t0);
    assert.equal(findCondition(list, "B")?.type, "B");
    assert.deepEqual(
      removeCondition(list, "A").map((c) => c.type),
      ["B"],
    );
    assert.equal(findCondition(removeCondition(list, "B"), "B"), undefined);
  });
});
