/**
 * Interface-mode DHCP listens on the named interface only (spec §3): the server namespace has
 * two segments, metalman runs with `--dhcp-interface iso0`, and a real udhcpc on each segment
 * asks for its (known) Machine's lease. Only the iso0 client may get an answer; the iso1
 * client's broadcasts must never even reach the appliance. Needs root; see test/lab/README.md.
 *
 *   [mmiso-c1] cli0 <=> iso0 10.232.1.1/24 [mmiso-srv] iso1 10.232.2.1/24 <=> cli0 [mmiso-c2]
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import {
  Appliance,
  addAddress,
  addNamespace,
  type DhcpLeaseSeen,
  destroyNamespaces,
  labSuite,
  makeScratchDir,
  removeDir,
  runOk,
  runUdhcpc,
  setMac,
  writeImage,
  writeInventory,
} from "./harness.js";

const PREFIX = "mmiso";
const SERVER_NS = `${PREFIX}-srv`;
const CLIENT_IF = "cli0";

interface Segment {
  serverIf: string;
  serverIp: string;
  clientNs: string;
}

const served: Segment = { serverIf: "iso0", serverIp: "10.232.1.1", clientNs: `${PREFIX}-c1` };
const unserved: Segment = { serverIf: "iso1", serverIp: "10.232.2.1", clientNs: `${PREFIX}-c2` };
const ALL_NAMESPACES = [served.clientNs, unserved.clientNs, SERVER_NS];

const machineA = {
  name: "iso-a",
  leases: [{ mac: "02:4d:49:00:00:0a", ipv4: "10.232.1.10", subnetMask: "255.255.255.0", gateway: "10.232.1.254" }],
};
const machineB = {
  name: "iso-b",
  leases: [{ mac: "02:4d:49:00:00:0b", ipv4: "10.232.2.10", subnetMask: "255.255.255.0", gateway: "10.232.2.254" }],
};

/** One veth pair: `serverIf` (numbered) in the server namespace, `cli0` (unnumbered) in the client's. */
async function wireSegment(segment: Segment, tempName: string): Promise<void> {
  const peer = `${tempName}p`;
  await runOk(["ip", "link", "add", tempName, "netns", SERVER_NS, "type", "veth", "peer", "name", peer]);
  await runOk(["ip", "link", "set", peer, "netns", segment.clientNs]);
  await runOk(["ip", "-n", SERVER_NS, "link", "set", tempName, "name", segment.serverIf]);
  await runOk(["ip", "-n", segment.clientNs, "link", "set", peer, "name", CLIENT_IF]);
  await addAddress(SERVER_NS, segment.serverIf, `${segment.serverIp}/24`);
  await runOk(["ip", "-n", SERVER_NS, "link", "set", segment.serverIf, "up"]);
  await runOk(["ip", "-n", segment.clientNs, "link", "set", CLIENT_IF, "up"]);
}

/** Packets the server namespace's `dev` has received so far (from `ip -s -j link`). */
async function rxPackets(dev: string): Promise<number> {
  const result = await runOk(["ip", "-n", SERVER_NS, "-s", "-j", "link", "show", "dev", dev], { timeoutMs: 10_000 });
  const [link] = JSON.parse(result.stdout) as { stats64?: { rx?: { packets?: number } } }[];
  return Number(link?.stats64?.rx?.packets ?? Number.NaN);
}

function describeLease(lease: DhcpLeaseSeen, appliance: Appliance | undefined): string {
  const { raw: _raw, ...seen } = lease;
  return `client saw ${JSON.stringify(seen)}\n--- metalman log tail ---\n${appliance?.process.tail() ?? "(not started)"}`;
}

labSuite("DHCP: interface mode answers only on the named interface (--dhcp-interface iso0)", ["busybox"], () => {
  let scratch: string | undefined;
  let appliance: Appliance | undefined;

  before(async () => {
    await destroyNamespaces(ALL_NAMESPACES); // leftovers of an interrupted run
    scratch = await makeScratchDir(PREFIX);
    for (const ns of ALL_NAMESPACES) await addNamespace(ns);
    // The temporary names live in the root namespace for a moment: keep them unique to this file.
    await wireSegment(served, `${PREFIX}-a`);
    await wireSegment(unserved, `${PREFIX}-b`);
    await setMac(served.clientNs, CLIENT_IF, machineA.leases[0].mac);
    await setMac(unserved.clientNs, CLIENT_IF, machineB.leases[0].mac);
    const image = await writeImage(scratch, 1024 * 1024);
    const inventoryDir = await writeInventory(scratch, image, [machineA, machineB]);
    appliance = await Appliance.start(
      { ns: SERVER_NS, bindAddress: served.serverIp, inventoryDir, dhcpInterface: served.serverIf },
      scratch,
    );
  });

  after(async () => {
    await appliance?.stop();
    await destroyNamespaces(ALL_NAMESPACES);
    await removeDir(scratch);
  });

  // B runs before A on purpose: A's later ACK in the log proves the appliance was up and logging
  // all through B's attempts, so B's absence from the log is not a matter of timing.
  it("udhcpc on iso1 gets no lease, although its MAC is a known Machine", async () => {
    assert.ok(scratch);
    const rxBefore = await rxPackets(unserved.serverIf);
    const lease = await runUdhcpc({
      ns: unserved.clientNs,
      dev: CLIENT_IF,
      scratchDir: scratch,
      tries: 3,
      timeoutMs: 20_000,
    });
    assert.equal(lease.ok, false, describeLease(lease, appliance));
    // The broadcasts did arrive on the server's iso1: the silence is the appliance's doing.
    const rxAfter = await rxPackets(unserved.serverIf);
    assert.ok(rxAfter - rxBefore >= 3, `iso1 received ${rxAfter - rxBefore} packets during udhcpc's 3 tries`);
  });

  it("udhcpc on iso0 gets Machine A's lease from 10.232.1.1", async () => {
    assert.ok(scratch);
    const lease = await runUdhcpc({ ns: served.clientNs, dev: CLIENT_IF, scratchDir: scratch, timeoutMs: 20_000 });
    const why = describeLease(lease, appliance);
    assert.equal(lease.ok, true, `no lease\n${lease.output}\n${why}`);
    assert.equal(lease.ip, "10.232.1.10", why);
    assert.equal(lease.mask, "255.255.255.0", why);
    assert.deepEqual(lease.routers, ["10.232.1.254"], why);
    assert.equal(lease.serverId, served.serverIp, why);
  });

  it("boot events show A's offer and ack, and nothing at all for B's MAC", () => {
    assert.ok(appliance);
    const records = appliance.logRecords();
    const macA = machineA.leases[0].mac;
    const macB = machineB.leases[0].mac;
    const stepsForA = new Set(
      records.filter((r) => r.component === "boot" && r.mac === macA && r.result === "ok").map((r) => String(r.step)),
    );
    const tail = appliance.process.tail();
    assert.ok(stepsForA.has("dhcp.offer"), `no dhcp.offer for ${macA}:\n${tail}`);
    assert.ok(stepsForA.has("dhcp.ack"), `no dhcp.ack for ${macA}:\n${tail}`);
    // Not even a dhcp.discover or dhcp.ignored: the iso1 packets never reached the appliance.
    const mentioningB = records.filter((r) => JSON.stringify(r).toLowerCase().includes(macB));
    assert.deepEqual(mentioningB, [], `records mentioning ${macB}`);
  });
});
