/**
 * Issue 5 §4 with real clients in network namespaces (prefix m6a): curl (HTTP) and tftp-hpa
 * (TFTP) never get a `.tmpl` source raw, whatever the path form; the rendered file still works.
 * An image folder outside --image-root is refused. The netboot port's /readyz names a failing
 * check without file names, the health listener (bound to 127.0.0.1 by --health-bind-address)
 * has the details and is not reachable from the client network. With
 * --http-max-connections-per-client 2, a third connection from one client gets 503 while another
 * client address is still served. Needs root; see test/lab/README.md.
 */
import assert from "node:assert/strict";
import { mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, before, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { stringify as toYaml } from "yaml";
import {
  Appliance,
  addAddress,
  type LabImage,
  labSuite,
  makeScratchDir,
  NsProcess,
  removeDir,
  runInNs,
  type VethLab,
  vethLabDown,
  vethLabUp,
  writeImage,
  writeInventory,
} from "./harness.js";

const PREFIX = "m6a";
const SECOND_IP = "10.213.0.98";
const MACHINE = "lab-sec";

labSuite("security: template sources, confinement, readiness details, connection caps", ["tftp"], () => {
  let lab: VethLab | undefined;
  let scratch: string | undefined;
  let outside: string | undefined;
  let image: LabImage | undefined;
  let appliance: Appliance | undefined;
  let inventoryDir = "";

  before(async () => {
    scratch = await makeScratchDir(PREFIX);
    // A second image beside (not under) the scratch root, which is the only --image-root.
    outside = await makeScratchDir(`${PREFIX}-outside`);
    lab = await vethLabUp(PREFIX, { staticClient: true });
    await addAddress(lab.clientNs, lab.clientIf, `${SECOND_IP}/16`);
    image = await writeImage(scratch, 4 * 1024 * 1024);
    await symlink("grub/grub.cfg.tmpl", path.join(image.diskDir, "looks-static"));
    inventoryDir = await writeInventory(scratch, image, [
      {
        name: MACHINE,
        leases: [{ mac: "02:4d:4d:00:00:60", ipv4: lab.clientIp!, subnetMask: "255.255.0.0", gateway: "10.213.0.1" }],
      },
    ]);
    await mkdir(path.join(outside, "image", "disk"), { recursive: true });
    await writeFile(path.join(outside, "image", "disk", "vmlinuz"), "kernel outside the image roots\n");
    appliance = await Appliance.start(
      {
        ns: lab.serverNs,
        bindAddress: lab.serverIp,
        inventoryDir,
        imageRoots: [scratch],
        healthBindAddress: "127.0.0.1",
        extraArgs: ["--http-max-connections-per-client", "2"],
      },
      scratch,
    );
  });

  after(async () => {
    await appliance?.stop();
    await vethLabDown(lab);
    await removeDir(scratch);
    await removeDir(outside);
  });

  const tail = () => `--- metalman log tail ---\n${appliance?.process.tail()}`;

  /** curl from the client namespace; returns status and body. `--path-as-is` keeps `./` and `//` as sent. */
  async function curl(
    urlPath: string,
    extra: string[] = [],
  ): Promise<{ status: number; body: string; code: number | null }> {
    assert.ok(lab && appliance && scratch);
    const out = path.join(scratch, `curl-${Math.random().toString(36).slice(2)}.out`);
    const url = `http://${lab.serverIp}:${appliance.httpPort}/${urlPath}`;
    const result = await runInNs(
      lab.clientNs,
      ["curl", "-sS", "--path-as-is", "--max-time", "20", "-o", out, "-w", "%{http_code}", ...extra, url],
      { timeoutMs: 30_000 },
    );
    const body = await readFile(out, "utf8").catch(() => "");
    await rm(out, { force: true });
    return { status: Number(result.stdout.trim()), body, code: result.code };
  }

  it("curl never gets a template source raw, in any path form", async () => {
    for (const form of [
      "grub/grub.cfg.tmpl",
      "grub/grub.cfg.tmpl/",
      "grub//grub.cfg.tmpl",
      "./grub/./grub.cfg.tmpl",
      "grub/grub.cfg%2etmpl",
      "grub%2fgrub.cfg.tmpl",
      "grub/grub.cfg.TMPL",
      "grub/grub.cfg.tmpl%00",
      "looks-static",
      "grub/../grub/grub.cfg.tmpl",
    ]) {
      const response = await curl(form);
      assert.notEqual(response.status, 200, `${form}: ${response.body}\n${tail()}`);
      assert.ok(!response.body.includes("{{"), `${form} leaked the source: ${response.body}`);
    }
    const rendered = await curl("grub/grub.cfg");
    assert.equal(rendered.status, 200, tail());
    assert.equal(rendered.body, `set hostname=${MACHINE} ip=${lab!.clientIp}\n`);
  });

  it("tftp-hpa never gets a template source raw, in any path form", async () => {
    assert.ok(lab && appliance && scratch);
    for (const form of [
      "grub/grub.cfg.tmpl",
      "grub//grub.cfg.tmpl",
      "./grub/grub.cfg.tmpl",
      "grub/grub.cfg.TMPL",
      "looks-static",
    ]) {
      const out = path.join(scratch, "tftp.out");
      await rm(out, { force: true });
      const result = await runInNs(
        lab.clientNs,
        ["tftp", "-m", "binary", lab.serverIp, String(appliance.tftpPort), "-c", "get", form, out],
        { timeoutMs: 30_000 },
      );
      const body = await readFile(out, "utf8").catch(() => "");
      await rm(out, { force: true });
      assert.ok(!body.includes("{{"), `${form} leaked the source over TFTP: ${body}`);
      assert.match(
        `${result.stdout}${result.stderr}`,
        /Error code/i,
        `${form}: no TFTP error\n${result.stdout}${result.stderr}\n${tail()}`,
      );
    }
    const out = path.join(scratch, "tftp-rendered.out");
    await runInNs(
      lab.clientNs,
      ["tftp", "-m", "binary", lab.serverIp, String(appliance.tftpPort), "-c", "get", "grub/grub.cfg", out],
      { timeoutMs: 30_000 },
    );
    assert.equal(await readFile(out, "utf8").catch(() => ""), `set hostname=${MACHINE} ip=${lab.clientIp}\n`);
    await rm(out, { force: true });
  });

  it("an image outside --image-root is refused; /readyz details only on the health listener", async () => {
    assert.ok(lab && appliance && outside);
    // A second Machine on the client's second address, whose image lies outside the root,
    // and a broken inventory file whose name must not leak on the netboot port.
    const doc = {
      apiVersion: "unbounded-cloud.io/v1alpha3",
      kind: "Machine",
      metadata: { name: "lab-sec-outside" },
      spec: {
        pxe: {
          image: `dir:${path.join(outside, "image")}`,
          dhcpLeases: [{ mac: "02:4d:4d:00:00:61", ipv4: SECOND_IP, subnetMask: "255.255.0.0", gateway: "10.213.0.1" }],
        },
      },
    };
    await writeFile(path.join(inventoryDir, "lab-sec-outside.yaml"), toYaml(doc));
    await writeFile(
      path.join(inventoryDir, "broken-secret-name.yaml"),
      "apiVersion: unbounded-cloud.io/v1alpha3\nkind: Machine\nmetadata: {name: Bad_Name}\nspec: {}\n",
    );
    // The inventory reloads on its own; wait (bounded) for both files to be seen.
    let readyz = { status: 0, body: "", code: null as number | null };
    let outsideFile = { status: 0, body: "", code: null as number | null };
    for (let i = 0; i < 40; i++) {
      readyz = await curl("readyz");
      outsideFile = await curl("vmlinuz", ["--interface", SECOND_IP]);
      if (readyz.status === 503 && outsideFile.status === 404) break;
      await sleep(500);
    }
    assert.equal(outsideFile.status, 404, `image outside the root was served: ${outsideFile.body}\n${tail()}`);
    assert.ok(!outsideFile.body.includes("outside the image roots"));
    assert.equal(readyz.status, 503, tail());
    assert.equal(readyz.body, "[-]inventory failed\nreadyz check failed\n");

    // The health listener is on 127.0.0.1 of the server: unreachable from the client network ...
    const fromClient = await runInNs(
      lab.clientNs,
      ["curl", "-sS", "-m", "5", `http://${lab.serverIp}:${appliance.healthPort}/readyz`],
      {
        timeoutMs: 15_000,
      },
    );
    assert.equal(fromClient.code, 7, `health listener reachable from the client: ${fromClient.stdout}`);
    // ... and has the details there.
    const local = await runInNs(
      lab.serverNs,
      ["curl", "-sS", "-m", "5", `http://127.0.0.1:${appliance.healthPort}/readyz`],
      {
        timeoutMs: 15_000,
      },
    );
    assert.match(local.stdout, /\[-\]inventory failed: .*broken-secret-name\.yaml/, local.stdout);
    await rm(path.join(inventoryDir, "broken-secret-name.yaml"), { force: true });
  });

  it("a third connection from one client gets 503 while another client address is served", async () => {
    assert.ok(lab && appliance && image);
    const url = `http://${lab.serverIp}:${appliance.httpPort}/${image.bigFile}`;
    // Two slow downloads hold the client's two slots.
    const holders = [0, 1].map(
      () =>
        new NsProcess(lab!.clientNs, [
          "curl",
          "-sS",
          "--limit-rate",
          "20k",
          "--max-time",
          "60",
          "-o",
          "/dev/null",
          url,
        ]),
    );
    try {
      let third = { status: 0, body: "", code: null as number | null };
      for (let i = 0; i < 20; i++) {
        await sleep(300);
        third = await curl("healthz");
        if (third.status === 503) break;
      }
      assert.equal(third.status, 503, `third connection: ${third.status} ${third.body}\n${tail()}`);
      assert.equal(third.body, "too many connections\n");
      const other = await curl("healthz", ["--interface", SECOND_IP]);
      assert.equal(other.status, 200, `another client: ${other.status}\n${tail()}`);
    } finally {
      for (const holder of holders) await holder.stop(5_000);
    }
    // The slots free again once the downloads are gone.
    let after = { status: 0, body: "", code: null as number | null };
    for (let i = 0; i < 20; i++) {
      after = await curl("healthz");
      if (after.status === 200) break;
      await sleep(250);
    }
    assert.equal(after.status, 200);
  });
});
