import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { jsonPointerToPath, MachineValidator } from "../../../server/inventory/machine-schema.js";
import type { Machine } from "../../../server/inventory/types.js";
import { EXAMPLE_MACHINE_YAML } from "./helpers.js";

const validator = new MachineValidator();
const SOURCE = "machines/node-01.yaml";

function example(): Machine {
  return parse(EXAMPLE_MACHINE_YAML) as Machine;
}

function errorsOf(mutate: (m: Machine) => void): string[] {
  const doc = example();
  mutate(doc);
  const result = validator.validate(doc, SOURCE);
  assert.equal(result.ok, false, "expected validation to fail");
  return result.ok ? [] : result.errors;
}

describe("machine schema", () => {
  it("accepts the §2.4 example and applies CRD defaults", () => {
    const doc = example();
    delete doc.spec.pxe!.redfish!.deviceID;
    delete doc.spec.pxe!.redfish!.passwordRef.key;
    const result = validator.validate(doc, SOURCE);
    assert.ok(result.ok, result.ok ? "" : result.errors.join("\n"));
    const pxe = result.machine.spec.pxe!;
    assert.equal(pxe.redfish!.deviceID, "1");
    // CRD quirk (§12 item 6): the shared selector type defaults the key to ssh-privatekey.
    assert.equal(pxe.redfish!.passwordRef.key, "ssh-privatekey");
    assert.equal(pxe.cloudInit!.userDataConfigMapRef!.key, "user-data");
    assert.equal(result.machine.status!.conditions![0]!.lastTransitionTime.endsWith("Z"), true);
    assert.equal(doc.spec.pxe!.redfish!.deviceID, undefined, "input is not modified");
  });

  it("keeps an explicit empty deviceID (it asks for discovery)", () => {
    const doc = example();
    doc.spec.pxe!.redfish!.deviceID = "";
    const result = validator.validate(doc, SOURCE);
    assert.ok(result.ok);
    assert.equal(result.machine.spec.pxe!.redfish!.deviceID, "");
  });

  it("accepts OCI references with registry port and digest, and dir: paths", () => {
    for (const image of [
      "localhost:5000/netboot/host:v1",
      "ghcr.io/azure/images/host-ubuntu2404@sha256:" + "a".repeat(64),
      "busybox",
      "dir:./images/host",
      "dir:/srv/images/host-ubuntu2404",
    ]) {
      const doc = example();
      doc.spec.pxe!.image = image;
      assert.ok(validator.validate(doc, SOURCE).ok, image);
    }
  });

  const cases: Array<[string, (m: Machine) => void, string]> = [
    [
      "MAC",
      (m) => (m.spec.pxe!.dhcpLeases![0]!.mac = "aa:bb:cc:dd:ee"),
      "spec.pxe.dhcpLeases[0].mac: must be a MAC address like aa:bb:cc:dd:ee:ff",
    ],
    [
      "IPv4",
      (m) => (m.spec.pxe!.dhcpLeases![0]!.ipv4 = "10.0.0.256"),
      "spec.pxe.dhcpLeases[0].ipv4: must be an IPv4 address",
    ],
    [
      "leading zero",
      (m) => (m.spec.pxe!.dhcpLeases![0]!.ipv4 = "10.0.0.011"),
      "spec.pxe.dhcpLeases[0].ipv4: must be an IPv4 address",
    ],
    [
      "gateway",
      (m) => (m.spec.pxe!.dhcpLeases![0]!.gateway = "gw"),
      "spec.pxe.dhcpLeases[0].gateway: must be an IPv4 address",
    ],
    [
      "dns",
      (m) => (m.spec.pxe!.dhcpLeases![0]!.dns = ["10.0.0.1", "dns.example"]),
      "spec.pxe.dhcpLeases[0].dns[1]: must be an IPv4 address",
    ],
    [
      "mask",
      (m) => (m.spec.pxe!.dhcpLeases![0]!.subnetMask = "255.0.255.0"),
      "spec.pxe.dhcpLeases[0].subnetMask: must be a contiguous subnet mask",
    ],
    [
      "redfish url",
      (m) => (m.spec.pxe!.redfish!.url = "ftp://bmc"),
      "spec.pxe.redfish.url: must be an http:// or https:// URL",
    ],
    ["name", (m) => (m.metadata.name = "Node_01"), "metadata.name: must be a DNS-1123 name"],
    ["image", (m) => (m.spec.pxe!.image = "not a ref"), "spec.pxe.image: must be an OCI image reference"],
    [
      "missing image",
      (m) => delete (m.spec.pxe as Partial<Machine["spec"]["pxe"]>)!.image,
      "spec.pxe.image: is required",
    ],
    [
      "missing gateway",
      (m) => delete (m.spec.pxe!.dhcpLeases![0] as { gateway?: string }).gateway,
      "spec.pxe.dhcpLeases[0].gateway: is required",
    ],
    [
      "missing username",
      (m) => delete (m.spec.pxe!.redfish as { username?: string }).username,
      "spec.pxe.redfish.username: is required",
    ],
    [
      "missing namespace",
      (m) => delete (m.spec.pxe!.redfish!.passwordRef as { namespace?: string }).namespace,
      "spec.pxe.redfish.passwordRef.namespace: is required",
    ],
    [
      "unknown pxe field",
      (m) => ((m.spec.pxe as unknown as Record<string, unknown>).dhcpLease = []),
      "spec.pxe.dhcpLease: unknown field",
    ],
    [
      "apiVersion",
      (m) => ((m as { apiVersion: string }).apiVersion = "unbounded-cloud.io/v1alpha2"),
      'apiVersion: must be "unbounded-cloud.io/v1alpha3"',
    ],
    [
      "type",
      (m) => ((m.spec.pxe!.redfish as { deviceID: unknown }).deviceID = 1),
      "spec.pxe.redfish.deviceID: must be a string",
    ],
    [
      "site label",
      (m) => (m.metadata.labels!["unbounded-cloud.io/site"] = "rack a"),
      'metadata.labels["unbounded-cloud.io/site"]: must be a label value',
    ],
    [
      "duplicate MAC in one Machine",
      (m) =>
        m.spec.pxe!.dhcpLeases!.push({ ...m.spec.pxe!.dhcpLeases![0]!, mac: "AA:BB:CC:DD:EE:01", ipv4: "10.0.0.12" }),
      "spec.pxe.dhcpLeases[1].mac: duplicates spec.pxe.dhcpLeases[0].mac",
    ],
  ];
  for (const [what, mutate, expected] of cases) {
    it(`names the file and field for a bad ${what}`, () => {
      const errors = errorsOf(mutate);
      assert.ok(
        errors.some((e) => e.startsWith(`${SOURCE}: ${expected}`)),
        `expected "${SOURCE}: ${expected}" in:\n${errors.join("\n")}`,
      );
    });
  }

  it("reports every problem of a document at once", () => {
    const errors = errorsOf((m) => {
      m.spec.pxe!.dhcpLeases![0]!.mac = "x";
      m.spec.pxe!.dhcpLeases![0]!.ipv4 = "y";
    });
    assert.equal(errors.length, 2);
  });

  it("rejects non-mapping documents", () => {
    const result = validator.validate(["a"], SOURCE);
    assert.deepEqual(result, { ok: false, errors: [`${SOURCE}: document: must be a mapping`] });
  });

  it("turns JSON pointers into field paths", () => {
    assert.equal(jsonPointerToPath("/spec/pxe/dhcpLeases/0/mac"), "spec.pxe.dhcpLeases[0].mac");
    assert.equal(jsonPointerToPath("/metadata/labels/a~1b"), 'metadata.labels["a/b"]');
  });
});

describe("machine schema: strings that reach templates (§4.2)", () => {
  it("rejects the newline namespace that injected a GRUB menuentry, naming the field", () => {
    const errors = errorsOf((m) => {
      m.metadata.namespace = 'default\n}\nmenuentry "pwned" {\n  linux /vmlinuz init=/bin/sh';
    });
    assert.deepEqual(errors, [
      `${SOURCE}: metadata.namespace: must be a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters`,
    ]);
  });

  it("validates names, namespaces, label and annotation keys and values as Kubernetes does", () => {
    const ok = example();
    ok.metadata.namespace = "unbounded-kube";
    ok.metadata.labels = { "unbounded-cloud.io/site": "rack-a", app: "", "a.b/c_d.e-f": "x_y.z-1" };
    ok.metadata.annotations = { "example.com/note": "free text, with 'quotes' \"and\" $vars; and {braces}" };
    const accepted = validator.validate(ok, SOURCE);
    assert.ok(accepted.ok, accepted.ok ? "" : accepted.errors.join("\n"));

    const cases: [string, (m: Machine) => void, RegExp][] = [
      [
        "name",
        (m) => {
          m.metadata.name = "Node_01";
        },
        /^metadata\.name: must be a DNS-1123 name/,
      ],
      [
        "namespace",
        (m) => {
          m.metadata.namespace = "a".repeat(64);
        },
        /^metadata\.namespace: must be a DNS-1123 label/,
      ],
      [
        "label key",
        (m) => {
          m.metadata.labels = { "bad key": "v" };
        },
        /^metadata\.labels\["bad key"\]: key must be a Kubernetes key/,
      ],
      [
        "label key prefix",
        (m) => {
          m.metadata.labels = { "Example.com/x": "v" };
        },
        /^metadata\.labels\["Example\.com\/x"\]: key/,
      ],
      [
        "label key newline",
        (m) => {
          m.metadata.labels = { "a\nb": "v" };
        },
        /^metadata\.labels\["a\\nb"\]: key/,
      ],
      [
        "label value",
        (m) => {
          m.metadata.labels = { a: "x y" };
        },
        /^metadata\.labels\.a: must be a label value/,
      ],
      [
        "annotation key",
        (m) => {
          m.metadata.annotations = { "/x": "v" };
        },
        /^metadata\.annotations\["\/x"\]: key/,
      ],
      [
        "annotation value",
        (m) => {
          m.metadata.annotations = { a: "line1\nline2" };
        },
        /^metadata\.annotations\.a: must not contain control characters/,
      ],
      [
        "annotation value C1",
        (m) => {
          m.metadata.annotations = { a: "x\u0085y" };
        },
        /^metadata\.annotations\.a: must not contain control/,
      ],
      [
        "ssh username",
        (m) => {
          m.spec.ssh = { host: "h", username: "a\tb", privateKeyRef: { name: "k", namespace: "n" } };
        },
        /^spec\.ssh\.username: must not contain control/,
      ],
      [
        "redfish username",
        (m) => {
          m.spec.pxe!.redfish!.username = "admin\r\n";
        },
        /^spec\.pxe\.redfish\.username: must not contain control/,
      ],
      [
        "deviceID",
        (m) => {
          m.spec.pxe!.redfish!.deviceID = "1\0";
        },
        /^spec\.pxe\.redfish\.deviceID: must not contain control/,
      ],
      [
        "secret key",
        (m) => {
          m.spec.pxe!.redfish!.passwordRef.key = "pass word";
        },
        /^spec\.pxe\.redfish\.passwordRef\.key: must be a Secret\/ConfigMap key/,
      ],
      [
        "targetDisk",
        (m) => {
          m.spec.pxe!.targetDisk = "/dev/sda\nrm";
        },
        /^spec\.pxe\.targetDisk: must not contain control/,
      ],
      [
        "agent image",
        (m) => {
          m.spec.agent = { image: "x\ny" };
        },
        /^spec\.agent\.image: must not contain control/,
      ],
      [
        "download url",
        (m) => {
          m.spec.agent = { downloads: { runc: { url: "u\n" } } };
        },
        /^spec\.agent\.downloads\.runc\.url: must not contain control/,
      ],
      [
        "k8s version",
        (m) => {
          m.spec.kubernetes = { version: "v1.30\n", bootstrapTokenRef: { name: "t" } };
        },
        /^spec\.kubernetes\.version: must not contain control/,
      ],
      [
        "node labels",
        (m) => {
          m.spec.kubernetes = { nodeLabels: { "a b": "c" }, bootstrapTokenRef: { name: "t" } };
        },
        /^spec\.kubernetes\.nodeLabels\["a b"\]: key/,
      ],
      [
        "taints",
        (m) => {
          m.spec.kubernetes = { registerWithTaints: ["a\n"], bootstrapTokenRef: { name: "t" } };
        },
        /^spec\.kubernetes\.registerWithTaints\[0\]: must not contain control/,
      ],
      [
        "providerID",
        (m) => {
          m.spec.providerID = "x\u001b[2J";
        },
        /^spec\.providerID: must not contain control/,
      ],
    ];
    for (const [what, mutate, expected] of cases) {
      const errors = errorsOf(mutate).map((e) => e.slice(SOURCE.length + 2));
      assert.ok(
        errors.some((e) => expected.test(e)),
        `${what}: ${errors.join(" | ")}`,
      );
      assert.ok(!errors.some((e) => e === ""), what);
    }
  });

  it("still carries multi-line values templates never interpolate (PEM keys, condition messages)", () => {
    const doc = example();
    doc.status!.tpm = { ekPublicKey: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n" };
    doc.status!.conditions![0]!.message = "line one\nline two";
    const result = validator.validate(doc, SOURCE);
    assert.ok(result.ok, result.ok ? "" : result.errors.join("\n"));
  });
});
