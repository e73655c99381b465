/**
 * `GET /appliance`'s facts (server/app/appliance-info.ts): the appliance image's first-boot status
 * (appliance.yaml's errors) as metalman-config writes it, the upstream cluster's status as flat
 * facts with the mode it implies, the overlay line; a missing or garbled status file is said.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { applianceInfoProvider, readApplianceConfigStatus } from "../../../server/app/appliance-info.js";
import type { UpstreamStatus } from "../../../server/cluster/upstream-status.js";
import type { DerivedAddresses } from "../../../server/config/derive-addresses.js";

const addresses = { dhcpMode: "interface", serverIp: "10.0.0.1", serveUrl: "http://10.0.0.1:8880" } as DerivedAddresses;
const readiness = () => ({ ok: true, checks: { http: { ok: true } } }) as never;

describe("appliance facts", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "mm-appliance-info-"));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it("reads appliance.yaml's errors, notices, image version and slot from the first-boot status file", async () => {
    const file = path.join(dir, "appliance-status.json");
    await writeFile(
      file,
      JSON.stringify({
        imageVersion: "0.1.0-t1",
        slot: "a",
        errors: ["colour: unknown setting", 7],
        notices: ["kubeconfig: ignored in standalone mode"],
        site: "rack-a",
        mode: "standalone",
      }),
    );
    const info = applianceInfoProvider({
      readiness,
      addresses,
      consoleInfo: () => undefined,
      listeners: {},
      applianceStatusFile: file,
    })();
    assert.deepEqual(info.config, {
      file,
      errors: ["colour: unknown setting"],
      notices: ["kubeconfig: ignored in standalone mode"],
      site: "rack-a",
      imageVersion: "0.1.0-t1",
      slot: "a",
    });
    assert.equal(info.mode, "standalone");
    assert.equal(info.upstream, undefined);
  });

  it("says why when the status file is missing or not JSON, and never throws", async () => {
    assert.equal(readApplianceConfigStatus(path.join(dir, "none.json"))?.unreadable, "not written yet");
    const bad = path.join(dir, "bad.json");
    await writeFile(bad, "{ not json");
    assert.deepEqual(readApplianceConfigStatus(bad), {
      file: bad,
      errors: [],
      notices: [],
      unreadable: "not valid JSON",
    });
  });

  it("cluster mode: the upstream as flat facts, the leader, the overlay line", () => {
    const upstream: UpstreamStatus = {
      mode: "cluster",
      server: "https://10.0.0.5:6443",
      site: "rack-a",
      connection: "offline",
      offlineSince: "2026-12-02T01:00:00Z",
      lastSyncAt: "2026-12-02T00:59:00Z",
      lastError: "connect ECONNREFUSED",
      servingFrom: "last-known",
      queuedUpdates: 2,
      replayedUpdates: 0,
      machines: 12,
      resourceVersion: "42",
      leader: { lease: "unbounded-kube/metalman-rack-a", identity: "box_1", isLeader: false, holder: "box_2" },
    };
    const info = applianceInfoProvider({
      readiness,
      addresses,
      consoleInfo: () => undefined,
      listeners: {},
      upstream: () => upstream,
      overlay: () => "overlay up: 2/2 tunnels healthy",
    })();
    assert.equal(info.mode, "cluster");
    assert.equal(info.overlay, "overlay up: 2/2 tunnels healthy");
    assert.deepEqual(info.upstream, {
      server: "https://10.0.0.5:6443",
      connection: "offline",
      "serving from": "last-known",
      machines: 12,
      leader: "box_2",
      lease: "unbounded-kube/metalman-rack-a",
      "queued status updates": 2,
      "last sync": "2026-12-02T00:59:00Z",
      "offline since": "2026-12-02T01:00:00Z",
      "last error": "connect ECONNREFUSED",
    });
    assert.equal(info.config, undefined, "not an appliance image: no config status");
  });
});
