/**
 * cloud-init/user-data from a Machine's userDataConfigMapRef (spec §5.6, issue 6 §1): the ConfigMap
 * is a manifest in the inventory folder, read through the SecretReader, served by the real resolver.
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { FileInventory } from "../../../server/inventory/file-inventory.js";
import { NetbootResolver, USER_DATA_PATH } from "../../../server/netboot/resolver.js";
import { userDataFromConfigMaps } from "../../../server/netboot/user-data.js";
import { machineYaml, silentLog, tempDir } from "../inventory/helpers.js";

function withUserDataRef(name: string, ip: string, ref: string): string {
  return machineYaml(name, { ip, mac: `aa:bb:cc:dd:ee:${ip.split(".")[3]!.padStart(2, "0")}` }).replace(
    "  pxe:\n",
    `  pxe:\n    cloudInit:\n      userDataConfigMapRef: ${ref}\n`,
  );
}

const CONFIG_MAP = `apiVersion: v1
kind: ConfigMap
metadata: {name: rack-a-cloud-init, namespace: unbounded-kube}
data:
  user-data: |
    #cloud-config
    hostname: from-configmap
  other: |
    #cloud-config
    other: true
`;

describe("cloud-init user-data from a ConfigMap in the inventory folder", () => {
  it("serves the referenced key, the default key, the default document, and 404s a missing key", async (t) => {
    const { dir: root, beforeRemove } = await tempDir(t);
    const dir = path.join(root, "machines");
    await mkdir(dir);
    await writeFile(path.join(dir, "cloud-init.yaml"), CONFIG_MAP);
    await writeFile(
      path.join(dir, "machines.yaml"),
      [
        withUserDataRef("node-default-key", "10.0.0.11", "{name: rack-a-cloud-init, namespace: unbounded-kube}"),
        withUserDataRef(
          "node-other-key",
          "10.0.0.12",
          "{name: rack-a-cloud-init, namespace: unbounded-kube, key: other}",
        ),
        withUserDataRef("node-missing-cm", "10.0.0.13", "{name: nope, namespace: unbounded-kube}"),
        withUserDataRef(
          "node-missing-key",
          "10.0.0.14",
          "{name: rack-a-cloud-init, namespace: unbounded-kube, key: x}",
        ),
        machineYaml("node-no-ref", { ip: "10.0.0.15", mac: "aa:bb:cc:dd:ee:15" }),
      ].join("---\n"),
    );
    const inventory = new FileInventory({ dir, stateDir: path.join(root, "state"), log: silentLog, watch: false });
    beforeRemove(() => inventory.close());
    await inventory.load();
    assert.deepEqual(inventory.problems(), []);
    const resolver = new NetbootResolver({
      images: { lookup: () => ({ state: "error", ref: "x", reason: "no image needed" }) } as never,
      render: () => "",
      userData: userDataFromConfigMaps(inventory.secrets),
    });
    const body = async (name: string) => {
      const artifact = await resolver.resolve(inventory.get(name)!, USER_DATA_PATH);
      if (artifact.kind === "rendered") return artifact.body.toString("utf8");
      return artifact.kind;
    };
    assert.equal(await body("node-default-key"), "#cloud-config\nhostname: from-configmap\n");
    assert.equal(await body("node-other-key"), "#cloud-config\nother: true\n");
    assert.equal(await body("node-missing-cm"), "#cloud-config\n", "no such ConfigMap: the default document");
    assert.equal(await body("node-no-ref"), "#cloud-config\n");
    assert.equal(await body("node-missing-key"), "error", "the ConfigMap without the key: an error (404)");
  });
});
