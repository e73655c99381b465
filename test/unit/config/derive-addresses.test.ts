import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type AddressProbes, deriveAddresses } from "../../../server/config/derive-addresses.js";
import { ConfigError } from "../../../server/config/serve-pxe-config.js";

const probes: AddressProbes = {
  outboundIp: () => "192.168.1.5",
  interfaceIPv4: (name) => ({ eth0: "192.168.1.5", eth1: "10.0.0.2" })[name],
  interfaceOwning: (ip) => ({ "192.168.1.5": "eth0", "10.0.0.2": "eth1" })[ip],
};
const base = { bindAddress: "0.0.0.0", serveUrl: "", httpPort: 8880, dhcpInterface: "", dhcpAutoInterface: false };

describe("deriveAddresses", () => {
  it("relay mode, bind 0.0.0.0: outbound IP and a derived serve-url", () => {
    assert.deepEqual(deriveAddresses(base, probes), {
      serverIp: "192.168.1.5",
      serveUrl: "http://192.168.1.5:8880",
      dhcpMode: "relay",
      dhcpInterface: "",
    });
  });

  it("a specific bind address is the server IP", () => {
    const d = deriveAddresses({ ...base, bindAddress: "10.0.0.2", httpPort: 9000 }, probes);
    assert.equal(d.serverIp, "10.0.0.2");
    assert.equal(d.serveUrl, "http://10.0.0.2:9000");
  });

  it("fixes §12 item 25: serve-url with bind 0.0.0.0 never advertises 0.0.0.0", () => {
    const byIp = deriveAddresses({ ...base, serveUrl: "http://10.0.0.2:8880" }, probes);
    assert.equal(byIp.serverIp, "10.0.0.2");
    assert.equal(byIp.serveUrl, "http://10.0.0.2:8880");
    const byName = deriveAddresses({ ...base, serveUrl: "https://pxe.example" }, probes);
    assert.equal(byName.serverIp, "192.168.1.5");
    assert.equal(byName.serveUrl, "https://pxe.example");
  });

  it("interface mode: the DHCP server IP is the interface's first IPv4", () => {
    const d = deriveAddresses({ ...base, dhcpInterface: "eth1" }, probes);
    assert.deepEqual(d, {
      serverIp: "10.0.0.2",
      serveUrl: "http://10.0.0.2:8880",
      dhcpMode: "interface",
      dhcpInterface: "eth1",
    });
  });

  it("auto-interface picks the interface holding the server IP", () => {
    const d = deriveAddresses({ ...base, bindAddress: "10.0.0.2", dhcpAutoInterface: true }, probes);
    assert.equal(d.dhcpMode, "interface");
    assert.equal(d.dhcpInterface, "eth1");
    assert.equal(d.serverIp, "10.0.0.2");
  });

  it("errors name the flag", () => {
    assert.throws(
      () => deriveAddresses({ ...base, dhcpInterface: "eth9" }, probes),
      /^ConfigError: --dhcp-interface: interface eth9/,
    );
    assert.throws(
      () => deriveAddresses({ ...base, bindAddress: "10.9.9.9", dhcpAutoInterface: true }, probes),
      (err: Error) =>
        err instanceof ConfigError && err.message.startsWith("--dhcp-auto-interface: no network interface holds"),
    );
    const noRoute = {
      ...probes,
      outboundIp: () => {
        throw new Error("ENETUNREACH");
      },
    };
    assert.throws(() => deriveAddresses(base, noRoute), /--bind-address: cannot detect/);
  });
});

describe("deriveAddresses with --dhcp-mode", () => {
  it("proxy mode keeps the interface and its address; the old flags still derive interface or relay", () => {
    const proxy = deriveAddresses({ ...base, dhcpInterface: "eth1", dhcpMode: "proxy" }, probes);
    assert.equal(proxy.dhcpMode, "proxy");
    assert.equal(proxy.dhcpInterface, "eth1");
    assert.equal(deriveAddresses({ ...base, dhcpInterface: "eth1", dhcpMode: "" }, probes).dhcpMode, "interface");
    assert.equal(deriveAddresses({ ...base, dhcpMode: "relay" }, probes).dhcpMode, "relay");
  });
});
