/**
 * Issue 5 §1.6 with real clients. busybox udhcpc asks for 576-byte messages (option 57) and
 * in its INIT state reads replies into a 576-byte IP datagram buffer plus 80 bytes of slack
 * "for buggy servers", ignoring anything larger ("oversized packet"); old PXE ROMs have
 * 548-byte buffers and no slack. A Machine with a long name and 60 DNS servers makes the plain
 * reply 634 bytes (662 as IP datagram, over even udhcpc's slack): it must arrive at most 548
 * bytes long, with option overload (52) carrying the rest in `file`/`sname`, and the clients
 * must see every option. ISC dhclient (no option 57 → 576) parses the overloaded reply too.
 * Namespace prefix m1c.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import {
  type Appliance,
  labSuite,
  runDhclient,
  runUdhcpc,
  startDhcpMachineLab,
  stopOneMachineLab,
  type VethLab,
} from "./harness.js";

const MAC = "02:4d:33:00:00:01";
const LEASE_IP = "10.213.33.1";
/** 95 characters: a DNS-1123 subdomain, as Machine names are. */
const NAME = "node-0001.rack-17.row-c.hall-3.datacenter-west-europe.provisioning.example-operator.internal";
const DNS = Array.from({ length: 60 }, (_, i) => `10.213.1.${i + 1}`);

labSuite("DHCP reply size: 548-byte clients get overloaded replies (udhcpc, dhclient)", ["busybox", "dhclient"], () => {
  let lab: VethLab | undefined;
  let scratch: string | undefined;
  let appliance: Appliance | undefined;

  before(async () => {
    ({ lab, scratch, appliance } = await startDhcpMachineLab("m1c", {
      name: NAME,
      lease: { mac: MAC, ipv4: LEASE_IP, subnetMask: "255.255.0.0", gateway: "10.213.0.254", dns: DNS },
    }));
  });

  after(() => stopOneMachineLab({ lab, scratch, appliance }));

  it("udhcpc (option 57 = 576) gets the lease with all 60 DNS servers, the host name and the boot file", async () => {
    assert.ok(lab && scratch && appliance);
    const lease = await runUdhcpc({
      requestHostname: true,
      ns: lab.clientNs,
      dev: lab.clientIf,
      scratchDir: scratch,
      tries: 3,
    });
    const why = `${lease.output}\n--- metalman ---\n${appliance.process.tail()}`;
    assert.equal(lease.ok, true, `no lease (a reply over 548 bytes is dropped as oversized)\n${why}`);
    assert.equal(lease.ip, LEASE_IP, why);
    assert.deepEqual(lease.dns, DNS, why);
    assert.equal(lease.hostname, NAME, why);
    assert.equal(lease.bootfileName, "shimx64.efi", why);
    const offer = appliance.logRecords().find((r) => r.step === "dhcp.offer" && r.mac === MAC);
    assert.ok(Number(offer?.overload) > 0, `offer not overloaded: ${JSON.stringify(offer)}`);
  });

  it("dhclient reads the overloaded reply as well", async () => {
    assert.ok(lab && scratch && appliance);
    const lease = await runDhclient({ ns: lab.clientNs, dev: lab.clientIf, scratchDir: scratch });
    const why = `${lease.output}\n--- metalman ---\n${appliance.process.tail()}`;
    assert.equal(lease.ok, true, why);
    assert.equal(lease.ip, LEASE_IP, why);
    assert.deepEqual(lease.dns, DNS, why);
    assert.equal(lease.raw.new_host_name, NAME, why);
    assert.equal(lease.bootfileName, "shimx64.efi", why);
  });
});
