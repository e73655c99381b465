/**
 * Runs every Go text/template reference vector (generated with real Go 1.19, see
 * ../shared/fixtures/go-template/README.md) through our engine: outputs must match exactly,
 * failures must happen in the same phase with the same partial output and a similar message.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { TemplateError } from "../../../server/template/errors.js";
import { GoTemplate, parseTemplateOptions } from "../../../server/template/go-template.js";
import { sharedDir } from "../../support/paths.js";

interface Vector {
  name: string;
  template: string;
  data: unknown;
  options?: string[];
  output?: string;
  error?: boolean;
  phase?: "parse" | "exec";
  message?: string;
  partial?: string;
}

const vectors: Vector[] = JSON.parse(
  readFileSync(path.join(sharedDir(), "fixtures", "go-template", "vectors.json"), "utf8"),
);

function render(v: Vector): string {
  const tmpl = GoTemplate.parse(v.name, v.template);
  return tmpl.executeJSON(v.data, parseTemplateOptions(v.options ?? []));
}

/** The message after Go's "template: NAME:LINE[:COL]: [executing … at <…>: ]" prefix. */
function coreMessage(message: string): string {
  const exec = /executing "[^"]*" at <.*?>: (.*)$/s.exec(message);
  if (exec) return exec[1];
  return message.replace(/^template: [^:]+:\d+(:\d+)?: /, "");
}

describe("Go text/template reference vectors", () => {
  it("has the full vector set", () => {
    assert.equal(vectors.length, 226);
  });

  for (const v of vectors) {
    it(v.name, () => {
      if (!v.error) {
        assert.equal(render(v), v.output);
        return;
      }
      let caught: unknown;
      try {
        render(v);
      } catch (e) {
        caught = e;
      }
      assert.ok(caught instanceof TemplateError, `expected a TemplateError, got ${String(caught)}`);
      assert.equal(caught.phase, v.phase);
      if (v.phase === "exec") assert.equal(caught.partial, v.partial ?? "");
      const want = coreMessage(v.message ?? "");
      assert.ok(
        caught.message.includes(want),
        `message ${JSON.stringify(caught.message)} should contain ${JSON.stringify(want)}`,
      );
    });
  }
});
