/**
 * Real DHCP clients against the appliance (spec §3): busybox udhcpc and ISC dhclient on the lab's
 * veth segment with metalman in interface mode, and udhcpc behind isc-dhcp-relay with metalman in
 * relay mode. Needs root; see test/lab/README.md.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import {
  Appliance,
  type DhcpLeaseSeen,
  labSuite,
  makeScratchDir,
  type NsProcess,
  type RelayLab,
  relayLabDown,
  relayLabUp,
  removeDir,
  runDhclient,
  runUdhcpc,
  setMac,
  startDhcrelay,
  type VethLab,
  vethLabDown,
  vethLabUp,
  writeImage,
  writeInventory,
} from "./harness.js";

const SMALL_IMAGE = 1024 * 1024;

/** The boot file may come as option 67 or in the BOOTP `file` field; both are legal. */
function bootFileOf(lease: DhcpLeaseSeen): string | undefined {
  return lease.bootfileName ?? lease.file;
}

function describeLease(lease: DhcpLeaseSeen, appliance: Appliance | undefined): string {
  const { raw: _raw, ...seen } = lease;
  return `client saw ${JSON.stringify(seen)}\n--- metalman log tail ---\n${appliance?.process.tail() ?? "(not started)"}`;
}

labSuite("DHCP: real clients, interface mode (--dhcp-interface srv0)", ["busybox", "dhclient"], () => {
  const machine = {
    name: "lab-dhcp",
    leases: [
      {
        mac: "02:4d:4d:00:00:01",
        ipv4: "10.213.10.1",
        subnetMask: "255.255.0.0",
        gateway: "10.213.0.254",
        dns: ["10.213.0.53", "10.213.0.54"],
      },
    ],
  };
  const unknownMac = "02:4d:4d:00:00:99";
  let lab: VethLab | undefined;
  let scratch: string | undefined;
  let appliance: Appliance | undefined;

  before(async () => {
    scratch = await makeScratchDir("mmd");
    lab = await vethLabUp("mmd", { staticClient: false });
    const image = await writeImage(scratch, SMALL_IMAGE);
    const inventoryDir = await writeInventory(scratch, image, [machine]);
    appliance = await Appliance.start(
      { ns: lab.serverNs, bindAddress: lab.serverIp, inventoryDir, dhcpInterface: lab.serverIf },
      scratch,
    );
  });

  after(async () => {
    await appliance?.stop();
    await vethLabDown(lab);
    await removeDir(scratch);
  });

  function assertStaticLease(lease: DhcpLeaseSeen): void {
    const why = describeLease(lease, appliance);
    assert.equal(lease.ok, true, `no lease\n${lease.output}\n${why}`);
    assert.equal(lease.ip, "10.213.10.1", why);
    assert.equal(lease.mask, "255.255.0.0", why);
    assert.deepEqual(lease.routers, ["10.213.0.254"], why);
    assert.deepEqual(lease.dns, ["10.213.0.53", "10.213.0.54"], why);
    assert.equal(lease.serverId, "10.213.0.1", why);
    assert.equal(lease.siaddr, "10.213.0.1", why);
    assert.equal(bootFileOf(lease), "shimx64.efi", why);
    if (lease.tftpServerName !== undefined) assert.equal(lease.tftpServerName, "10.213.0.1", why);
  }

  it("busybox udhcpc gets the Machine's static lease and boot file", async () => {
    assert.ok(lab && scratch);
    await setMac(lab.clientNs, lab.clientIf, machine.leases[0].mac);
    assertStaticLease(await runUdhcpc({ ns: lab.clientNs, dev: lab.clientIf, scratchDir: scratch }));
  });

  it("ISC dhclient gets the Machine's static lease and boot file", async () => {
    assert.ok(lab && scratch);
    await setMac(lab.clientNs, lab.clientIf, machine.leases[0].mac);
    assertStaticLease(await runDhclient({ ns: lab.clientNs, dev: lab.clientIf, scratchDir: scratch }));
  });

  it("a PXE client (vendor class PXEClient, arch 7) gets the same lease", async () => {
    assert.ok(lab && scratch);
    await setMac(lab.clientNs, lab.clientIf, machine.leases[0].mac);
    const lease = await runUdhcpc({
      ns: lab.clientNs,
      dev: lab.clientIf,
      scratchDir: scratch,
      vendorClass: "PXEClient:Arch:00007:UNDI:003016",
      arch: 7,
    });
    assertStaticLease(lease);
  });

  it("an unknown MAC gets no lease and is recorded in discovered.json", async () => {
    assert.ok(lab && scratch && appliance);
    await setMac(lab.clientNs, lab.clientIf, unknownMac);
    const lease = await runUdhcpc({
      ns: lab.clientNs,
      dev: lab.clientIf,
      scratchDir: scratch,
      tries: 2,
      vendorClass: "PXEClient:Arch:00007:UNDI:003016",
      arch: 7,
    });
    assert.equal(lease.ok, false, describeLease(lease, appliance));
    // discovered.json is flushed every few seconds and on shutdown: poll, then force the shutdown flush.
    let entry = await appliance.waitDiscovered(unknownMac, 12_000);
    if (entry === undefined) {
      await appliance.stop();
      entry = (await appliance.readDiscovered()).find((e) => String(e.mac).toLowerCase() === unknownMac);
    }
    assert.ok(entry, `${unknownMac} not in ${appliance.discoveredPath}\n${appliance.process.tail()}`);
    assert.match(String(entry.vendorClass ?? ""), /PXEClient/, JSON.stringify(entry));
    assert.equal(Number(entry.arch), 7, JSON.stringify(entry));
  });
});

labSuite("DHCP: udhcpc through isc-dhcp-relay, relay mode (no --dhcp-interface)", ["busybox", "dhcrelay"], () => {
  const machine = {
    name: "lab-relay",
    leases: [
      {
        mac: "02:4d:4d:00:00:02",
        ipv4: "10.214.2.50",
        subnetMask: "255.255.255.0",
        gateway: "10.214.2.1",
        dns: ["10.214.1.53"],
      },
    ],
  };
  // A Machine whose NIC sits on the server's own segment: in relay mode its direct broadcasts
  // (giaddr 0) must stay unanswered even though the MAC is known.
  const directMachine = {
    name: "lab-relay-direct",
    leases: [{ mac: "02:4d:4d:00:00:03", ipv4: "10.214.1.50", subnetMask: "255.255.255.0", gateway: "10.214.1.1" }],
  };
  let lab: RelayLab | undefined;
  let scratch: string | undefined;
  let appliance: Appliance | undefined;
  let relay: NsProcess | undefined;

  before(async () => {
    scratch = await makeScratchDir("mmr");
    lab = await relayLabUp("mmr");
    const image = await writeImage(scratch, SMALL_IMAGE);
    const inventoryDir = await writeInventory(scratch, image, [machine, directMachine]);
    appliance = await Appliance.start({ ns: lab.serverNs, bindAddress: lab.serverIp, inventoryDir }, scratch);
    relay = startDhcrelay(lab, scratch);
    // dhcrelay prints its interfaces once its sockets are open; packets sent earlier are lost
    const ready = await relay.waitForLine(/Sending on\s+Socket\/fallback/, 10_000);
    assert.ok(ready, `dhcrelay did not come up:\n${relay.tail()}`);
  });

  after(async () => {
    await relay?.stop();
    await appliance?.stop();
    await relayLabDown(lab);
    await removeDir(scratch);
  });

  it("udhcpc on the far subnet gets the Machine's lease via the relay", async () => {
    assert.ok(lab && scratch);
    await setMac(lab.clientNs, lab.clientIf, machine.leases[0].mac);
    const lease = await runUdhcpc({ ns: lab.clientNs, dev: lab.clientIf, scratchDir: scratch });
    const why = `${describeLease(lease, appliance)}\n--- dhcrelay ---\n${relay?.tail(20)}`;
    assert.equal(lease.ok, true, `no lease\n${lease.output}\n${why}`);
    assert.equal(lease.ip, "10.214.2.50", why);
    assert.equal(lease.mask, "255.255.255.0", why);
    assert.deepEqual(lease.routers, ["10.214.2.1"], why);
    assert.deepEqual(lease.dns, ["10.214.1.53"], why);
    assert.equal(lease.serverId, lab.serverIp, why);
    assert.equal(lease.siaddr, lab.serverIp, why);
    assert.equal(bootFileOf(lease), "shimx64.efi", why);
  });

  it("a known MAC broadcasting directly on the server segment (giaddr 0) gets no answer", async () => {
    assert.ok(lab && scratch && appliance);
    // stop the relay first, so nothing could forward this broadcast with a giaddr
    await relay?.stop();
    await setMac(lab.relayNs, lab.relayServerIf, directMachine.leases[0].mac);
    // (whether the relay-mode socket does not see the broadcast at all or drops it as
    // "not relayed" is the appliance's business; the client must just get nothing)
    const lease = await runUdhcpc({ ns: lab.relayNs, dev: lab.relayServerIf, scratchDir: scratch, tries: 2 });
    assert.equal(lease.ok, false, describeLease(lease, appliance));
  });
});
