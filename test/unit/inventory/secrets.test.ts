import assert from "node:assert/strict";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { inspect } from "node:util";
import { pino } from "pino";
import { FileInventory } from "../../../server/inventory/file-inventory.js";
import { FileSecretStore, parseManifest } from "../../../server/inventory/file-secrets.js";
import { resolvePassword } from "../../../server/inventory/secrets.js";
import { silentLog, tempDir } from "./helpers.js";

const PASSWORD = "hunter2-Sup3rSecret";
const B64 = Buffer.from(PASSWORD).toString("base64");

function secretYaml(name: string, body: string, namespace = "unbounded-kube"): string {
  return `apiVersion: v1\nkind: Secret\nmetadata: {name: ${name}, namespace: ${namespace}}\ntype: Opaque\n${body}`;
}

async function open(
  t: { after(fn: () => Promise<void>): void },
  files: Record<string, [string, number]>,
  log = silentLog,
) {
  const { dir: root, beforeRemove } = await tempDir(t);
  const dir = path.join(root, "machines");
  await mkdir(dir);
  for (const [name, [text, mode]] of Object.entries(files)) {
    const file = path.join(dir, name);
    await writeFile(file, text);
    await chmod(file, mode);
  }
  const inv = new FileInventory({ dir, stateDir: path.join(root, "state"), log, watch: false, deletionGraceMs: 0 });
  beforeRemove(() => inv.close());
  await inv.load();
  return { inv, dir };
}

/** A pino logger whose every line lands in `lines` (at debug level: the most a deployment would log). */
function capturingLog() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { log: pino({ level: "trace" }, stream), lines };
}

describe("standalone Secrets and ConfigMaps", () => {
  it("reads data (base64) and stringData (wins over data), and ConfigMap data", async (t) => {
    const { inv } = await open(t, {
      "bmc.yaml": [
        secretYaml("bmc-node-01-pass", `data:\n  password: ${B64}\n  other: b3RoZXI=\nstringData:\n  other: plain\n`),
        0o600,
      ],
      "cm.yaml": [
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: my-cloud-init, namespace: unbounded-kube}\ndata:\n  user-data: |\n    #cloud-config\n",
        0o644,
      ],
    });
    assert.deepEqual(inv.problems(), []);
    const ref = { name: "bmc-node-01-pass", namespace: "unbounded-kube" };
    assert.equal((await inv.secrets.secretValue({ ...ref, key: "password" }))?.toString(), PASSWORD);
    assert.equal((await inv.secrets.secretValue({ ...ref, key: "other" }))?.toString(), "plain");
    assert.equal(await inv.secrets.secretValue({ ...ref, key: "nope" }), undefined);
    assert.equal(await inv.secrets.secretValue({ ...ref, namespace: "elsewhere", key: "password" }), undefined);
    assert.equal(
      await inv.secrets.configMapValue({ name: "my-cloud-init", namespace: "unbounded-kube", key: "user-data" }),
      "#cloud-config\n",
    );
    // Machines in the same folder are unaffected.
    assert.equal(inv.list().length, 0);
  });

  it("refuses a Secret file that other users can read, and the problem and the log show no value", async (t) => {
    const { log, lines } = capturingLog();
    const { inv } = await open(
      t,
      {
        "group.yaml": [secretYaml("group-readable", `stringData:\n  password: ${PASSWORD}\n`), 0o640],
        "world.yaml": [secretYaml("world-readable", `data:\n  password: ${B64}\n`), 0o604],
        "ok.yaml": [secretYaml("owner-only", `data:\n  password: ${B64}\n`), 0o400],
      },
      log,
    );
    const problems = inv.problems();
    assert.equal(problems.length, 2, JSON.stringify(problems));
    assert.match(
      problems[0]!.message,
      /Secret unbounded-kube\/group-readable refused: the file is readable by other users \(mode 0640\); run chmod 600/,
    );
    assert.match(problems[1]!.message, /world-readable refused.*mode 0604/);
    assert.equal(
      await inv.secrets.secretValue({ name: "group-readable", namespace: "unbounded-kube", key: "password" }),
      undefined,
    );
    assert.equal(
      await inv.secrets.secretValue({ name: "world-readable", namespace: "unbounded-kube", key: "password" }),
      undefined,
    );
    assert.equal(
      (await inv.secrets.secretValue({ name: "owner-only", namespace: "unbounded-kube", key: "password" }))?.toString(),
      PASSWORD,
    );
    const everything = JSON.stringify(problems) + lines.join("");
    assert.ok(
      lines.some((l) => l.includes("group-readable")),
      "the refusal is logged",
    );
    assert.ok(!everything.includes(PASSWORD), "no plain value in problems or logs");
    assert.ok(!everything.includes(B64), "no base64 value in problems or logs");
  });

  it("a refused Secret file is accepted once fixed with chmod 600", async (t) => {
    const { inv, dir } = await open(t, {
      "bmc.yaml": [secretYaml("s", `stringData: {password: ${PASSWORD}}\n`), 0o644],
    });
    const ref = { name: "s", namespace: "unbounded-kube", key: "password" };
    assert.equal(await inv.secrets.secretValue(ref), undefined);
    await chmod(path.join(dir, "bmc.yaml"), 0o600);
    await inv.reload();
    assert.deepEqual(inv.problems(), []);
    assert.equal((await inv.secrets.secretValue(ref))?.toString(), PASSWORD);
    // And refused again when it becomes readable by others: the last good value is not kept.
    await chmod(path.join(dir, "bmc.yaml"), 0o640);
    await inv.reload();
    assert.equal(await inv.secrets.secretValue(ref), undefined);
    assert.equal(inv.problems().length, 1);
  });

  it("reports bad Secrets by field and key, never by value", async (t) => {
    const { log, lines } = capturingLog();
    const { inv } = await open(
      t,
      {
        "bad-b64.yaml": [secretYaml("bad-b64", `data:\n  password: "${PASSWORD}!!"\n`), 0o600],
        "bad-type.yaml": [secretYaml("bad-type", "stringData:\n  password: 123456789\n"), 0o600],
        "bad-api.yaml": [
          `apiVersion: v2\nkind: Secret\nmetadata: {name: x}\nstringData: {password: ${PASSWORD}}\n`,
          0o600,
        ],
        "bad-yaml.yaml": [secretYaml("bad-yaml", `stringData:\n  password: ${PASSWORD}\n   broken: [\n`), 0o600],
      },
      log,
    );
    const messages = inv.problems().map((p) => p.message);
    assert.ok(
      messages.some((m) => /Secret unbounded-kube\/bad-b64: data.password is not valid base64/.test(m)),
      messages.join("\n"),
    );
    assert.ok(messages.some((m) => /stringData.password must be a string/.test(m)));
    assert.ok(messages.some((m) => /apiVersion must be "v1"/.test(m)));
    assert.ok(messages.some((m) => /bad-yaml.yaml: invalid YAML/.test(m)));
    const everything = messages.join("\n") + lines.join("");
    assert.ok(!everything.includes(PASSWORD), everything);
    assert.ok(!everything.includes("123456789"));
  });

  it("keeps values out of JSON.stringify and util.inspect of a parsed Secret", () => {
    const { object } = parseManifest(
      { apiVersion: "v1", kind: "Secret", metadata: { name: "s" }, stringData: { password: PASSWORD } },
      "x.yaml",
    );
    assert.ok(object);
    assert.equal(object.namespace, "default");
    assert.ok(!JSON.stringify(object).includes(PASSWORD));
    // util.inspect (console.log) would print a Buffer's bytes as hex: not even those.
    const hex = Buffer.from(PASSWORD).subarray(0, 6).toString("hex").match(/../g)!.join(" ");
    for (const shown of [inspect(object, { depth: 10 }), inspect({ wrapped: [object] }, { depth: 10 })]) {
      assert.ok(!shown.includes(PASSWORD) && !shown.includes(hex), shown);
      assert.match(shown, /keys: \[ 'password' \]/);
    }
    assert.ok(!JSON.stringify({ wrapped: [object] }).includes(PASSWORD));
  });

  it("reports a Secret defined twice; the first file wins", async (t) => {
    const { inv } = await open(t, {
      "a.yaml": [secretYaml("dup", "stringData: {password: first}\n"), 0o600],
      "b.yaml": [secretYaml("dup", "stringData: {password: second}\n"), 0o600],
    });
    assert.equal(
      (await inv.secrets.secretValue({ name: "dup", namespace: "unbounded-kube", key: "password" }))?.toString(),
      "first",
    );
    assert.match(inv.problems()[0]!.message, /Secret unbounded-kube\/dup is also defined in machines\/a.yaml/);
  });

  it("resolves passwordRef keys: an explicit key alone; the default (ssh-privatekey or none) falls back to password", async () => {
    const store = new FileSecretStore();
    const obj = (name: string, values: Record<string, string>) =>
      parseManifest({ apiVersion: "v1", kind: "Secret", metadata: { name, namespace: "ns" }, stringData: values }, "f")
        .object!;
    store.replace([
      {
        file: "f",
        objects: [
          obj("both", { password: "p", "ssh-privatekey": "k" }),
          obj("readme", { password: "p" }),
          obj("custom", { pw: "c" }),
        ],
      },
    ]);
    const r = (name: string, key?: string) => resolvePassword(store, { name, namespace: "ns", key });
    // What upstream reads whenever upstream found a value: the same here.
    assert.deepEqual(await r("both", "ssh-privatekey"), { secretFound: true, password: "k", key: "ssh-privatekey" });
    assert.deepEqual(await r("both"), { secretFound: true, password: "k", key: "ssh-privatekey" });
    // Upstream's README form (key `password`, no key set): upstream sent an empty password; we find it.
    assert.deepEqual(await r("readme", "ssh-privatekey"), { secretFound: true, password: "p", key: "password" });
    assert.deepEqual(await r("both", "password"), { secretFound: true, password: "p", key: "password" });
    assert.deepEqual(await r("custom", "pw"), { secretFound: true, password: "c", key: "pw" });
    // An explicit key is used alone; missing, it is an empty password (upstream). A missing Secret is reported.
    assert.deepEqual(await r("readme", "nope"), { secretFound: true, password: "" });
    assert.deepEqual(await r("absent"), { secretFound: false, password: "" });
  });
});
