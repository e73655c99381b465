/** The bench's Machines: one lease each, unique MAC and IP from the index. */
export const benchMac = (i: number) =>
  `02:00:${[(i >> 16) & 255, (i >> 8) & 255, i & 255, 1].map((b) => b.toString(16).padStart(2, "0")).join(":")}`;

export const benchMachine = (i: number, ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`) => ({
  apiVersion: "unbounded-cloud.io/v1alpha3",
  kind: "Machine",
  metadata: { name: `node-${String(i).padStart(5, "0")}`, labels: { "unbounded-cloud.io/site": "bench" } },
  spec: {
    pxe: {
      image: "ghcr.io/azure/images/host-ubuntu2404:v1",
      dhcpLeases: [{ mac: benchMac(i), ipv4: ip, subnetMask: "255.0.0.0", gateway: "10.0.0.1", dns: ["10.0.0.1"] }],
    },
    operations: { rebootCounter: 1, repaveCounter: 1 },
  },
});
