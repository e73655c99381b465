import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decode, encode, hardwareAddress, messageType } from "../../../server/dhcp/codec.js";
import { handleDhcpRequest } from "../../../server/dhcp/handler.js";
import { readClientArchList, readString, readUserClasses } from "../../../server/dhcp/options.js";
import { deps, FakeBackend, FakeImages, FULL_IMAGE, lease, machine, readCaptures, SERVE_URL } from "./fakes.js";

/** Real client DISCOVERs (test/fixtures/dhcp/README.md) decoded and answered. */
const captures = readCaptures();

const expected: Record<
  string,
  { mac: string; arch?: number; vendor?: string; userClasses?: string[]; bootFile: string; echo?: string }
> = {
  "udhcpc-plain": { mac: "02:50:58:00:00:03", vendor: "udhcp 1.35.0", bootFile: "shimx64.efi" },
  "udhcpc-pxe": {
    mac: "02:50:58:00:00:03",
    arch: 7,
    vendor: "PXEClient:Arch:00007:UNDI:003000",
    userClasses: ["iPXE"],
    bootFile: `${SERVE_URL}/boot.ipxe`,
    echo: "PXEClient",
  },
  "dhclient-arch7": {
    mac: "02:50:58:00:00:03",
    arch: 7,
    userClasses: ["iPXE"],
    bootFile: `${SERVE_URL}/boot.ipxe`,
  },
  "fw-bios": {
    mac: "52:54:00:12:34:56",
    arch: 0,
    vendor: "PXEClient:Arch:00000:UNDI:002001",
    userClasses: ["iPXE"],
    bootFile: `${SERVE_URL}/boot.ipxe`,
    echo: "PXEClient",
  },
  "fw-uefi": {
    mac: "52:54:00:12:34:56",
    arch: 7,
    vendor: "PXEClient:Arch:00007:UNDI:003000",
    bootFile: "shimx64.efi",
    echo: "PXEClient",
  },
};

describe("dhcp golden captures", () => {
  it("has every capture", () => {
    assert.deepEqual([...captures.keys()].sort(), Object.keys(expected).sort());
  });

  for (const [label, want] of Object.entries(expected)) {
    it(`${label}: decodes and gets the right boot file`, () => {
      const wire = captures.get(label);
      assert.ok(wire, label);
      const p = decode(wire);
      assert.equal(p.op, 1);
      assert.equal(messageType(p), 1);
      assert.equal(hardwareAddress(p), want.mac);
      assert.equal(readClientArchList(p.options.get(93))?.[0], want.arch);
      assert.equal(readString(p.options.get(60)), want.vendor);
      assert.deepEqual(readUserClasses(p.options.get(77)), want.userClasses);
      // Re-encoding keeps every option (wire order aside from padding).
      assert.deepEqual([...decode(encode(p)).options.entries()], [...p.options.entries()]);

      const backend = new FakeBackend([machine("vm", [lease(want.mac, "10.77.0.50")])]);
      const d = deps({ backend, images: new FakeImages(FULL_IMAGE) });
      const out = handleDhcpRequest(p, { mode: "interface", address: "0.0.0.0", port: 68 }, d);
      const reply = out.reply;
      assert.ok(reply, `${label} answered`);
      assert.equal(reply.packet.yiaddr, "10.77.0.50");
      assert.equal(readString(reply.packet.options.get(67)), want.bootFile);
      assert.equal(readString(reply.packet.options.get(60)), want.echo);
      if (label === "fw-uefi") assert.equal(reply.packet.flags, 0x8000, "OVMF asks for broadcast");
    });
  }

  it("a non-iPXE BIOS PXE ROM (arch 0, no user class) gets the BIOS loader", () => {
    const p = decode(captures.get("fw-bios")!);
    p.options.delete(77);
    const backend = new FakeBackend([machine("vm", [lease("52:54:00:12:34:56", "10.77.0.50")])]);
    const out = handleDhcpRequest(
      p,
      { mode: "interface", address: "0.0.0.0", port: 68 },
      deps({ backend, images: new FakeImages(FULL_IMAGE) }),
    );
    assert.equal(readString(out.reply?.packet.options.get(67)), "undionly.kpxe");
  });
});
