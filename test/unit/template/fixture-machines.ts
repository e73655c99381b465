/** Machines and contexts shared by the template tests (spec/metalman.md §2.4, §5.5.1). */
import type { Machine } from "../../../server/inventory/types.js";
import type { TemplateContext } from "../../../server/template/render.js";

/** The cluster values behind the AgentConfigJSON example of §5.5.1. */
export const exampleContext: TemplateContext = {
  serveUrl: "http://192.168.200.1:8880",
  apiserverUrl: "https://192.168.200.2:6443",
  cluster: { caCertBase64: "LS0tLS1CRUdJTi…", clusterDNS: "10.96.0.10", version: "1.34.1" },
  providerLabels: { "kubernetes.azure.com/managed": "false", "kubernetes.azure.com/cluster": "mc_rg_aks" },
};

/** node-01 of §2.4; pass counters to shape spec/status operations (undefined = absent). */
export function exampleMachine(
  ops: {
    spec?: { rebootCounter?: number; repaveCounter?: number };
    status?: { rebootCounter?: number; repaveCounter?: number };
  } = {},
): Machine {
  return {
    apiVersion: "unbounded-cloud.io/v1alpha3",
    kind: "Machine",
    metadata: { name: "node-01", labels: { "unbounded-cloud.io/site": "rack-a" }, generation: 3 },
    spec: {
      pxe: {
        image: "ghcr.io/azure/images/host-ubuntu2404:v1",
        dhcpLeases: [
          {
            mac: "aa:bb:cc:dd:ee:01",
            ipv4: "10.0.0.11",
            subnetMask: "255.255.255.0",
            gateway: "10.0.0.1",
            dns: ["10.0.0.1"],
          },
        ],
        redfish: {
          url: "https://10.0.10.11",
          username: "admin",
          deviceID: "1",
          passwordRef: { name: "bmc-node-01-pass", namespace: "unbounded-kube", key: "password" },
        },
        cloudInit: { userDataConfigMapRef: { name: "my-cloud-init", namespace: "unbounded-kube" } },
      },
      agent: { image: "ghcr.io/azure/images/agent-ubuntu2404:v1" },
      ...(ops.spec ? { operations: ops.spec } : {}),
    },
    status: {
      redfish: { certFingerprint: "ab:cd:01" },
      tpm: { ekPublicKey: "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n" },
      ...(ops.status ? { operations: ops.status } : {}),
      conditions: [
        {
          type: "Repaved",
          status: "True",
          reason: "Succeeded",
          message: "image=ghcr.io/azure/images/host-ubuntu2404:v1",
          observedGeneration: 3,
          lastTransitionTime: "2025-01-02T03:04:05Z",
        },
      ],
    },
  };
}
