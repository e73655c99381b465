import assert from "node:assert/strict";
import type { NetworkInterfaceInfo } from "node:os";
import { test } from "node:test";
import { interfaceIPv4, interfaceOwning } from "../../../server/dhcp/transport/device-transport.js";

function info(address: string, family: "IPv4" | "IPv6"): NetworkInterfaceInfo {
  const common = { address, netmask: "255.255.255.0", mac: "02:00:00:00:00:01", internal: false, cidr: null };
  return family === "IPv4" ? { ...common, family } : { ...common, family, scopeid: 0 };
}

const table = {
  lo: [info("127.0.0.1", "IPv4"), info("::1", "IPv6")],
  eth0: [info("fe80::1", "IPv6"), info("10.0.1.2", "IPv4"), info("10.0.1.3", "IPv4")],
  eth1: [info("192.168.7.1", "IPv4")],
  wg0: [info("fd00::5", "IPv6")],
};

test("interfaceIPv4 returns the first IPv4 address of the interface, skipping IPv6", () => {
  assert.equal(interfaceIPv4("eth0", table), "10.0.1.2");
  assert.equal(interfaceIPv4("eth1", table), "192.168.7.1");
});

test("interfaceIPv4 is undefined for a missing interface or one without IPv4", () => {
  assert.equal(interfaceIPv4("eth9", table), undefined);
  assert.equal(interfaceIPv4("wg0", table), undefined);
});

test("interfaceOwning finds the interface holding an address, including secondary ones", () => {
  assert.equal(interfaceOwning("10.0.1.3", table), "eth0");
  assert.equal(interfaceOwning("192.168.7.1", table), "eth1");
  assert.equal(interfaceOwning("10.9.9.9", table), undefined);
  assert.equal(interfaceOwning("fd00::5", table), undefined);
});

test("interface helpers default to this host's interfaces (loopback holds 127.0.0.1)", () => {
  const loopback = interfaceOwning("127.0.0.1");
  assert.ok(loopback, "some interface holds 127.0.0.1");
  assert.equal(interfaceIPv4(loopback), "127.0.0.1");
});
