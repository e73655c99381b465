import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type BootChoice, chooseBootFile, looksLikeIpxeBinary } from "../../../server/dhcp/boot-file.js";
import { decode } from "../../../server/dhcp/codec.js";
import { handleDhcpRequest } from "../../../server/dhcp/handler.js";
import { readString } from "../../../server/dhcp/options.js";
import { parseMetadata } from "../../../server/images/image-metadata.js";
import type { ImageLookup, ImageMetadata } from "../../../server/images/image-store.js";
import { deps, FakeBackend, FakeImages, lease, machine, opt, readCaptures, request, SERVE_URL } from "./fakes.js";

/** Issue 5 §1.1: boot file strictly by option 93 (RFC 4578), docs/boot-files.md. */

const ready = (metadata: ImageMetadata): ImageLookup => ({
  state: "ready",
  ref: "dir:/img",
  diskDir: "/img/disk",
  metadata,
});

const EVERY_ARCH: ImageMetadata = {
  ipxeScriptName: "boot.ipxe",
  bootFiles: {
    bios: "grub/i386-pc/core.0",
    "efi-ia32": "bootia32.efi",
    "efi-x64": "shimx64.efi",
    "efi-arm64": "shimaa64.efi",
    "http-x64": "http/shimx64.efi",
    "http-arm64": "http/shimaa64.efi",
  },
};

function pick(md: ImageMetadata, client: Parameters<typeof chooseBootFile>[1]): BootChoice {
  return chooseBootFile(ready(md), client, SERVE_URL);
}

describe("boot file by client architecture (option 93)", () => {
  it("each architecture gets its own file; HTTP boot gets a URL and HTTPClient", () => {
    const table: [number, string, string, string | undefined][] = [
      [0, "bios", "grub/i386-pc/core.0", "PXEClient"],
      [6, "efi-ia32", "bootia32.efi", "PXEClient"],
      [7, "efi-x64", "shimx64.efi", "PXEClient"],
      [9, "efi-x64", "shimx64.efi", "PXEClient"],
      [11, "efi-arm64", "shimaa64.efi", "PXEClient"],
      [16, "http-x64", `${SERVE_URL}/http/shimx64.efi`, "HTTPClient"],
      [19, "http-arm64", `${SERVE_URL}/http/shimaa64.efi`, "HTTPClient"],
    ];
    for (const [arch, rule, file, echo] of table) {
      const vendor = `${arch >= 16 ? "HTTPClient" : "PXEClient"}:Arch:${String(arch).padStart(5, "0")}:UNDI:003016`;
      assert.deepEqual(pick(EVERY_ARCH, { arch, vendorClass: vendor }), {
        kind: "file",
        file,
        rule,
        vendorClassEcho: echo,
      });
    }
  });

  it("an upstream image (dhcpBootImageName only) boots x64 UEFI and nothing else", () => {
    const upstream = { dhcpBootImageName: "shimx64.efi" };
    assert.equal((pick(upstream, { arch: 7 }) as { file: string }).file, "shimx64.efi");
    assert.equal((pick(upstream, { arch: 9 }) as { file: string }).file, "shimx64.efi");
    assert.equal((pick(upstream, { arch: 16 }) as { file: string }).file, `${SERVE_URL}/shimx64.efi`);
    for (const arch of [0, 6, 10, 11, 19, 0x1b]) {
      const choice = pick(upstream, { arch });
      assert.equal(choice.kind, "none", `arch ${arch}`);
      assert.equal(choice.kind === "none" && choice.code, "no-boot-file-for-arch");
    }
  });

  it("an upstream arm64 image (dhcpBootImageName: shimaa64.efi) boots arm64 and never x64", () => {
    const arm = { dhcpBootImageName: "shimaa64.efi" };
    assert.equal((pick(arm, { arch: 11 }) as { file: string }).file, "shimaa64.efi");
    assert.equal((pick(arm, { arch: 19 }) as { file: string }).file, `${SERVE_URL}/shimaa64.efi`);
    for (const arch of [0, 6, 7, 9, 16]) assert.equal(pick(arm, { arch }).kind, "none", `arch ${arch}`);
    assert.equal((pick({ dhcpBootImageName: "bootia32.efi" }, { arch: 6 }) as { file: string }).file, "bootia32.efi");
    assert.equal(pick({ dhcpBootImageName: "grubriscv64.efi" }, { arch: 7 }).kind, "none");
    // A name without a suffix (ipxe.efi, a custom loader) is x64, as upstream means it.
    assert.equal((pick({ dhcpBootImageName: "loader.efi" }, { arch: 7 }) as { file: string }).file, "loader.efi");
  });

  it("biosBootImageName is the BIOS file; bootFiles entries win over the flat keys", () => {
    const flat = { dhcpBootImageName: "shimx64.efi", biosBootImageName: "undionly.kpxe" };
    assert.equal((pick(flat, { arch: 0 }) as { file: string }).file, "undionly.kpxe");
    const both = { ...flat, bootFiles: { bios: "pxelinux.0", "efi-x64": "grubx64.efi" } };
    assert.equal((pick(both, { arch: 0 }) as { file: string }).file, "pxelinux.0");
    assert.equal((pick(both, { arch: 7 }) as { file: string }).file, "grubx64.efi");
    // http-arm64 falls back to the arm64 PE file, loaded over HTTP.
    const arm = { bootFiles: { "efi-arm64": "shimaa64.efi" } };
    assert.equal((pick(arm, { arch: 19 }) as { file: string }).file, `${SERVE_URL}/shimaa64.efi`);
  });

  it("without option 93 the Arch field of option 60 decides; with neither, the upstream file", () => {
    const flat = { dhcpBootImageName: "shimx64.efi", biosBootImageName: "undionly.kpxe" };
    assert.equal(
      (pick(flat, { vendorClass: "PXEClient:Arch:00000:UNDI:002001" }) as { file: string }).file,
      "undionly.kpxe",
    );
    assert.equal(pick({ dhcpBootImageName: "shimx64.efi" }, { vendorClass: "PXEClient:Arch:00000" }).kind, "none");
    assert.deepEqual(pick(flat, { vendorClass: "udhcp 1.35.0" }), {
      kind: "file",
      file: "shimx64.efi",
      rule: "default",
      vendorClassEcho: undefined,
    });
    assert.equal(pick(flat, { vendorClass: "HTTPClient" }).kind, "none", "HTTP boot must name its architecture");
  });

  it("an iPXE client is never handed an iPXE binary (no chainload loop)", () => {
    const bios = { dhcpBootImageName: "shimx64.efi", biosBootImageName: "undionly.kpxe" };
    const loop = pick(bios, { arch: 0, userClasses: ["iPXE"] });
    assert.equal(loop.kind === "none" && loop.code, "ipxe-chainload-loop");
    // The same ROM before iPXE runs gets undionly.kpxe; iPXE on EFI may chain shim.
    assert.equal((pick(bios, { arch: 0 }) as { file: string }).file, "undionly.kpxe");
    assert.equal((pick(bios, { arch: 7, userClasses: ["iPXE"] }) as { file: string }).file, "shimx64.efi");
    const efiIpxe = pick({ bootFiles: { "efi-x64": "ipxe.efi" } }, { arch: 7, userClasses: ["iPXE"] });
    assert.equal(efiIpxe.kind === "none" && efiIpxe.code, "ipxe-chainload-loop");
    // With a script, iPXE gets the script whatever its architecture.
    assert.equal(
      (pick({ ...bios, ipxeScriptName: "boot.ipxe" }, { arch: 0, userClasses: ["iPXE"] }) as { file: string }).file,
      `${SERVE_URL}/boot.ipxe`,
    );
    for (const name of [
      "undionly.kpxe",
      "ipxe.pxe",
      "undionly.kkpxe",
      "ipxe.lkrn",
      "ipxe.efi",
      "x/snponly.efi",
      "snp-x64.efi",
    ]) {
      assert.equal(looksLikeIpxeBinary(name), true, name);
    }
    for (const name of ["shimx64.efi", "grubx64.efi", "pxelinux.0", "core.0", "bootx64.efi"]) {
      assert.equal(looksLikeIpxeBinary(name), false, name);
    }
  });

  it("the lease goes out without any boot option, and the event says no-boot-file-for-arch", () => {
    const d = deps({ images: new FakeImages({ dhcpBootImageName: "shimx64.efi" }) });
    const ctx = { mode: "interface" as const, address: "0.0.0.0", port: 68 };
    for (const arch of [0, 11]) {
      const vendor = opt.vendorClass(`PXEClient:Arch:${String(arch).padStart(5, "0")}:UNDI:002001`);
      const out = handleDhcpRequest(request({ options: [vendor, opt.arch(arch)] }), ctx, d);
      const p = out.reply?.packet;
      assert.ok(p, `arch ${arch}: still gets its address`);
      assert.equal(p.yiaddr, "10.77.0.21");
      for (const code of [66, 67, 60, 43]) assert.equal(p.options.has(code), false, `arch ${arch}: option ${code}`);
      assert.equal(p.file, "");
      assert.equal(p.sname, "");
      const offer = out.events.find((e) => e.step === "dhcp.offer");
      assert.equal(offer?.reason, "no-boot-file-for-arch");
      assert.equal(offer?.result, "ok");
    }
  });

  it("real captures: iPXE BIOS ROM (fw-bios) with a BIOS iPXE file and no script gets no boot file", () => {
    const wire = readCaptures().get("fw-bios");
    assert.ok(wire);
    const d = deps({
      images: new FakeImages({ dhcpBootImageName: "shimx64.efi", biosBootImageName: "undionly.kpxe" }),
    });
    d.backend = new FakeBackend([machine("vm", [lease("52:54:00:12:34:56", "10.77.0.50")])]);
    const out = handleDhcpRequest(decode(wire), { mode: "interface", address: "0.0.0.0", port: 68 }, d);
    const p = out.reply?.packet;
    assert.ok(p);
    assert.equal(readString(p.options.get(67)), undefined);
    assert.equal(out.events.at(-1)?.reason, "ipxe-chainload-loop");
  });
});

describe("metadata.yaml bootFiles", () => {
  it("accepts the per-architecture keys next to the upstream ones", () => {
    const result = parseMetadata(
      "dhcpBootImageName: shimx64.efi\nbootFiles:\n  bios: undionly.kpxe\n  efi-arm64: shimaa64.efi\n",
    );
    assert.deepEqual(result, {
      ok: true,
      metadata: { dhcpBootImageName: "shimx64.efi", bootFiles: { bios: "undionly.kpxe", "efi-arm64": "shimaa64.efi" } },
    });
  });

  it("rejects an unknown architecture key, a non-string value and a non-mapping", () => {
    assert.match(
      (parseMetadata("bootFiles:\n  efi-x86_64: a.efi\n") as { reason: string }).reason,
      /unknown architecture/,
    );
    assert.match((parseMetadata("bootFiles:\n  bios: 7\n") as { reason: string }).reason, /non-empty string/);
    assert.match((parseMetadata("bootFiles: [a]\n") as { reason: string }).reason, /mapping/);
    assert.match((parseMetadata("biosBootImageName: [a]\n") as { reason: string }).reason, /must be a string/);
  });
});
