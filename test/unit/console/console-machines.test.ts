// biome-ignore-all lint/suspicious/noExplicitAny: the tests read JSON answers loosely; the assertions check their shape
/**
 * The console's Machine surfaces through the gate (inject, logged-in users): the list with
 * filters, sort and pages; the raw YAML view (scrubbed); create, edit (a real file with
 * comments keeps them) and delete in the inventory folder; discovered MACs and enroll; the
 * appliance answer; and the all-events firehose over a real socket, resumed by Last-Event-ID.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { request } from "node:http";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { apiFixture } from "../api/helpers.js";
import { type ConsoleFixture, consoleFixture, type LoggedIn, login, PASSWORDS } from "./helpers.js";

const COMMENTED = `# Rack A, slot 4: the operator's notes stay.
apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata:
  name: node-04 # the name on the label
  labels:
    rack: a   # moved from rack b in March
spec:
  pxe:
    # Pinned image: do not bump before the firmware update.
    image: dir:/nonexistent
    dhcpLeases:
      - mac: "aa:bb:cc:dd:ee:04"
        ipv4: "10.0.0.14"
        subnetMask: "255.255.255.0"
        gateway: "10.0.0.1"
    redfish:
      url: https://admin:bmc-url-secret@10.0.0.44
      username: admin
      passwordRef: {name: bmc-node-04, namespace: default, key: password}

# trailing notes about the rack
`;

describe("console machine surfaces", () => {
  let f: ConsoleFixture;
  let root: LoggedIn;
  let view: LoggedIn;
  let ops: LoggedIn;
  before(async () => {
    f = await consoleFixture();
    await writeFile(path.join(f.scratch.inventoryDir, "node-04.yaml"), COMMENTED);
    await f.inventory.reload();
    root = await login(f.app, "root", PASSWORDS.root);
    view = await login(f.app, "view", PASSWORDS.view);
    ops = await login(f.app, "ops", PASSWORDS.ops);
  });
  after(async () => {
    await f.close();
  });
  const get = (url: string, who: LoggedIn = view) =>
    f.app.inject({ method: "GET", url: `/api/v1${url}`, headers: who.headers });

  it("lists with filters, sort, pages and the console's fields", async () => {
    f.events.emit({
      step: "tftp.transfer",
      result: "error",
      machine: "node-02",
      mac: "aa:bb:cc:dd:ee:02",
      reason: "not-found",
      detail: { file: "grubx64.efi" },
    });
    const all = (await get("/machines")).json();
    assert.equal(all.total, 4);
    const n2 = all.items.find((m: any) => m.name === "node-02");
    assert.deepEqual(
      [n2.ip, n2.mac, n2.site, n2.failed, n2.lastEvent.step],
      ["10.0.0.12", "aa:bb:cc:dd:ee:02", "", true, "tftp.transfer"],
    );
    assert.equal(n2.failureReason, "tftp.transfer: not-found (grubx64.efi)");
    assert.deepEqual(
      (await get("/machines?failed=true")).json().items.map((m: any) => m.name),
      ["node-02"],
    );
    assert.deepEqual(
      (await get("/machines?repavePending=true")).json().items.map((m: any) => m.name),
      ["node-01"],
    );
    assert.deepEqual(
      (await get("/machines?q=10.0.0.14")).json().items.map((m: any) => m.name),
      ["node-04"],
    );
    assert.deepEqual(
      (await get("/machines?sort=-name")).json().items.map((m: any) => m.name),
      ["node-04", "node-03", "node-02", "node-01"],
    );
    const page1 = (await get("/machines?sort=name&limit=3")).json();
    assert.deepEqual([page1.items.length, page1.continue, page1.total], [3, "3", 4]);
    const page2 = (await get(`/machines?sort=name&limit=3&continue=${page1.continue}`)).json();
    assert.deepEqual([page2.items.map((m: any) => m.name), page2.continue], [["node-04"], undefined]);
    assert.equal((await get("/machines?color=red")).json().error.code, "VALIDATION_FAILED");
  });

  it("shows the raw YAML without secrets", async () => {
    const res = await get("/machines/node-04/yaml");
    assert.equal(res.statusCode, 200);
    const { yaml } = res.json();
    assert.match(yaml, /name: node-04/);
    assert.match(yaml, /url: https:\/\/10\.0\.0\.44\//);
    assert.ok(!yaml.includes("bmc-url-secret"), yaml);
  });

  it("edits a Machine from the console and keeps the file's comments; the scrubbed BMC URL is left alone", async () => {
    const detail = (await get("/machines/node-04", root)).json();
    const machine = {
      apiVersion: "unbounded-cloud.io/v1alpha3",
      kind: "Machine",
      metadata: detail.metadata,
      spec: structuredClone(detail.spec),
    };
    machine.metadata.labels = { rack: "c" };
    machine.spec.pxe.dhcpLeases[0].ipv4 = "10.0.0.24";
    const viewer = await f.app.inject({
      method: "PUT",
      url: "/api/v1/machines/node-04",
      headers: view.headers,
      payload: { machine },
    });
    assert.equal(viewer.statusCode, 403, "a viewer cannot edit");
    const res = await f.app.inject({
      method: "PUT",
      url: "/api/v1/machines/node-04",
      headers: root.headers,
      payload: { machine },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().ip, "10.0.0.24");
    const text = await readFile(path.join(f.scratch.inventoryDir, "node-04.yaml"), "utf8");
    for (const comment of [
      "# Rack A, slot 4: the operator's notes stay.",
      "# the name on the label",
      "# moved from rack b in March",
      "# Pinned image: do not bump before the firmware update.",
      "# trailing notes about the rack",
    ]) {
      assert.ok(text.includes(comment), `kept ${comment}:\n${text}`);
    }
    assert.match(text, /rack: c/);
    assert.match(text, /ipv4: "10\.0\.0\.24"/, "the quoting style of the file is kept");
    assert.ok(
      text.includes("https://admin:bmc-url-secret@10.0.0.44"),
      "the BMC URL's credentials were not replaced by the scrubbed view",
    );
    assert.equal(f.inventory.get("node-04")?.spec.pxe?.dhcpLeases?.[0]?.ipv4, "10.0.0.24");
    const bad = await f.app.inject({
      method: "PUT",
      url: "/api/v1/machines/node-04",
      headers: root.headers,
      payload: { machine: { ...machine, spec: { pxe: { image: "x", colour: 1 } } } },
    });
    assert.equal(bad.statusCode, 422);
    assert.equal(bad.json().error.code, "INVALID_MACHINE");
    assert.match(bad.json().error.detail, /colour: unknown field/);
    assert.equal(
      await readFile(path.join(f.scratch.inventoryDir, "node-04.yaml"), "utf8"),
      text,
      "an invalid edit writes nothing",
    );
  });

  it("creates and deletes a Machine file (admin only)", async () => {
    const machine = {
      metadata: { name: "node-05" },
      spec: {
        pxe: {
          image: "dir:/nonexistent",
          dhcpLeases: [
            { mac: "aa:bb:cc:dd:ee:05", ipv4: "10.0.0.15", subnetMask: "255.255.255.0", gateway: "10.0.0.1" },
          ],
        },
      },
    };
    const denied = await f.app.inject({
      method: "POST",
      url: "/api/v1/machines",
      headers: ops.headers,
      payload: { machine },
    });
    assert.equal(denied.statusCode, 403);
    const created = await f.app.inject({
      method: "POST",
      url: "/api/v1/machines",
      headers: root.headers,
      payload: { machine },
    });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.json().name, "node-05");
    assert.match(
      await readFile(path.join(f.scratch.inventoryDir, "node-05.yaml"), "utf8"),
      /^# Created by the metalman console/,
    );
    const again = await f.app.inject({
      method: "POST",
      url: "/api/v1/machines",
      headers: root.headers,
      payload: { machine },
    });
    assert.equal(again.json().error.code, "MACHINE_EXISTS");
    const del = await f.app.inject({ method: "DELETE", url: "/api/v1/machines/node-05", headers: root.headers });
    assert.equal(del.statusCode, 204);
    await assert.rejects(readFile(path.join(f.scratch.inventoryDir, "node-05.yaml")));
    await new Promise((r) => setTimeout(r, 100));
    await f.inventory.reload();
    assert.equal(f.inventory.get("node-05"), undefined);
  });

  it("lists discovered MACs and enrolls one as a Machine the DHCP side then knows", async () => {
    f.discovery.record({ mac: "aa:bb:cc:dd:ee:99", arch: 7, vendorClass: "PXEClient:Arch:00007" });
    const list = (await get("/discovered")).json();
    assert.deepEqual(
      list.items.map((c: any) => [c.mac, c.arch, c.count]),
      [["aa:bb:cc:dd:ee:99", 7, 1]],
    );
    const body = { name: "node-99", ipv4: "10.0.0.99", subnetMask: "255.255.255.0", gateway: "10.0.0.1" };
    const url = "/api/v1/discovered/aa:bb:cc:dd:ee:99/enroll";
    const viewer = await f.app.inject({ method: "POST", url, headers: view.headers, payload: body });
    assert.equal(viewer.statusCode, 403);
    const res = await f.app.inject({ method: "POST", url, headers: ops.headers, payload: body });
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual(
      [res.json().name, res.json().mac, res.json().image],
      ["node-99", "aa:bb:cc:dd:ee:99", "dir:/nonexistent"],
    );
    assert.equal(f.inventory.byMac("aa:bb:cc:dd:ee:99")?.metadata.name, "node-99");
    assert.deepEqual((await get("/discovered")).json().items, []);
    const unknown = await f.app.inject({
      method: "POST",
      url: "/api/v1/discovered/aa:bb:cc:dd:ee:98/enroll",
      headers: ops.headers,
      payload: body,
    });
    assert.equal(unknown.json().error.code, "DISCOVERED_NOT_FOUND");
  });

  it("answers GET /appliance", async () => {
    const res = await get("/appliance");
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().mode, "standalone");
  });

  it("streams every event (strangers too) and resumes after Last-Event-ID; a seq too old says gone", async () => {
    await f.app.listen({ host: "127.0.0.1", port: 0 });
    const address = f.app.server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    const open = (headers: Record<string, string>, query = "") =>
      new Promise<{ lines: string[]; close: () => void; waitFor: (re: RegExp) => Promise<void> }>((resolve, reject) => {
        const lines: string[] = [];
        const waiters: Array<() => void> = [];
        const req = request(
          {
            host: "127.0.0.1",
            port,
            path: `/api/v1/events?follow=1${query}`,
            headers: { cookie: view.cookie, ...headers },
          },
          (res) => {
            assert.equal(res.statusCode, 200);
            res.setEncoding("utf8");
            res.on("data", (chunk: string) => {
              lines.push(...chunk.split("\n"));
              for (const w of waiters.splice(0)) w();
            });
            resolve({
              lines,
              close: () => req.destroy(),
              waitFor: async (re) => {
                for (let i = 0; i < 50 && !lines.some((l) => re.test(l)); i++) {
                  await Promise.race([
                    new Promise<void>((r) => waiters.push(r)),
                    new Promise((r) => setTimeout(r, 100)),
                  ]);
                }
                assert.ok(
                  lines.some((l) => re.test(l)),
                  `saw ${re} in ${lines.join("|")}`,
                );
              },
            });
          },
        );
        req.on("error", reject);
        req.end();
      });
    const first = await open({});
    const a = f.events.emit({ step: "dhcp.discover", result: "ok", machine: "node-01", mac: "aa:bb:cc:dd:ee:01" });
    const stranger = f.events.emit({
      step: "dhcp.discover",
      result: "ignored",
      mac: "aa:bb:cc:dd:ee:77",
      reason: "unknown-mac",
    });
    await first.waitFor(new RegExp(`^id: ${stranger.seq}$`));
    assert.ok(first.lines.includes(`id: ${a.seq}`));
    assert.ok(first.lines.includes("event: machine-event"));
    first.close();
    // Missed while disconnected: replayed after Last-Event-ID, nothing before it.
    const b = f.events.emit({ step: "tftp.transfer", result: "ok", machine: "node-02" });
    const c = f.events.emit({ step: "http.artifact", result: "ok", machine: "node-01" });
    const resumed = await open({ "last-event-id": String(a.seq) });
    await resumed.waitFor(new RegExp(`^id: ${c.seq}$`));
    assert.ok(resumed.lines.includes(`id: ${b.seq}`));
    assert.ok(!resumed.lines.includes(`id: ${a.seq}`), "no double");
    resumed.close();
    const gone = await open({}, "&since=5");
    await gone.waitFor(/^event: gone$/);
    const d = f.events.emit({ step: "pxe.disable", result: "ok", machine: "node-01" });
    await gone.waitFor(new RegExp(`^id: ${d.seq}$`));
    gone.close();
    const unauth = await f.app.inject({ method: "GET", url: "/api/v1/events?follow=1" });
    assert.equal(unauth.statusCode, 401);
    const history = (await get(`/events?since=${a.seq}`)).json();
    assert.deepEqual(
      history.events.map((e: any) => e.seq),
      [b.seq, c.seq, d.seq],
    );
  });

  it("answers READ_ONLY_INVENTORY for Machine writes on a backend without a writer (cluster mode)", async () => {
    const api = await apiFixture();
    try {
      const headers = { "x-metalman-user": "alice" };
      const machine = { metadata: { name: "node-09" }, spec: {} };
      for (const [method, url] of [
        ["POST", "/api/v1/machines"],
        ["PUT", "/api/v1/machines/node-01"],
        ["DELETE", "/api/v1/machines/node-01"],
      ] as const) {
        const res = await api.app.inject({
          method,
          url,
          headers,
          payload: method === "DELETE" ? undefined : { machine },
        });
        assert.equal(res.statusCode, 409, `${method} ${url}`);
        assert.equal(res.json().error.code, "READ_ONLY_INVENTORY");
      }
    } finally {
      await api.close();
    }
  });
});
