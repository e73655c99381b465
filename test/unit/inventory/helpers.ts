import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { FileInventory, type FileInventoryOptions } from "../../../server/inventory/file-inventory.js";

export const silentLog = pino({ level: "silent" });

/**
 * A temp folder removed after the test. Closers registered with `beforeRemove` run first, so a
 * store that writes on close never recreates the folder after its removal.
 */
export async function tempDir(t: {
  after(fn: () => Promise<void>): void;
}): Promise<{ dir: string; beforeRemove(close: () => Promise<void>): void }> {
  const dir = await mkdtemp(path.join(tmpdir(), "metalman-inv-"));
  const closers: Array<() => Promise<void>> = [];
  t.after(async () => {
    for (const close of closers) await close();
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, beforeRemove: (close) => closers.push(close) };
}

/**
 * An inventory folder (`machines/`, holding `files`) and a state folder in a temp folder, and
 * `open()` for a loaded, non-watching FileInventory over them (closed before the folder goes).
 * `opts`, then open's `more`, override the defaults.
 */
export async function inventoryFixture(
  t: { after(fn: () => Promise<void>): void },
  files: Record<string, string>,
  opts: Partial<FileInventoryOptions> = {},
) {
  const { dir: root, beforeRemove } = await tempDir(t);
  const dir = path.join(root, "machines");
  const stateDir = path.join(root, "state");
  await mkdir(dir);
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  const open = async (more: Partial<FileInventoryOptions> = {}): Promise<FileInventory> => {
    const inv = new FileInventory({ dir, stateDir, log: silentLog, watch: false, ...opts, ...more });
    beforeRemove(() => inv.close());
    await inv.load();
    return inv;
  };
  return { root, dir, stateDir, open };
}

/** The §2.4 example Machine, as YAML. */
export const EXAMPLE_MACHINE_YAML = `apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata:
  name: node-01
  labels:
    unbounded-cloud.io/site: rack-a
spec:
  pxe:
    image: ghcr.io/azure/images/host-ubuntu2404:v1
    dhcpLeases:
    - mac: "aa:bb:cc:dd:ee:01"
      ipv4: "10.0.0.11"
      subnetMask: "255.255.255.0"
      gateway: "10.0.0.1"
      dns: ["10.0.0.1"]
    redfish:
      url: https://10.0.10.11
      username: admin
      deviceID: "1"
      passwordRef: {name: bmc-node-01-pass, namespace: unbounded-kube, key: password}
    cloudInit:
      userDataConfigMapRef: {name: my-cloud-init, namespace: unbounded-kube}
  agent:
    image: ghcr.io/azure/images/agent-ubuntu2404:v1
  operations:
    rebootCounter: 1
    repaveCounter: 1
status:
  redfish: {certFingerprint: "ab:cd:01"}
  tpm: {ekPublicKey: "-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\\n"}
  operations: {rebootCounter: 1, repaveCounter: 1}
  conditions:
  - {type: Repaved, status: "True", reason: Succeeded, message: "image=ghcr.io/azure/images/host-ubuntu2404:v1"}
  - {type: CloudInitDone, status: "True", reason: Succeeded, message: "cloud-init completed successfully"}
`;

/** A minimal PXE Machine document as YAML. */
export function machineYaml(
  name: string,
  opts: { mac?: string; ip?: string; site?: string; image?: string; extraLeases?: string } = {},
): string {
  const labels = opts.site ? `\n  labels:\n    unbounded-cloud.io/site: ${opts.site}` : "";
  return `apiVersion: unbounded-cloud.io/v1alpha3
kind: Machine
metadata:
  name: ${name}${labels}
spec:
  pxe:
    image: ${opts.image ?? "ghcr.io/azure/images/host-ubuntu2404:v1"}
    dhcpLeases:
    - mac: "${opts.mac ?? "aa:bb:cc:dd:ee:01"}"
      ipv4: "${opts.ip ?? "10.0.0.11"}"
      subnetMask: "255.255.255.0"
      gateway: "10.0.0.1"${opts.extraLeases ?? ""}
`;
}

/** Resolves with the first value `poll` returns that is not undefined; rejects after `ms`. */
export async function waitFor<T>(what: string, poll: () => T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = poll();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
