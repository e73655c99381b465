/** TemplateRenderer: parse-once caching and the renderMachineTemplate contract. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderMachineTemplate, TemplateError, TemplateRenderer } from "../../../server/template/render.js";
import { exampleContext, exampleMachine } from "./fixture-machines.js";

describe("TemplateRenderer", () => {
  it("parses each source once and reuses it", () => {
    const r = new TemplateRenderer();
    const a = r.parse("{{ .Machine.Name }}", "x");
    assert.equal(r.parse("{{ .Machine.Name }}", "x"), a);
    assert.notEqual(r.parse("{{ .Machine.Name }}!", "x"), a);
    assert.equal(r.render("{{ .Machine.Name }}", exampleMachine(), exampleContext, "x"), "node-01");
  });

  it("bounds the cache", () => {
    const r = new TemplateRenderer({ maxCachedTemplates: 2 });
    const first = r.parse("1");
    r.parse("2");
    r.parse("3");
    assert.notEqual(r.parse("1"), first);
  });

  it("reports parse errors (cached) and exec errors with partial output", () => {
    const r = new TemplateRenderer();
    for (let i = 0; i < 2; i++) {
      assert.throws(
        () => r.render("{{ if .Machine }}", exampleMachine(), exampleContext, "bad.tmpl"),
        (e: unknown) =>
          e instanceof TemplateError && e.phase === "parse" && e.message === "template: bad.tmpl:1: unexpected EOF",
      );
    }
    assert.throws(
      () => renderMachineTemplate("a{{ .Machine.Name }}b{{ .Nope }}c", exampleMachine(), exampleContext),
      (e: unknown) => e instanceof TemplateError && e.phase === "exec" && e.partial === "anode-01b",
    );
  });

  it("renderMachineTemplate renders with the default name", () => {
    assert.equal(
      renderMachineTemplate("{{ .ServeURL }}/x", exampleMachine(), exampleContext),
      "http://192.168.200.1:8880/x",
    );
  });
});
