/**
 * Issue 5 §1.5 with real clients: metalman in relay mode behind isc-dhcp-relay. ISC dhclient
 * gets its lease through the relay, configures it, and at T1 unicasts a RENEWING REQUEST
 * (ciaddr set, giaddr 0) straight to the server id, routed by the relay namespace with the
 * relay agent stopped; RFC 2131 §4.3.2 wants it answered (before: "not-relayed", so the
 * client would wait for T2 and rebind). (The lease time stays the server's; dhclient.conf shortens T1
 * with `supersede dhcp-renewal-time`.) A forged relayed DISCOVER with a giaddr outside the
 * lease's subnet gets no reply, checked with tcpdump on the server's NIC. Namespace prefix m1b.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { encode } from "../../server/dhcp/codec.js";
import { u8Option } from "../../server/dhcp/options.js";
import { DhclientRun } from "./dhcp-lab-clients.js";
import {
  Appliance,
  labSuite,
  makeScratchDir,
  NsProcess,
  type RelayLab,
  relayLabDown,
  relayLabUp,
  removeDir,
  setMac,
  startDhcrelay,
  writeImage,
  writeInventory,
} from "./harness.js";

const MAC = "02:4d:32:00:00:01";
const LEASE_IP = "10.214.2.60";

labSuite("DHCP relay mode: unicast RENEWING from dhclient, forged giaddr", ["dhclient", "dhcrelay", "tcpdump"], () => {
  let lab: RelayLab | undefined;
  let scratch: string | undefined;
  let appliance: Appliance | undefined;
  let relay: NsProcess | undefined;
  let client: DhclientRun | undefined;

  before(async () => {
    scratch = await makeScratchDir("m1b");
    lab = await relayLabUp("m1b");
    const image = await writeImage(scratch, 1024 * 1024);
    const inventoryDir = await writeInventory(scratch, image, [
      {
        name: "lab-renew",
        leases: [{ mac: MAC, ipv4: LEASE_IP, subnetMask: "255.255.255.0", gateway: lab.relayClientIp }],
      },
    ]);
    appliance = await Appliance.start({ ns: lab.serverNs, bindAddress: lab.serverIp, inventoryDir }, scratch);
    relay = startDhcrelay(lab, scratch);
    const ready = await relay.waitForLine(/Sending on\s+Socket\/fallback/, 10_000);
    assert.ok(ready, `dhcrelay did not come up:\n${relay.tail()}`);
  });

  after(async () => {
    await client?.stop();
    await relay?.stop();
    await appliance?.stop();
    await relayLabDown(lab);
    await removeDir(scratch);
  });

  it("dhclient's RENEWING unicast (ciaddr = lease, no relay) is ACKed straight to the lease address", async () => {
    assert.ok(lab && scratch && appliance);
    await setMac(lab.clientNs, lab.clientIf, MAC);
    client = await DhclientRun.start(lab.clientNs, lab.clientIf, scratch, [
      "supersede dhcp-renewal-time 3;",
      "request subnet-mask, routers, domain-name-servers, host-name, bootfile-name;",
    ]);
    const bound = await client.waitReason("BOUND", 30_000);
    assert.ok(bound, `dhclient did not bind\n${client.process.tail()}\n--- metalman ---\n${appliance.process.tail()}`);
    // dhcrelay's raw socket on the client link would also pick up the unicast and relay it
    // (giaddr set). Routers that relay only broadcasts are the common case: stop the agent, the
    // relay namespace keeps routing.
    await relay?.stop();
    const renewed = await client.waitReason("RENEW", 25_000);
    const context = `reasons ${JSON.stringify(await client.reasons())}\n--- dhclient ---\n${client.process.tail()}\n--- metalman ---\n${appliance.process.tail()}`;
    assert.ok(renewed, `no RENEW (a unicast REQUEST unanswered falls back to REBIND at T2)\n${context}`);
    const env = await client.envOf("RENEW");
    assert.equal(env.new_ip_address, LEASE_IP, context);
    assert.equal(env.new_dhcp_server_identifier, lab.serverIp, context);
    // The appliance saw it as a direct (unrelayed) REQUEST from the lease address and ACKed it.
    const acks = appliance
      .logRecords()
      .filter((r) => r.step === "dhcp.request" && r.ip === LEASE_IP && r.relay === undefined && r.result === "ok");
    assert.ok(acks.length > 0, context);
  });

  it("dhclient -r: the unicast RELEASE of the known client is recorded", async () => {
    assert.ok(lab && scratch && appliance && client);
    await client.release();
    const deadline = Date.now() + 5_000;
    const released = () =>
      appliance?.logRecords().some((r) => r.step === "dhcp.release" && r.machine === "lab-renew" && r.mac === MAC);
    while (!released() && Date.now() < deadline) await sleep(200);
    assert.ok(released(), `no dhcp.release event\n${appliance.process.tail()}`);
    client = undefined;
  });

  it("a relayed DISCOVER whose giaddr is outside the lease's subnet is not answered anywhere", async () => {
    assert.ok(lab && scratch && appliance);
    // Capture every UDP datagram the appliance sends out of its NIC while we forge requests.
    const capture = new NsProcess(lab.serverNs, [
      "tcpdump",
      "-l",
      "-n",
      "-i",
      "srv0",
      "udp",
      "and",
      "src",
      lab.serverIp,
    ]);
    try {
      await capture.waitForLine(/listening on/, 5_000);
      // From the relay namespace (a host on the server's segment): giaddr = its own address
      // 10.214.1.2 (not the lease's 10.214.2.0/24), and giaddr = an address nobody has.
      for (const giaddr of [lab.relayServerIp, "10.214.1.77"]) {
        const packet = encode({
          op: 1,
          htype: 1,
          hlen: 6,
          hops: 1,
          xid: 0x4d314200,
          secs: 0,
          flags: 0,
          ciaddr: "0.0.0.0",
          yiaddr: "0.0.0.0",
          siaddr: "0.0.0.0",
          giaddr,
          chaddr: Buffer.concat([Buffer.from(MAC.replace(/:/g, ""), "hex"), Buffer.alloc(10)]),
          sname: "",
          file: "",
          options: new Map([[53, u8Option(1)]]),
        });
        await sendFromNs(lab.relayNs, packet, lab.serverIp);
      }
      await sleep(1_500);
      const sent = capture.lines.filter((l) => /\.67 > /.test(l));
      assert.deepEqual(sent, [], `the appliance sent:\n${capture.tail()}`);
      const ignored = appliance.logRecords().filter((r) => r.reason === "giaddr-outside-lease-subnet");
      assert.ok(ignored.length >= 2, `the appliance did not see/refuse them\n${appliance.process.tail()}`);
    } finally {
      await capture.stop(2_000);
    }
  });
});

/** One UDP datagram to server:67 from inside `ns` (a short-lived node process; stopped by PID). */
async function sendFromNs(ns: string, packet: Buffer, server: string): Promise<void> {
  const code = `const s=require("dgram").createSocket("udp4");s.send(Buffer.from("${packet.toString("hex")}","hex"),67,"${server}",()=>s.close());`;
  const sender = new NsProcess(ns, [process.execPath, "-e", code]);
  const done = await sender.waitExit(5_000);
  if (!done) await sender.stop(1_000);
}
