/**
 * OCI pulls against Debian's docker-registry with images pushed by skopeo: by tag, by digest,
 * a multi-arch index (arm64 and amd64 Machines), a zstd layer, and the upstream
 * host-ubuntu2404 layout (spec §6.6, synthetic files) served unchanged over HTTP, TFTP (tftp-hpa)
 * and DHCP (a relayed DISCOVER). Pulls start from the inventory (the reconciler), not from a request.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, it } from "node:test";
import { ApiClient } from "../../server/api/client.js";
import type { RunningAppliance } from "../../server/app/serve-pxe.js";
import { encode } from "../../server/dhcp/codec.js";
import type { ImageStatus } from "../../server/images/image-catalog.js";
import { repoRoot } from "../support/paths.js";
import { opt, request } from "../unit/dhcp/fakes.js";
import { labSuite, makeScratchDir, removeDir, run } from "./harness.js";
import {
  httpGet,
  machineYaml,
  OCI_TOOLS,
  PORT_BASE,
  pushMultiArch,
  pushTree,
  type Registry,
  remoteDigest,
  startOciAppliance,
  startRegistry,
  until,
  writeTree,
} from "./oci-harness.js";

labSuite("OCI pulls from a real registry (docker-registry + skopeo)", OCI_TOOLS, () => {
  let scratch: string;
  let registry: Registry | undefined;
  let appliance: RunningAppliance | undefined;
  let api: ApiClient;
  const upstream = path.join(repoRoot(), "netboot-images", "host-ubuntu2404", "disk");
  const files: Record<string, Buffer> = {};

  before(async () => {
    scratch = await makeScratchDir("oc-pull-");
    registry = await startRegistry(path.join(scratch, "reg"), PORT_BASE + 20);
    const reg = registry.addr;
    // Spec §6.6: the upstream image's /disk, byte for byte where we have the templates.
    for (const name of [
      "shimx64.efi",
      "grubx64.efi",
      "vmlinuz",
      "initrd",
      "init.cpio",
      "disk.img.gz",
      "unbounded-agent",
    ]) {
      files[name] = randomBytes(name === "vmlinuz" ? 300_000 : 2000);
    }
    const host = await writeTree(path.join(scratch, "host"), {
      ...files,
      "metadata.yaml": "dhcpBootImageName: shimx64.efi\n",
      "grub/grub.cfg.tmpl": await readFile(path.join(upstream, "grub", "grub.cfg.tmpl")),
      "cloud-init/meta-data.tmpl": await readFile(path.join(upstream, "cloud-init", "meta-data.tmpl")),
      "cloud-init/vendor-data.tmpl": await readFile(path.join(upstream, "cloud-init", "vendor-data.tmpl")),
    });
    await pushTree(scratch, host, `${reg}/azure/images/host-ubuntu2404:v1`);
    const amd = await writeTree(path.join(scratch, "amd"), {
      "boot/vmlinuz": "amd64 kernel",
      "metadata.yaml": "dhcpBootImageName: shimx64.efi\n",
    });
    const arm = await writeTree(path.join(scratch, "arm"), {
      "boot/Image": "arm64 kernel",
      "metadata.yaml": "dhcpBootImageName: shimaa64.efi\n",
    });
    await pushMultiArch(amd, arm, `${reg}/netboot/multi:v1`);
    await pushTree(
      scratch,
      await writeTree(path.join(scratch, "z"), { "zstd.txt": "from a zstd layer" }),
      `${reg}/netboot/zstd:v1`,
      { zstd: true },
    );
    const digest = await remoteDigest(`${reg}/azure/images/host-ubuntu2404:v1`);
    const inventory = path.join(scratch, "inventory");
    await mkdir(inventory);
    await writeFile(
      path.join(inventory, "machines.yaml"),
      [
        machineYaml("node-tag", "127.0.0.1", `${reg}/azure/images/host-ubuntu2404:v1`),
        machineYaml("node-digest", "127.0.0.2", `${reg}/azure/images/host-ubuntu2404@${digest}`),
        machineYaml("node-arm", "127.0.0.3", `${reg}/netboot/multi:v1`, "    architecture: arm64"),
        machineYaml("node-amd", "127.0.0.4", `${reg}/netboot/multi:v1`),
        machineYaml("node-zstd", "127.0.0.5", `${reg}/netboot/zstd:v1`),
      ].join(""),
    );
    appliance = await startOciAppliance({
      inventory,
      stateDir: path.join(scratch, "state"),
      cacheDir: path.join(scratch, "cache"),
    });
    api = new ApiClient(appliance.apiSocket, "test");
  });

  after(async () => {
    await appliance?.close({ graceMs: 0 });
    await registry?.stop();
    await removeDir(scratch);
  });

  const images = async () => (await api.get<{ items: ImageStatus[] }>("/images")).items;

  it("pulls every image the inventory names (no request needed), by tag, digest, per architecture, zstd", async () => {
    const items = await until(
      "every image ready",
      async () => {
        const list = await images();
        const failed = list.find((i) => i.state === "failed");
        if (failed) throw new Error(`${failed.ref} failed: ${failed.reason}`);
        return list.length === 5 && list.every((i) => i.state === "ready") && list;
      },
      60_000,
    );
    const byMachine = (m: string) => items.find((i) => i.machines.includes(m));
    assert.equal(byMachine("node-tag")?.digest, byMachine("node-digest")?.digest, "tag and digest name the same image");
    assert.equal(byMachine("node-arm")?.architecture, "arm64");
    assert.notEqual(byMachine("node-arm")?.manifestDigest, byMachine("node-amd")?.manifestDigest);
    assert.equal(byMachine("node-arm")?.digest, byMachine("node-amd")?.digest, "one index");
    for (const i of items)
      assert.deepEqual(
        Object.keys(i).filter(
          (k) =>
            ![
              "ref",
              "state",
              "architecture",
              "digest",
              "manifestDigest",
              "bytes",
              "totalBytes",
              "resolvedAt",
              "machines",
            ].includes(k),
        ),
        [],
      );
    const pulls = appliance!.events.history("node-tag").filter((e) => e.step === "image.pull");
    assert.deepEqual(
      [...new Set(pulls.map((e) => e.result))].filter((r) => r !== "progress"),
      ["started", "ok"],
    );
  });

  it("serves the upstream host-ubuntu2404 layout unchanged over HTTP (files and templates)", async () => {
    const http = Number(new URL(appliance!.addresses.serveUrl).port);
    for (const [name, content] of Object.entries(files)) {
      const res = await httpGet(http, `/${name}`);
      assert.equal(res.status, 200, name);
      assert.ok(res.body.equals(content), `${name} is the image's bytes`);
    }
    const grub = await httpGet(http, "/grub/grub.cfg");
    assert.equal(grub.status, 200);
    assert.match(grub.body.toString(), /unbounded\.node_name=node-tag/);
    const meta = await httpGet(http, "/cloud-init/meta-data");
    assert.match(meta.body.toString(), /instance-id: "?node-tag/);
    assert.equal((await httpGet(http, "/boot/Image", "127.0.0.3")).body.toString(), "arm64 kernel");
    assert.equal((await httpGet(http, "/boot/vmlinuz", "127.0.0.4")).body.toString(), "amd64 kernel");
    assert.equal(
      (await httpGet(http, "/boot/Image", "127.0.0.4")).status,
      404,
      "the amd64 Machine gets the amd64 tree",
    );
    assert.equal((await httpGet(http, "/zstd.txt", "127.0.0.5")).body.toString(), "from a zstd layer");
  });

  it("serves it over TFTP to tftp-hpa and names its boot file in DHCP", async () => {
    const out = path.join(scratch, "shim.tftp");
    const tftpPort = Number(
      appliance!
        .describe()
        .find((l) => l.startsWith("tftp"))
        ?.split(":")
        .at(-1),
    );
    const r = await run(["tftp", "127.0.0.1", String(tftpPort), "-c", "get", "shimx64.efi", out], {
      timeoutMs: 15_000,
    });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.ok((await readFile(out)).equals(files["shimx64.efi"]!));
    // A relayed DISCOVER (giaddr set) from node-tag's MAC, UEFI x64 (option 93 = 7).
    const dhcpPort = Number(
      /127\.0\.0\.1:(\d+)/.exec(appliance!.describe().find((l) => l.startsWith("dhcp")) ?? "")?.[1],
    );
    const udp = dgram.createSocket("udp4");
    const packet = encode(
      request({
        type: 1,
        giaddr: "127.0.0.1",
        mac: "02:00:00:00:00:01",
        xid: 7,
        options: [opt.arch(7), opt.vendorClass("PXEClient:Arch:00007:UNDI:003016")],
      }),
    );
    await new Promise<void>((resolve, reject) =>
      udp.send(packet, dhcpPort, "127.0.0.1", (e) => (e ? reject(e) : resolve())),
    );
    udp.close();
    const offer = await until(
      "the DHCP offer",
      () => appliance!.events.history("node-tag").find((e) => e.step === "dhcp.offer"),
      10_000,
    );
    assert.equal(offer.detail?.bootFile, "shimx64.efi");
  });

  it("metalman image list -o json shows the same over the socket (the CLI)", async () => {
    const r = await run([
      "node",
      path.join(repoRoot(), "dist", "server", "main.js"),
      "image",
      "list",
      "-o",
      "json",
      "--state-dir",
      path.join(scratch, "state"),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const { items } = JSON.parse(r.stdout) as { items: ImageStatus[] };
    assert.equal(items.length, 5);
    const table = await run([
      "node",
      path.join(repoRoot(), "dist", "server", "main.js"),
      "image",
      "list",
      "--state-dir",
      path.join(scratch, "state"),
    ]);
    assert.match(table.stdout, /^REF +ARCH +STATE +DIGEST/m);
    assert.match(table.stdout, /netboot\/multi:v1 +arm64 +ready +sha256:/);
  });
});
