import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { contentTypeFor, etagFor, evaluatePreconditions, selectRange } from "../../../server/http/file-response.js";

const file = { size: 100, mtime: new Date("2026-01-01T00:00:00.500Z") };
const lastModified = "Thu, 01 Jan 2026 00:00:00 GMT";

describe("file response semantics", () => {
  it("selects ranges", () => {
    assert.deepEqual(selectRange({}, file), { kind: "full" });
    assert.deepEqual(selectRange({ range: "bytes=0-0" }, file), { kind: "partial", start: 0, end: 0 });
    assert.deepEqual(selectRange({ range: "bytes=90-200" }, file), { kind: "partial", start: 90, end: 99 });
    assert.deepEqual(selectRange({ range: "bytes=-10" }, file), { kind: "partial", start: 90, end: 99 });
    assert.deepEqual(selectRange({ range: "bytes=-1000" }, file), { kind: "partial", start: 0, end: 99 });
    assert.deepEqual(selectRange({ range: "bytes=100-" }, file), { kind: "unsatisfiable" });
    assert.deepEqual(selectRange({ range: "bytes=-0" }, file), { kind: "unsatisfiable" });
    assert.deepEqual(selectRange({ range: "bytes=5-2" }, file), { kind: "full" });
    assert.deepEqual(selectRange({ range: "items=0-1" }, file), { kind: "full" });
    assert.deepEqual(selectRange({ range: "bytes=0-1, 3-4" }, file), { kind: "full" });
    assert.deepEqual(selectRange({ range: "bytes=0-1", "if-range": etagFor(file) }, file), {
      kind: "partial",
      start: 0,
      end: 1,
    });
    assert.deepEqual(selectRange({ range: "bytes=0-1", "if-range": lastModified }, file), {
      kind: "partial",
      start: 0,
      end: 1,
    });
    assert.deepEqual(selectRange({ range: "bytes=0-1", "if-range": `W/${etagFor(file)}` }, file), { kind: "full" });
  });

  it("evaluates conditionals in RFC 9110 order", () => {
    const etag = etagFor(file);
    assert.equal(evaluatePreconditions({ "if-none-match": `W/${etag}` }, file), "not-modified");
    assert.equal(evaluatePreconditions({ "if-none-match": "*" }, file), "not-modified");
    assert.equal(evaluatePreconditions({ "if-none-match": '"x"', "if-modified-since": lastModified }, file), "proceed");
    assert.equal(evaluatePreconditions({ "if-modified-since": lastModified }, file), "not-modified");
    assert.equal(evaluatePreconditions({ "if-modified-since": "Wed, 31 Dec 2025 23:59:59 GMT" }, file), "proceed");
    assert.equal(evaluatePreconditions({ "if-modified-since": "not a date" }, file), "proceed");
    assert.equal(evaluatePreconditions({ "if-match": '"x"' }, file), "precondition-failed");
    assert.equal(evaluatePreconditions({ "if-match": etag }, file), "proceed");
    assert.equal(
      evaluatePreconditions({ "if-unmodified-since": "Wed, 31 Dec 2025 23:59:59 GMT" }, file),
      "precondition-failed",
    );
  });

  it("derives content types from extensions", () => {
    assert.equal(contentTypeFor("grub/grub.cfg"), "text/plain; charset=utf-8");
    assert.equal(contentTypeFor("disk.img.gz"), "application/gzip");
    assert.equal(contentTypeFor("vmlinuz"), "application/octet-stream");
  });
});
