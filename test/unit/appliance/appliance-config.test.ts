import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ApplianceInputs, planAppliance } from "../../../server/appliance/appliance-config.js";
import { servePxeConfigKeys } from "../../../server/config/serve-pxe-config.js";
import { hashPassword } from "../../../server/console/password-hash.js";

const nics = [
  { name: "eth1", mac: "52:54:00:00:00:02", busPath: "/sys/devices/pci0000:00/0000:00:03.0" },
  { name: "eth0", mac: "52:54:00:00:00:01", busPath: "/sys/devices/pci0000:00/0000:00:02.0" },
];
const inputs = (yamlText: string | undefined, extra: Partial<ApplianceInputs> = {}): ApplianceInputs => ({
  yamlText,
  nics,
  servePxeKeys: servePxeConfigKeys(),
  configFileExists: () => false,
  ...extra,
});

describe("appliance.yaml -> serve-pxe config and networkd units", () => {
  it("derives everything without a file: first NIC by bus manages (DHCP), the second provisions", () => {
    const plan = planAppliance(inputs(undefined));
    assert.deepEqual(plan.errors, []);
    assert.equal(plan.management?.name, "eth0");
    assert.equal(plan.management?.address, "dhcp");
    assert.equal(plan.provisioning?.name, "eth1");
    assert.equal(plan.provisioning?.address, "10.0.0.1/24");
    assert.equal(plan.mode, "standalone");
    assert.deepEqual(plan.servePxe, {
      inventory: "/var/lib/metalman/machines",
      stateDir: "/var/lib/metalman/state",
      cacheDir: "/var/lib/metalman/cache",
      imageRoot: ["/var/lib/metalman/images", "/usr/share/metalman/images"],
      site: "",
      healthBindAddress: "0.0.0.0",
      healthPort: 8081,
      bindAddress: "10.0.0.1",
      dhcpMode: "interface",
      dhcpInterface: "eth1",
      // The console listens on the management side (every address: the box has two NICs).
      consoleAddress: "0.0.0.0",
      consolePort: 8443,
      // The console's Appliance page shows appliance.yaml's errors from the status this boot wrote.
      applianceStatusFile: "/run/metalman/appliance-status.json",
      applianceUpgradeDir: "/var/lib/metalman/upgrade",
      // No admin.passwordHash: the generated first password goes to a file the text console shows.
      consoleFirstAdminPasswordFile: "/var/lib/metalman/console/first-admin-password",
    });
    const [mgmt, prov] = plan.networkFiles;
    assert.match(mgmt!.text, /MACAddress=52:54:00:00:00:01\n[\s\S]*DHCP=ipv4[\s\S]*ClientIdentifier=mac/);
    assert.match(
      prov!.text,
      /MACAddress=52:54:00:00:00:02\n[\s\S]*Address=10\.0\.0\.1\/24\nConfigureWithoutCarrier=yes/,
    );
  });

  it("every key it writes is one the installed serve-pxe accepts", () => {
    const keys = servePxeConfigKeys();
    for (const key of Object.keys(planAppliance(inputs(undefined)).servePxe)) assert.ok(keys.has(key), key);
  });

  it("roles by MAC, static management address with gateway and DNS, site", () => {
    const plan = planAppliance(
      inputs(
        [
          "site: rack-a",
          "interfaces:",
          "  management: {mac: '52:54:00:00:00:02', address: 192.0.2.10/24, gateway: 192.0.2.1, dns: [192.0.2.53]}",
          "  provisioning: {name: eth0, address: 10.1.0.1/16}",
        ].join("\n"),
      ),
    );
    assert.deepEqual(plan.errors, []);
    assert.equal(plan.management?.name, "eth1");
    assert.equal(plan.provisioning?.name, "eth0");
    assert.equal(plan.servePxe.healthBindAddress, "192.0.2.10");
    assert.equal(plan.servePxe.bindAddress, "10.1.0.1");
    assert.equal(plan.servePxe.site, "rack-a");
    assert.match(plan.networkFiles[0]!.text, /Address=192\.0\.2\.10\/24\nGateway=192\.0\.2\.1\nDNS=192\.0\.2\.53/);
    assert.equal(plan.healthUrl, "http://192.0.2.10:8081/readyz");
  });

  it("console and cluster settings map onto the planned flags once the build has them", () => {
    const keys = new Set([...servePxeConfigKeys(), "consoleAddress", "consolePort", "kubeconfig"]);
    const text =
      "mode: cluster\nsite: rack-a\ninterfaces: {management: {address: 192.0.2.10/24}}\nconsole: {port: 9443}\n";
    const plan = planAppliance(inputs(text, { servePxeKeys: keys, configFileExists: (f) => f === "kubeconfig" }));
    assert.deepEqual(plan.errors, []);
    assert.equal(plan.mode, "cluster");
    assert.equal(plan.kubeconfigSource, "kubeconfig");
    assert.equal(plan.servePxe.kubeconfig, "/var/lib/metalman/cluster/kubeconfig");
    assert.equal(plan.servePxe.consoleAddress, "192.0.2.10");
    assert.equal(plan.servePxe.consolePort, 9443);
    assert.equal(plan.consoleUrl, "https://192.0.2.10:9443/");
  });

  it("admin.passwordHash: a metalman hash is handed to the console's first start; anything else is refused", async () => {
    const hash = await hashPassword("correct horse battery", { log2N: 10, r: 8, p: 1 });
    const plan = planAppliance(inputs(`admin: {passwordHash: "${hash}"}\n`));
    assert.deepEqual(plan.errors, []);
    assert.equal(plan.adminPasswordHash, hash);
    assert.equal(plan.servePxe.consoleAdminPasswordHashFile, "/var/lib/metalman/console/admin-password.hash");
    assert.equal(plan.servePxe.consoleFirstAdminPasswordFile, undefined);
    const bad = planAppliance(inputs('admin: {passwordHash: "$6$rounds=5000$saltsalt$notours"}\n'));
    assert.deepEqual(
      bad.errors.map((e) => e.split(":")[0]),
      ["admin.passwordHash"],
    );
    assert.equal(bad.adminPasswordHash, undefined);
    assert.equal(bad.servePxe.consoleAdminPasswordHashFile, undefined, "no hash: the console generates a password");
  });

  it("a build without --kubeconfig or console flags: cluster mode is reported and runs standalone", () => {
    const older = new Set([...servePxeConfigKeys()].filter((k) => k !== "kubeconfig" && !k.startsWith("console")));
    const plan = planAppliance(inputs("mode: cluster\n", { configFileExists: () => true, servePxeKeys: older }));
    assert.equal(plan.mode, "standalone");
    assert.ok(plan.errors.some((e) => e.startsWith("mode: this build has no cluster sync")));
    assert.equal(plan.servePxe.kubeconfig, undefined);
    assert.equal(plan.servePxe.consolePort, undefined);
    assert.equal(plan.consoleUrl, undefined);
    // This build has both: cluster mode with a kubeconfig, and the console.
    const current = planAppliance(inputs("mode: cluster\n", { configFileExists: () => true }));
    assert.equal(current.mode, "cluster");
    assert.equal(typeof current.servePxe.kubeconfig, "string");
    assert.equal(current.servePxe.consolePort, 8443);
  });

  it("a bad setting is named and replaced by its default; the rest still applies", () => {
    const plan = planAppliance(
      inputs(
        [
          "site: rack-a",
          "mode: cluster",
          "colour: blue",
          "admin: {password: hunter2}",
          "interfaces: {provisioning: {address: dhcp}, management: {mac: 'aa:bb:cc:dd:ee:ff'}}",
          "ssh: {enabled: true}",
          "servePxe: {notAFlag: 1, logLevel: debug}",
        ].join("\n"),
      ),
    );
    const fields = plan.errors.map((e) => e.split(":")[0]);
    assert.deepEqual(fields.sort(), [
      "admin.password",
      "colour",
      "interfaces.management",
      "interfaces.provisioning.address",
      "kubeconfig",
      "servePxe.notAFlag",
      "ssh.authorizedKeys",
    ]);
    assert.ok(!plan.errors.join("\n").includes("hunter2"), "a password never reaches the status");
    assert.equal(plan.mode, "standalone");
    assert.equal(plan.site, "rack-a");
    assert.equal(plan.provisioning?.address, "10.0.0.1/24");
    assert.equal(plan.management?.name, "eth0", "an unknown MAC falls back to the derived NIC");
    assert.equal(plan.ssh.enabled, false);
    assert.equal(plan.servePxe.logLevel, "debug");
  });

  it("YAML that does not parse: one error, every setting derived", () => {
    const plan = planAppliance(inputs("site: [unclosed\n"));
    assert.equal(plan.errors.length, 1);
    assert.match(plan.errors[0]!, /^appliance\.yaml: .*every setting is derived instead$/);
    assert.equal(plan.provisioning?.name, "eth1");
  });

  it("one NIC: management only, netboot on loopback, the missing role reported", () => {
    const plan = planAppliance(inputs(undefined, { nics: [nics[1]!] }));
    assert.equal(plan.management?.name, "eth0");
    assert.equal(plan.provisioning, undefined);
    assert.equal(plan.servePxe.bindAddress, "127.0.0.1");
    assert.equal(plan.servePxe.dhcpMode, "relay");
    assert.ok(plan.errors.some((e) => e.startsWith("interfaces.provisioning: no NIC left")));
  });

  it("SSH turns on only with public keys", () => {
    const plan = planAppliance(
      inputs("ssh: {enabled: true, authorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey admin@x']}\n"),
    );
    assert.deepEqual(plan.errors, []);
    assert.equal(plan.ssh.enabled, true);
  });
});
