/**
 * Issue 5 §1.1 with a real client: busybox udhcpc sends option 93 (and option 77 for iPXE) on
 * the veth lab, metalman in interface mode. The image has a BIOS iPXE loader and the upstream
 * x64 UEFI file but no iPXE script and no arm64 file, which used to give an arm64 client
 * shimx64.efi and a BIOS client already running iPXE undionly.kpxe again (a chainload loop).
 * Namespace prefix m1a.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import {
  type Appliance,
  type DhcpLeaseSeen,
  labSuite,
  runUdhcpc,
  startDhcpMachineLab,
  stopOneMachineLab,
  type VethLab,
} from "./harness.js";

const MAC = "02:4d:31:00:00:01";
const LEASE_IP = "10.213.31.1";

function why(lease: DhcpLeaseSeen, appliance: Appliance | undefined): string {
  const { raw: _raw, ...seen } = lease;
  return `client saw ${JSON.stringify(seen)}\n--- metalman log tail ---\n${appliance?.process.tail() ?? ""}`;
}

/** Boot events the appliance logged for MAC (pino lines with a `step`). */
function offerEvents(appliance: Appliance): Record<string, unknown>[] {
  return appliance.logRecords().filter((r) => r.step === "dhcp.offer" || r.step === "dhcp.ack");
}

labSuite("DHCP boot file by client architecture (udhcpc, option 93 and user class iPXE)", ["busybox"], () => {
  let lab: VethLab | undefined;
  let scratch: string | undefined;
  let appliance: Appliance | undefined;

  before(async () => {
    ({ lab, scratch, appliance } = await startDhcpMachineLab(
      "m1a",
      { name: "lab-arch", lease: { mac: MAC, ipv4: LEASE_IP, subnetMask: "255.255.0.0", gateway: "10.213.0.254" } },
      { metadataYaml: "dhcpBootImageName: shimx64.efi\nbiosBootImageName: undionly.kpxe\n", logLevel: "debug" },
    ));
  });

  after(() => stopOneMachineLab({ lab, scratch, appliance }));

  async function lease(arch: number, extra: { ipxe?: boolean } = {}): Promise<DhcpLeaseSeen> {
    assert.ok(lab && scratch);
    return runUdhcpc({
      requestHostname: true,
      ns: lab.clientNs,
      dev: lab.clientIf,
      scratchDir: scratch,
      vendorClass: `PXEClient:Arch:${String(arch).padStart(5, "0")}:UNDI:002001`,
      arch,
      // Option 77 "iPXE" as iPXE itself sends it (bare text), hex-encoded for udhcpc -x.
      extraOptions: extra.ipxe ? [`0x4d:${Buffer.from("iPXE").toString("hex")}`] : [],
    });
  }

  it("BIOS PXE (93 = 0) gets the BIOS loader, x64 UEFI (93 = 7) the upstream file", async () => {
    const bios = await lease(0);
    assert.equal(bios.ok, true, why(bios, appliance));
    assert.equal(bios.bootfileName ?? bios.file, "undionly.kpxe", why(bios, appliance));
    const efi = await lease(7);
    assert.equal(efi.bootfileName ?? efi.file, "shimx64.efi", why(efi, appliance));
  });

  it("arm64 UEFI (93 = 11) with no arm64 file: the lease without any boot option", async () => {
    const arm = await lease(11);
    assert.equal(arm.ok, true, why(arm, appliance));
    assert.equal(arm.ip, LEASE_IP, why(arm, appliance));
    assert.equal(arm.bootfileName, undefined, why(arm, appliance));
    assert.equal(arm.file, undefined, why(arm, appliance));
    assert.equal(arm.tftpServerName, undefined, why(arm, appliance));
    assert.ok(
      offerEvents(appliance!).some((e) => e.reason === "no-boot-file-for-arch"),
      `no event with reason no-boot-file-for-arch\n${appliance?.process.tail()}`,
    );
  });

  it("a BIOS client already running iPXE is not handed undionly.kpxe again (no chainload loop)", async () => {
    const ipxe = await lease(0, { ipxe: true });
    assert.equal(ipxe.ok, true, why(ipxe, appliance));
    assert.equal(ipxe.ip, LEASE_IP, why(ipxe, appliance));
    assert.equal(ipxe.bootfileName ?? ipxe.file, undefined, why(ipxe, appliance));
    assert.ok(
      offerEvents(appliance!).some((e) => e.reason === "ipxe-chainload-loop"),
      `no event with reason ipxe-chainload-loop\n${appliance?.process.tail()}`,
    );
  });
});
