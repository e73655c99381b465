/**
 * The netboot quoting helpers (issue 5 §4.2): kernelArg, grubQuote and ipxeArg, through the
 * engine and through the host-ubuntu2404 templates. A Machine string with a newline (the
 * namespace that injected a GRUB menuentry) can no longer add a boot entry or a kernel
 * argument; valid-but-tricky values are quoted so that GRUB reads them back unchanged. Templates
 * that do not call the helpers keep Go's semantics (the vectors test covers the engine).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { GoTemplate } from "../../../server/template/go-template.js";
import { grubQuote, ipxeArg, kernelArg, NETBOOT_FUNCS } from "../../../server/template/netboot-funcs.js";
import { TemplateError, TemplateRenderer } from "../../../server/template/render.js";
import { repoRoot } from "../../support/paths.js";
import { exampleContext, exampleMachine } from "./fixture-machines.js";

const dir = path.join(repoRoot(), "netboot-images", "host-ubuntu2404", "disk");
const grub = readFileSync(path.join(dir, "grub", "grub.cfg.tmpl"), "utf8");
const ipxe = readFileSync(path.join(dir, "boot.ipxe.tmpl"), "utf8");
const INJECTED_NAMESPACE = 'default\n}\nmenuentry "pwned" {\n  linux /vmlinuz init=/bin/sh';

/**
 * A GRUB word reader for what grubQuote emits and what the templates hold (sh-like rules of
 * the GRUB manual, "Quoting"): single quotes keep everything literal, a backslash outside
 * quotes escapes the next character, adjacent parts join into one word, `$name` outside
 * single quotes is a variable. Returns the words, or throws on what it does not model.
 */
function grubWords(line: string): { words: string[]; expands: boolean } {
  const words: string[] = [];
  let word: string | undefined;
  let expands = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === " " || c === "\t") {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end === -1) throw new Error(`unterminated quote in ${line}`);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (c === "\\") {
      word = (word ?? "") + line[++i];
    } else {
      if (c === "$" || c === ";" || c === "{" || c === "}" || c === "#" || c === '"') expands = true;
      word = (word ?? "") + c;
    }
  }
  if (word !== undefined) words.push(word);
  return { words, expands };
}

describe("quoting helpers", () => {
  it("kernelArg builds one parameter and refuses what could split it", () => {
    assert.equal(kernelArg("unbounded.node_name", "node-01"), "unbounded.node_name=node-01");
    assert.equal(
      kernelArg("ip", "10.0.0.11::10.0.0.1:255.255.255.0::eth0:none"),
      "ip=10.0.0.11::10.0.0.1:255.255.255.0::eth0:none",
    );
    assert.equal(kernelArg("unbounded.node_namespace", ""), "unbounded.node_namespace=");
    for (const bad of ["a b", "a\nb", 'a"b', "a'b", "a\\b", "a\tb", "a\u0000b", "a\u0085b"]) {
      assert.throws(() => kernelArg("k", bad), JSON.stringify(bad));
    }
    for (const badKey of ["", "a b", "a=b", "a\n"]) assert.throws(() => kernelArg(badKey, "v"), JSON.stringify(badKey));
  });

  it("grubQuote makes one literal GRUB word of a valid-but-tricky value", () => {
    for (const value of [
      "node-01",
      "https://api.example.com:6443/$root;{x}#frag",
      "it's",
      "'",
      "''",
      'say "hi" \\ there',
      "menuentry x { linux /y }",
      "",
    ]) {
      const quoted = grubQuote(value);
      const { words, expands } = grubWords(`linux ${quoted}`);
      assert.deepEqual(words, ["linux", value], `${JSON.stringify(value)} -> ${quoted}`);
      assert.equal(expands, false, quoted);
    }
    assert.equal(grubQuote("it's"), "'it'\\''s'");
    for (const bad of ["a\nb", "a\rb", "\u0000", "x\u001b"]) assert.throws(() => grubQuote(bad), JSON.stringify(bad));
  });

  it("ipxeArg passes one iPXE token unchanged and refuses what iPXE would split or expand", () => {
    assert.equal(ipxeArg("http://10.0.0.1:8880/vmlinuz"), "http://10.0.0.1:8880/vmlinuz");
    assert.equal(ipxeArg("a$b{c}"), "a$b{c}");
    for (const bad of ["", "a b", "a\nb", "\u0024{net0/ip}", "x\u0024{y}", "#x", "||", "&&", ";", "a\tb"]) {
      assert.throws(() => ipxeArg(bad), JSON.stringify(bad));
    }
  });

  it("are template functions: pipelines, Go's error wording, and unknown to plain Go templates", () => {
    const t = GoTemplate.parse("t", '{{ kernelArg "k" .V | grubQuote }} {{ ipxeArg .V }}', NETBOOT_FUNCS);
    assert.equal(t.executeJSON({ V: "node-01" }), "'k=node-01' node-01");
    assert.throws(
      () => t.executeJSON({ V: "a\nb" }),
      (e: unknown) =>
        e instanceof TemplateError && /error calling kernelArg: value of k holds a control character/.test(e.message),
    );
    assert.throws(
      () => GoTemplate.parse("t", "{{ grubQuote .V }}"),
      (e: unknown) => e instanceof TemplateError && e.message === 'template: t:1: function "grubQuote" not defined',
    );
    assert.throws(() => GoTemplate.parse("t", "{{ grubQuote 1 }}", NETBOOT_FUNCS).executeJSON({}), /expected string/);
  });
});

describe("host-ubuntu2404 templates against injection (§4.2)", () => {
  const renderer = new TemplateRenderer();
  const pending = () =>
    exampleMachine({ spec: { rebootCounter: 2, repaveCounter: 2 }, status: { rebootCounter: 1, repaveCounter: 1 } });

  it("a namespace with a newline adds no menuentry and no kernel argument: the render fails", () => {
    const machine = pending();
    machine.metadata.namespace = INJECTED_NAMESPACE;
    for (const [name, source] of [
      ["grub.cfg.tmpl", grub],
      ["boot.ipxe.tmpl", ipxe],
    ] as const) {
      let out = "";
      try {
        out = renderer.render(source, machine, exampleContext, name);
      } catch (error) {
        assert.ok(error instanceof TemplateError, name);
        assert.match(error.message, /holds a control character/, name);
        assert.doesNotMatch(error.partial ?? "", /pwned|init=\/bin\/sh/, name);
        continue;
      }
      assert.fail(`${name} rendered the injected namespace:\n${out}`);
    }
  });

  it("every argument of the GRUB linux line reads back as exactly one word", () => {
    const out = renderer.render(grub, pending(), exampleContext, "grub.cfg.tmpl");
    const lines = out.split("\n");
    assert.equal(lines.filter((l) => l.startsWith("menuentry ")).length, 1);
    const linux = lines.find((l) => l.trim().startsWith("linux "))!;
    const { words, expands } = grubWords(linux.trim());
    assert.equal(expands, false);
    assert.deepEqual(words.slice(0, 9), [
      "linux",
      "/vmlinuz",
      "unbounded.image_url=http://192.168.200.1:8880/disk.img.gz",
      "unbounded.serve_url=http://192.168.200.1:8880",
      "unbounded.ds_url=http://192.168.200.1:8880/cloud-init/",
      "unbounded.node_name=node-01",
      "unbounded.node_namespace=",
      "unbounded.apiserver_url=https://192.168.200.2:6443",
      "ip=10.0.0.11::10.0.0.1:255.255.255.0::eth0:none",
    ]);
    assert.deepEqual(grubWords(lines.find((l) => l.startsWith("menuentry "))!).words, [
      "menuentry",
      "metalman install node-01",
      "{",
    ]);
  });

  it("a tricky but valid apiserver URL stays literal for GRUB and fails loudly for iPXE only if iPXE would expand it", () => {
    const ctx = { ...exampleContext, apiserverUrl: "https://api.example.com:6443/$root;x" };
    const out = renderer.render(grub, pending(), ctx, "grub.cfg.tmpl");
    const linux = out.split("\n").find((l) => l.trim().startsWith("linux "))!;
    assert.ok(grubWords(linux.trim()).words.includes("unbounded.apiserver_url=https://api.example.com:6443/$root;x"));
    assert.match(
      renderer.render(ipxe, pending(), ctx, "boot.ipxe.tmpl"),
      / unbounded\.apiserver_url=https:\/\/api\.example\.com:6443\/\$root;x /,
    );
    assert.throws(
      () => renderer.render(ipxe, pending(), { ...ctx, apiserverUrl: "https://a/\u0024{net0/mac}" }, "boot.ipxe.tmpl"),
      /iPXE would expand/,
    );
  });
});
