/** The Machine as templates see it: Go field names and Go nil/zero semantics (Appendix A). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Machine } from "../../../server/inventory/types.js";
import { TemplateError, TemplateRenderer } from "../../../server/template/render.js";
import { exampleContext, exampleMachine } from "./fixture-machines.js";

const renderer = new TemplateRenderer();
const render = (source: string, m: Machine = exampleMachine()) => renderer.render(source, m, exampleContext, "t");

function execError(source: string, m: Machine = exampleMachine()): TemplateError {
  try {
    render(source, m);
  } catch (e) {
    assert.ok(e instanceof TemplateError);
    assert.equal(e.phase, "exec");
    return e;
  }
  assert.fail(`expected ${source} to fail`);
}

describe("Machine template data", () => {
  it("exposes ObjectMeta fields promoted and through .ObjectMeta", () => {
    assert.equal(
      render("{{ .Machine.Name }} {{ .Machine.ObjectMeta.Name }} {{ .Machine.GetName }}"),
      "node-01 node-01 node-01",
    );
    assert.equal(render("[{{ .Machine.Namespace }}] {{ .Machine.Generation }} {{ .Machine.Kind }}"), "[] 3 Machine");
    assert.equal(render('{{ index .Machine.Labels "unbounded-cloud.io/site" }}'), "rack-a");
    assert.equal(render("{{ .Machine.CreationTimestamp }}"), "0001-01-01 00:00:00 +0000 UTC");
  });

  it("maps spec fields to Go names", () => {
    const m = exampleMachine();
    m.spec.kubernetes = {
      version: "1.33.2",
      nodeLabels: { b: "2", a: "1" },
      registerWithTaints: ["x=y:NoSchedule"],
      bootstrapTokenRef: { name: "tok" },
    };
    m.spec.agent!.downloads = { kubernetes: { url: "https://mirror/k8s" } };
    assert.equal(
      render(
        "{{ .Machine.Spec.PXE.Image }}|{{ range .Machine.Spec.PXE.DHCPLeases }}{{ .MAC }} {{ .IPv4 }} {{ .SubnetMask }} {{ .Gateway }} {{ .DNS }}{{ end }}",
        m,
      ),
      "ghcr.io/azure/images/host-ubuntu2404:v1|aa:bb:cc:dd:ee:01 10.0.0.11 255.255.255.0 10.0.0.1 [10.0.0.1]",
    );
    assert.equal(
      render(
        "{{ with .Machine.Spec.PXE.Redfish }}{{ .URL }} {{ .Username }} {{ .DeviceID }} {{ .PasswordRef.Key }}{{ end }}",
        m,
      ),
      "https://10.0.10.11 admin 1 password",
    );
    assert.equal(render("{{ .Machine.Spec.PXE.CloudInit.UserDataConfigMapRef.Name }}", m), "my-cloud-init");
    assert.equal(
      render(
        "{{ .Machine.Spec.Kubernetes.Version }} {{ .Machine.Spec.Kubernetes.NodeLabels }} {{ .Machine.Spec.Kubernetes.RegisterWithTaints }} {{ .Machine.Spec.Kubernetes.BootstrapTokenRef.Name }}",
        m,
      ),
      "1.33.2 map[a:1 b:2] [x=y:NoSchedule] tok",
    );
    assert.equal(
      render("{{ .Machine.Spec.Agent.Image }} {{ .Machine.Spec.Agent.Downloads.Kubernetes.URL }}", m),
      "ghcr.io/azure/images/agent-ubuntu2404:v1 https://mirror/k8s",
    );
    assert.equal(render("{{ .Machine.Spec.PXE.TargetArchitecture }}", m), "amd64");
  });

  it("maps status fields, conditions included", () => {
    assert.equal(
      render("{{ .Machine.Status.TPM.EKPublicKey }}"),
      "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n",
    );
    assert.equal(render("{{ .Machine.Status.Redfish.CertFingerprint }}"), "ab:cd:01");
    assert.equal(
      render(
        "{{ range .Machine.Status.Conditions }}{{ .Type }}/{{ .Status }}/{{ .Reason }}/{{ .ObservedGeneration }}/{{ .LastTransitionTime }}/{{ .Message }}{{ end }}",
      ),
      "Repaved/True/Succeeded/3/2025-01-02 03:04:05 +0000 UTC/image=ghcr.io/azure/images/host-ubuntu2404:v1",
    );
    assert.equal(render('{{ range .Machine.Status.Conditions }}{{ if eq .Status "True" }}ok{{ end }}{{ end }}'), "ok");
  });

  it("counters are int64 and compare with int constants", () => {
    const m = exampleMachine({ spec: { repaveCounter: 2 }, status: { repaveCounter: 1 } });
    assert.equal(render('{{ printf "%T" .Machine.Spec.Operations.RepaveCounter }}', m), "int64");
    assert.equal(
      render(
        "{{ eq .Machine.Spec.Operations.RepaveCounter 2 }} {{ gt .Machine.Spec.Operations.RepaveCounter .Machine.Status.Operations.RepaveCounter }}",
        m,
      ),
      "true true",
    );
    assert.equal(render("{{ .Machine.Spec.Operations.RebootCounter }}", m), "0");
  });

  it("absent optional objects are nil pointers", () => {
    assert.equal(render("{{ if .Machine.Spec.Operations }}yes{{ else }}no{{ end }}"), "no");
    assert.equal(render("{{ with .Machine.Status.Operations }}yes{{ else }}no{{ end }}"), "no");
    const e = execError("before {{ .Machine.Spec.Operations.RebootCounter }}");
    assert.equal(e.partial, "before ");
    assert.match(e.message, /nil pointer evaluating \*v1alpha3\.OperationsSpec\.RebootCounter$/);
    assert.match(execError("{{ len .Machine.Spec.Kubernetes }}").message, /len of nil pointer/);
  });

  it("absent scalars are zero values and absent lists/maps are nil", () => {
    const m = exampleMachine();
    m.spec.pxe!.dhcpLeases = undefined;
    assert.equal(render("[{{ .Machine.Status.Phase }}][{{ .Machine.Status.Message }}]", m), "[][]");
    assert.equal(
      render(
        "{{ len .Machine.Spec.PXE.DHCPLeases }}{{ range .Machine.Spec.PXE.DHCPLeases }}x{{ else }}-none{{ end }}",
        m,
      ),
      "0-none",
    );
    assert.equal(render("{{ len .Machine.Annotations }} {{ .Machine.Annotations }}", m), "0 map[]");
    assert.match(
      execError("{{ (index .Machine.Spec.PXE.DHCPLeases 0).IPv4 }}", m).message,
      /error calling index: reflect: slice index out of range/,
    );
  });

  it("unknown fields are exec errors, as on Go structs", () => {
    assert.match(
      execError("{{ .Machine.Spec.Nope }}").message,
      /can't evaluate field Nope in type v1alpha3\.MachineSpec$/,
    );
    assert.match(
      execError("{{ .Machine.Spec.Operations.Nope }}").message,
      /can't evaluate field Nope in type \*v1alpha3\.OperationsSpec$/,
    );
  });

  it("has no .KubernetesVersion or .ClusterDNS (spec §5.5, §12 item 31)", () => {
    for (const field of ["KubernetesVersion", "ClusterDNS"]) {
      const e = execError(`x{{ .${field} }}`);
      assert.equal(e.partial, "x");
      assert.match(e.message, new RegExp(`can't evaluate field ${field} in type netboot\\.templateData$`));
    }
    assert.equal(render("{{ .ServeURL }} {{ .ApiserverURL }}"), "http://192.168.200.1:8880 https://192.168.200.2:6443");
  });
});
