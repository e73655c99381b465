/**
 * Our re-creation of the host-ubuntu2404 templates (netboot-images/host-ubuntu2404/disk,
 * spec/metalman.md §6.6) rendered through the engine for realistic Machines.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { TemplateError, TemplateRenderer } from "../../../server/template/render.js";
import { repoRoot } from "../../support/paths.js";
import { exampleContext, exampleMachine } from "./fixture-machines.js";

const dir = path.join(repoRoot(), "netboot-images", "host-ubuntu2404", "disk");
const grub = readFileSync(path.join(dir, "grub", "grub.cfg.tmpl"), "utf8");
const metaData = readFileSync(path.join(dir, "cloud-init", "meta-data.tmpl"), "utf8");
const vendorData = readFileSync(path.join(dir, "cloud-init", "vendor-data.tmpl"), "utf8");

// Each Machine/config value is one single-quoted GRUB word (grubQuote): GRUB drops the quotes,
// so the kernel gets the §6.6 command line byte for byte.
const KERNEL_LINE =
  "  linux /vmlinuz 'unbounded.image_url=http://192.168.200.1:8880/disk.img.gz'" +
  " 'unbounded.serve_url=http://192.168.200.1:8880' 'unbounded.ds_url=http://192.168.200.1:8880/cloud-init/'" +
  " 'unbounded.node_name=node-01' 'unbounded.node_namespace=' 'unbounded.apiserver_url=https://192.168.200.2:6443'" +
  " 'ip=10.0.0.11::10.0.0.1:255.255.255.0::eth0:none' console=tty0 console=ttyS0,115200n8 ---";

const CHAINLOAD = [
  "# metalman: no repave pending, chainload the installed system",
  "insmod part_gpt",
  "insmod fat",
  "insmod search_fs_file",
  "insmod chain",
  "search --no-floppy --file --set=root /EFI/ubuntu/shimx64.efi",
  "chainloader /EFI/ubuntu/shimx64.efi",
  "boot",
  "",
].join("\n");

describe("host-ubuntu2404 grub.cfg.tmpl", () => {
  const renderer = new TemplateRenderer();
  const render = (m: ReturnType<typeof exampleMachine>) => renderer.render(grub, m, exampleContext, "grub.cfg.tmpl");

  it("renders the install entry with the §6.6 kernel command line when a repave is pending", () => {
    const out = render(
      exampleMachine({ spec: { rebootCounter: 2, repaveCounter: 2 }, status: { rebootCounter: 1, repaveCounter: 1 } }),
    );
    assert.equal(
      out,
      [
        "# metalman: repave 2 requested (last completed 1)",
        "set timeout=0",
        "menuentry 'metalman install node-01' {",
        KERNEL_LINE,
        "  initrd /initrd /init.cpio",
        "}",
        "",
      ].join("\n"),
    );
  });

  it("chainloads the installed system when no repave is pending", () => {
    assert.equal(render(exampleMachine({ spec: { repaveCounter: 1 }, status: { repaveCounter: 1 } })), CHAINLOAD);
    assert.equal(render(exampleMachine({ spec: { repaveCounter: 1 }, status: { repaveCounter: 3 } })), CHAINLOAD);
  });

  it("treats absent operations as counter 0 instead of failing like upstream (spec §12 item 16)", () => {
    assert.equal(render(exampleMachine()), CHAINLOAD);
    assert.equal(render(exampleMachine({ status: {} })), CHAINLOAD);
    assert.equal(render(exampleMachine({ spec: {}, status: { repaveCounter: 0 } })), CHAINLOAD);
    // Requested but never completed (no Redfish status yet): still an install.
    assert.match(
      render(exampleMachine({ spec: { repaveCounter: 1 } })),
      /^# metalman: repave 1 requested \(last completed 0\)\n/,
    );
  });

  it("keeps Go's nil-pointer failure for a naive upstream-style template", () => {
    const naive =
      "{{ if le .Machine.Spec.Operations.RepaveCounter .Machine.Status.Operations.RepaveCounter }}local{{ else }}install{{ end }}";
    assert.equal(
      renderer.render(
        naive,
        exampleMachine({ spec: { repaveCounter: 1 }, status: { repaveCounter: 1 } }),
        exampleContext,
      ),
      "local",
    );
    assert.throws(
      () => renderer.render(naive, exampleMachine({ spec: { repaveCounter: 1 } }), exampleContext, "grub.cfg.tmpl"),
      (e: unknown) =>
        e instanceof TemplateError &&
        e.phase === "exec" &&
        e.partial === "" &&
        e.message ===
          'template: grub.cfg.tmpl:1:56: executing "grub.cfg.tmpl" at <.Machine.Status.Operations.RepaveCounter>: nil pointer evaluating *v1alpha3.OperationsStatus.RepaveCounter',
    );
    assert.throws(
      () => renderer.render(naive, exampleMachine({ status: { repaveCounter: 1 } }), exampleContext),
      /nil pointer evaluating \*v1alpha3\.OperationsSpec\.RepaveCounter/,
    );
  });
});

describe("host-ubuntu2404 cloud-init templates", () => {
  const renderer = new TemplateRenderer();

  it("meta-data names the instance and host after the Machine", () => {
    assert.equal(
      renderer.render(metaData, exampleMachine(), exampleContext, "meta-data.tmpl"),
      'instance-id: "node-01"\nlocal-hostname: "node-01"\n',
    );
  });

  it("vendor-data embeds AgentConfigJSON exactly as the §5.5.1 example", () => {
    const out = renderer.render(vendorData, exampleMachine(), exampleContext, "vendor-data.tmpl");
    const expected = `write_files:
- path: /etc/unbounded/agent/config.json
  permissions: '0600'
  content: |
    {
      "MachineName": "node-01",
      "Cluster": {
        "CaCertBase64": "LS0tLS1CRUdJTi…",
        "ClusterDNS": "10.96.0.10",
        "Version": "v1.34.1"
      },
      "Kubelet": {
        "ApiServer": "https://192.168.200.2:6443",
        "Auth": {},
        "Labels": {
          "kubernetes.azure.com/cluster": "mc_rg_aks",
          "kubernetes.azure.com/managed": "false"
        },
        "RegisterWithTaints": null
      },
      "CRI": {
        "Containerd": {},
        "Runc": {}
      },
      "CNI": {},
      "OCIImage": "ghcr.io/azure/images/agent-ubuntu2404:v1",
      "Attest": {
        "URL": "http://192.168.200.1:8880"
      }
    }
`;
    assert.ok(out.includes(expected), out);
    assert.ok(out.startsWith("#cloud-config\n"));
    assert.ok(out.includes("    endpoint: http://192.168.200.1:8880/cloudinit/log\n"));
    assert.ok(!out.includes("<no value>"));
  });
});

describe("host-ubuntu2404 boot.ipxe.tmpl", () => {
  const ipxe = readFileSync(path.join(dir, "boot.ipxe.tmpl"), "utf8");
  const renderer = new TemplateRenderer();
  const render = (m: ReturnType<typeof exampleMachine>) => renderer.render(ipxe, m, exampleContext, "boot.ipxe.tmpl");

  it("installs over HTTP when a repave is pending, with the same command line as GRUB", () => {
    const out = render(
      exampleMachine({ spec: { rebootCounter: 2, repaveCounter: 2 }, status: { rebootCounter: 1, repaveCounter: 1 } }),
    );
    assert.ok(out.startsWith("#!ipxe\n"), out);
    assert.match(out, /^kernel http:\/\/192\.168\.200\.1:8880\/vmlinuz unbounded\.image_url=/m);
    assert.ok(out.includes(" ip=10.0.0.11::10.0.0.1:255.255.255.0::eth0:none "), out);
    assert.match(out, /^initrd http:\/\/192\.168\.200\.1:8880\/init\.cpio$/m);
  });

  it("boots the local disk when no repave is pending, also for a Machine without operations", () => {
    for (const m of [
      exampleMachine({ spec: { repaveCounter: 1 }, status: { repaveCounter: 1 } }),
      exampleMachine({}),
    ]) {
      const out = render(m);
      assert.ok(out.startsWith("#!ipxe\n"), out);
      assert.match(out, /^sanboot /m);
      assert.doesNotMatch(out, /^kernel /m);
    }
  });
});

describe("host-ubuntu2404 templates: a Machine string cannot inject (§4.2)", () => {
  const renderer = new TemplateRenderer();
  const ipxe = readFileSync(path.join(dir, "boot.ipxe.tmpl"), "utf8");

  it("a namespace holding a newline adds no GRUB menuentry or iPXE command: the render fails", () => {
    const machine = exampleMachine({ spec: { repaveCounter: 2 }, status: { repaveCounter: 1 } });
    machine.metadata.namespace = 'default\n}\nmenuentry "pwned" {\n  linux /vmlinuz init=/bin/sh';
    for (const [name, source] of [
      ["grub.cfg.tmpl", grub],
      ["boot.ipxe.tmpl", ipxe],
    ] as const) {
      let out: string | undefined;
      try {
        out = renderer.render(source, machine, exampleContext, name);
      } catch (error) {
        assert.ok(error instanceof TemplateError, name);
        assert.doesNotMatch(error.partial ?? "", /pwned|init=\/bin\/sh/, name);
      }
      assert.equal(out, undefined, `${name} rendered the injected namespace:\n${out}`);
    }
  });
});
