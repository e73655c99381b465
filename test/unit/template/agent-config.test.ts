/** AgentConfigJSON serialisation (spec §5.5.1): Go json.MarshalIndent("    ", "  ") of upstream's struct. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { agentConfigJSON, type GoJSON, goJSONString, goMarshalIndent } from "../../../server/template/agent-config.js";
import type { TemplateContext } from "../../../server/template/render.js";
import { exampleContext, exampleMachine } from "./fixture-machines.js";

describe("AgentConfigJSON", () => {
  it("matches the §5.5.1 example byte for byte", () => {
    assert.equal(
      agentConfigJSON(exampleMachine(), exampleContext),
      [
        "{",
        '      "MachineName": "node-01",',
        '      "Cluster": {',
        '        "CaCertBase64": "LS0tLS1CRUdJTi…",',
        '        "ClusterDNS": "10.96.0.10",',
        '        "Version": "v1.34.1"',
        "      },",
        '      "Kubelet": {',
        '        "ApiServer": "https://192.168.200.2:6443",',
        '        "Auth": {},',
        '        "Labels": {',
        '          "kubernetes.azure.com/cluster": "mc_rg_aks",',
        '          "kubernetes.azure.com/managed": "false"',
        "        },",
        '        "RegisterWithTaints": null',
        "      },",
        '      "CRI": {',
        '        "Containerd": {},',
        '        "Runc": {}',
        "      },",
        '      "CNI": {},',
        '      "OCIImage": "ghcr.io/azure/images/agent-ubuntu2404:v1",',
        '      "Attest": {',
        '        "URL": "http://192.168.200.1:8880"',
        "      }",
        "    }",
      ].join("\n"),
    );
  });

  it("merges node labels under provider labels, keeps taints, adds downloads, prefers spec version", () => {
    const m = exampleMachine();
    m.spec.agent = {
      downloads: {
        kubernetes: { baseURL: "https://mirror/k8s", version: "v1.33.0" },
        runc: {},
        crictl: { url: "https://mirror/crictl.tgz" },
      },
    };
    m.spec.kubernetes = {
      version: "1.33.0",
      nodeLabels: { "kubernetes.azure.com/managed": "true", role: "a<b>&c" },
      registerWithTaints: ["dedicated=pxe:NoSchedule"],
      bootstrapTokenRef: { name: "t" },
    };
    const ctx: TemplateContext = { ...exampleContext, serveUrl: "" };
    const out = agentConfigJSON(m, ctx);
    const parsed = JSON.parse(out);
    assert.equal(parsed.Cluster.Version, "v1.33.0");
    assert.deepEqual(parsed.Kubelet.Labels, {
      "kubernetes.azure.com/cluster": "mc_rg_aks",
      "kubernetes.azure.com/managed": "false",
      role: "a<b>&c",
    });
    assert.ok(out.includes('"role": "a\\u003cb\\u003e\\u0026c"'));
    assert.ok(out.includes('"RegisterWithTaints": [\n          "dedicated=pxe:NoSchedule"\n        ]'));
    assert.deepEqual(Object.keys(parsed), ["MachineName", "Cluster", "Kubelet", "CRI", "CNI", "Downloads"]);
    assert.deepEqual(parsed.Downloads, {
      Kubernetes: { BaseURL: "https://mirror/k8s", Version: "v1.33.0" },
      Crictl: { URL: "https://mirror/crictl.tgz" },
    });
  });

  it("omits Downloads when no entry has a value, and labels are {} when none", () => {
    const m = exampleMachine();
    m.spec.agent = { downloads: { cni: {} } };
    const parsed = JSON.parse(agentConfigJSON(m, { ...exampleContext, providerLabels: undefined }));
    assert.equal(parsed.Downloads, undefined);
    assert.equal(parsed.OCIImage, undefined);
    assert.deepEqual(parsed.Kubelet.Labels, {});
  });

  it("encodes strings and empty containers like encoding/json", () => {
    assert.equal(goJSONString('q"\\\n\t\u0001<>&\u2028é'), '"q\\"\\\\\\n\\t\\u0001\\u003c\\u003e\\u0026\\u2028é"');
    assert.equal(
      goMarshalIndent(
        new Map<string, GoJSON>([
          ["a", []],
          ["b", new Map()],
        ]),
        "",
        "  ",
      ),
      '{\n  "a": [],\n  "b": {}\n}',
    );
  });
});
