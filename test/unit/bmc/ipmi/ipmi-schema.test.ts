/** Issue 6 §6: `spec.pxe.ipmi` is validated the Kubernetes way (defaults, formats, one BMC per Machine). */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MachineValidator } from "../../../../server/inventory/machine-schema.js";

const base = (pxe: Record<string, unknown>) => ({
  apiVersion: "unbounded-cloud.io/v1alpha3",
  kind: "Machine",
  metadata: { name: "ipmi-01" },
  spec: { pxe: { image: "ghcr.io/azure/images/host-ubuntu2404:v1", ...pxe } },
});
const ipmi = { host: "10.0.0.5", username: "ADMIN", passwordRef: { name: "bmc", namespace: "default" } };

describe("spec.pxe.ipmi schema", () => {
  const v = new MachineValidator();
  it("applies the defaults: port 623, ADMINISTRATOR, passwordRef key password", () => {
    const r = v.validate(base({ ipmi }), "m.yaml");
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.machine.spec.pxe?.ipmi, {
      ...ipmi,
      port: 623,
      privilege: "ADMINISTRATOR",
      passwordRef: { name: "bmc", namespace: "default", key: "password" },
    });
  });
  it("accepts IPv6 and DNS names with upper case; refuses junk, bad ports, unknown fields and both BMCs", () => {
    for (const host of ["fd00::5", "BMC-01.example.com"])
      assert.ok(v.validate(base({ ipmi: { ...ipmi, host } }), "m").ok);
    const errors = (pxe: Record<string, unknown>) => {
      const r = v.validate(base(pxe), "m.yaml");
      return r.ok ? [] : r.errors;
    };
    assert.match(
      errors({ ipmi: { ...ipmi, host: "10.0.0.5;reboot" } }).join(),
      /spec\.pxe\.ipmi\.host: must be an IPv4/,
    );
    assert.match(errors({ ipmi: { ...ipmi, port: 70000 } }).join(), /spec\.pxe\.ipmi\.port/);
    assert.match(errors({ ipmi: { ...ipmi, cipherSuite: 99 } }).join(), /spec\.pxe\.ipmi\.cipherSuite/);
    assert.match(errors({ ipmi: { ...ipmi, privilege: "ROOT" } }).join(), /privilege: must be one of/);
    assert.match(errors({ ipmi: { ...ipmi, password: "x" } }).join(), /spec\.pxe\.ipmi\.password: unknown field/);
    assert.match(errors({ ipmi: { host: "10.0.0.5" } }).join(), /spec\.pxe\.ipmi\.username: is required/);
    assert.match(
      errors({
        ipmi,
        redfish: { url: "https://10.0.0.6", username: "a", passwordRef: { name: "b", namespace: "default" } },
      }).join(),
      /either spec\.pxe\.redfish or spec\.pxe\.ipmi, not both/,
    );
  });
});
