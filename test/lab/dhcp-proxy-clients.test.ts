/**
 * proxyDHCP beside the site's DHCP server, with real clients (issue 5 §1.2): dnsmasq hands out
 * addresses (no boot options), metalman runs with `--dhcp-mode proxy` on the same segment.
 * The operator's fear is a second DHCP server on the LAN: ordinary clients, even ones whose MAC
 * is a Machine's, must keep getting exactly the site server's lease and never a packet from us;
 * a client that says PXEClient gets a proxy offer (no address) and still binds to the site lease.
 * The firmware boots are in test/vm/proxy-dhcp-boot.test.ts.
 *
 *   [m2c-site] site0 10.78.0.2 (dnsmasq) ─┐
 *   [m2c-lan]  br0 10.78.0.1 (metalman)  ─┼─ bridge
 *   [m2c-cli]  cli0 (udhcpc, dhclient)   ─┘
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, it } from "node:test";
import {
  Appliance,
  addAddress,
  addNamespace,
  destroyNamespaces,
  labSuite,
  makeScratchDir,
  NsProcess,
  removeDir,
  runDhclient,
  runOk,
  runUdhcpc,
  setMac,
  writeImage,
  writeInventory,
} from "./harness.js";

const PREFIX = "m2c";
const LAN_NS = `${PREFIX}-lan`;
const SITE_NS = `${PREFIX}-site`;
const CLIENT_NS = `${PREFIX}-cli`;
const ALL_NAMESPACES = [CLIENT_NS, SITE_NS, LAN_NS];
const SERVER_IP = "10.78.0.1";
const SITE_IP = "10.78.0.2";

const plainMachine = { name: "proxy-plain", mac: "02:4d:50:00:00:0a", ipv4: "10.78.0.10" };
const pxeMachine = { name: "proxy-pxe", mac: "02:4d:50:00:00:0b", ipv4: "10.78.0.11" };

/** A veth pair with one end (`inside`) in `ns` and the other enslaved to br0 in the LAN namespace. */
async function attach(ns: string, inside: string, tempName: string): Promise<void> {
  await runOk(["ip", "link", "add", tempName, "netns", LAN_NS, "type", "veth", "peer", "name", `${tempName}p`]);
  await runOk(["ip", "link", "set", `${tempName}p`, "netns", ns]);
  await runOk(["ip", "-n", ns, "link", "set", `${tempName}p`, "name", inside]);
  await runOk(["ip", "-n", LAN_NS, "link", "set", tempName, "master", "br0", "up"]);
  await runOk(["ip", "-n", ns, "link", "set", inside, "up"]);
}

labSuite("proxyDHCP beside dnsmasq: real clients keep the site's lease", ["busybox", "dhclient", "dnsmasq"], () => {
  let scratch: string | undefined;
  let appliance: Appliance | undefined;
  let dnsmasq: NsProcess | undefined;

  before(async () => {
    await destroyNamespaces(ALL_NAMESPACES); // leftovers of an interrupted run
    scratch = await makeScratchDir(PREFIX);
    for (const ns of ALL_NAMESPACES) await addNamespace(ns);
    await runOk(["ip", "-n", LAN_NS, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"]);
    await addAddress(LAN_NS, "br0", `${SERVER_IP}/24`);
    await runOk(["ip", "-n", LAN_NS, "link", "set", "br0", "up"]);
    await attach(SITE_NS, "site0", "m2cs");
    await addAddress(SITE_NS, "site0", `${SITE_IP}/24`);
    await attach(CLIENT_NS, "cli0", "m2cc");

    dnsmasq = new NsProcess(SITE_NS, [
      ...["dnsmasq", "--no-daemon", "--port=0", "--interface=site0", "--bind-interfaces", "--log-dhcp"],
      ...["--log-facility=-", "--user=root", "--conf-file=/dev/null", "--pid-file="],
      ...["--dhcp-range=10.78.0.100,10.78.0.150,255.255.255.0,10m", "--dhcp-authoritative"],
      `--dhcp-leasefile=${path.join(scratch, "dnsmasq.leases")}`,
      ...[plainMachine, pxeMachine].map((m) => `--dhcp-host=${m.mac},${m.ipv4}`),
    ]);
    assert.ok(await dnsmasq.waitForLine(/DHCP, sockets bound/, 10_000), `dnsmasq did not start:\n${dnsmasq.tail()}`);

    const image = await writeImage(scratch, 1024);
    const inventoryDir = await writeInventory(
      scratch,
      image,
      [plainMachine, pxeMachine].map((m) => ({
        name: m.name,
        leases: [{ mac: m.mac, ipv4: m.ipv4, subnetMask: "255.255.255.0", gateway: SITE_IP }],
      })),
    );
    appliance = await Appliance.start(
      { ns: LAN_NS, bindAddress: SERVER_IP, inventoryDir, dhcpInterface: "br0", dhcpMode: "proxy", logLevel: "debug" },
      scratch,
    );
  });

  after(async () => {
    await appliance?.stop();
    await dnsmasq?.stop();
    await destroyNamespaces(ALL_NAMESPACES);
    await removeDir(scratch);
  });

  it("an ordinary client of a known Machine gets the site lease and nothing from us", async () => {
    await setMac(CLIENT_NS, "cli0", plainMachine.mac);
    const repliesBefore = await appliance!.metricValue("metalman_dhcp_replies_sent_total");
    const lease = await runUdhcpc({ ns: CLIENT_NS, dev: "cli0", scratchDir: scratch! });
    const log = `\n--- metalman ---\n${appliance?.process.tail()}\n--- dnsmasq ---\n${dnsmasq?.tail()}`;
    assert.ok(lease.ok, `udhcpc got no lease: ${lease.output}${log}`);
    assert.equal(lease.ip, plainMachine.ipv4, log);
    assert.equal(lease.serverId, SITE_IP, `the lease must come from the site server${log}`);
    assert.equal(lease.bootfileName, undefined, `a plain client gets no boot file${log}`);
    assert.equal(await appliance!.metricValue("metalman_dhcp_replies_sent_total"), repliesBefore, log);
    assert.ok((await appliance!.metricValue("metalman_dhcp_ignored_total", { reason: "not-pxe-client" })) >= 1, log);
  });

  it("a client that says PXEClient gets a proxy offer, yet binds to the site server's address", async () => {
    await setMac(CLIENT_NS, "cli0", pxeMachine.mac);
    const offersBefore = await appliance!.metricValue("metalman_dhcp_replies_sent_total", { type: "offer" });
    const lease = await runDhclient({
      ns: CLIENT_NS,
      dev: "cli0",
      scratchDir: scratch!,
      // x64 UEFI (Arch 7): the test image has a UEFI file and no BIOS one, and the file is chosen by architecture.
      vendorClass: "PXEClient:Arch:00007:UNDI:003016",
    });
    const log = `\n--- metalman ---\n${appliance?.process.tail()}\n--- dnsmasq ---\n${dnsmasq?.tail()}`;
    assert.ok(lease.ok, `dhclient got no lease: ${lease.output}${log}`);
    assert.equal(lease.ip, pxeMachine.ipv4, log);
    assert.equal(lease.serverId, SITE_IP, `dhclient must bind to the site server's offer${log}`);
    const offers = (await appliance!.metricValue("metalman_dhcp_replies_sent_total", { type: "offer" })) - offersBefore;
    assert.ok(offers >= 1, `no proxy offer sent${log}`);
    const proxyOffers = appliance!
      .logRecords()
      .filter((r) => r.step === "dhcp.offer" && r.mac === pxeMachine.mac && r.machine === pxeMachine.name);
    assert.ok(proxyOffers.length >= 1, log);
    assert.ok(
      proxyOffers.every((r) => r.proxy === true),
      "every offer we made is a proxy offer (no address)",
    );
  });
});
