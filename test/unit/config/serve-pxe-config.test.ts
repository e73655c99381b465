import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, parseServePxeArgs, servePxeUsage } from "../../../server/config/serve-pxe-config.js";

const env: NodeJS.ProcessEnv = { HOME: "/home/op" };
const cwd = "/work";

function parse(argv: string[], files: Record<string, string> = {}, environment: NodeJS.ProcessEnv = env) {
  return parseServePxeArgs(argv, environment, {
    cwd,
    readFile: (file) => {
      if (!(file in files)) throw Object.assign(new Error("missing"), { code: "ENOENT" });
      return files[file]!;
    },
  });
}

function fails(argv: string[], expected: string, files: Record<string, string> = {}, environment = env) {
  assert.throws(
    () => parse(argv, files, environment),
    (err: Error) => {
      assert.ok(err instanceof ConfigError, `not a ConfigError: ${err}`);
      assert.ok(err.message.startsWith(expected), `"${err.message}" should start with "${expected}"`);
      return true;
    },
  );
}

describe("parseServePxeArgs", () => {
  it("uses upstream defaults", () => {
    const c = parse([]);
    assert.equal(c.help, false);
    assert.equal(c.site, "");
    assert.equal(c.cacheDir, "/home/op/.unbounded/metalman/cache");
    assert.equal(c.stateDir, "/home/op/.unbounded/metalman/state");
    assert.equal(c.inventory, "/home/op/.unbounded/metalman/machines");
    assert.equal(c.bindAddress, "0.0.0.0");
    assert.equal(c.httpPort, 8880);
    assert.equal(c.healthPort, 8081);
    assert.equal(c.tftpPort, 69);
    assert.equal(c.dhcpPort, 67);
    assert.equal(c.dhcpInterface, "");
    assert.equal(c.dhcpAutoInterface, false);
    assert.equal(c.serveUrl, "");
    assert.equal(c.leaderElectLeaseDurationMs, 15_000);
    assert.equal(c.leaderElectRenewDeadlineMs, 10_000);
    assert.equal(c.leaderElectRetryPeriodMs, 2_000);
    assert.deepEqual(c.trustedProxies, []);
    assert.equal(c.logLevel, "info");
    assert.equal(c.apiserverUrl, undefined);
  });

  it("falls back to a relative cache folder without HOME", () => {
    assert.equal(parse([], {}, {}).cacheDir, "/work/.unbounded/metalman/cache");
  });

  it("accepts --flag=value, --flag value and boolean forms", () => {
    const c = parse([
      "--site=rack-a",
      "--http-port",
      "9000",
      "--dhcp-auto-interface",
      "--serve-url=http://pxe.example:9000/",
      "--leader-elect-lease-duration=1m",
      "--leader-elect-renew-deadline",
      "30s",
      "--leader-elect-retry-period=500ms",
      "--trusted-proxy=10.0.0.0/8",
      "--trusted-proxy",
      "192.0.2.7,fd00::/8",
      "--inventory=machines",
      "--log-level=debug",
    ]);
    assert.equal(c.site, "rack-a");
    assert.equal(c.httpPort, 9000);
    assert.equal(c.dhcpAutoInterface, true);
    assert.equal(c.serveUrl, "http://pxe.example:9000");
    assert.equal(c.leaderElectLeaseDurationMs, 60_000);
    assert.equal(c.leaderElectRenewDeadlineMs, 30_000);
    assert.equal(c.leaderElectRetryPeriodMs, 500);
    assert.deepEqual(c.trustedProxies, ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]);
    assert.equal(c.inventory, "/work/machines");
    assert.equal(c.logLevel, "debug");
    assert.equal(parse(["--dhcp-auto-interface=false"]).dhcpAutoInterface, false);
  });

  it("reads a YAML config file; flags override it; file paths are relative to the file", () => {
    const files = {
      "/etc/metalman/metalman.yaml": [
        "site: lab",
        "httpPort: 8000",
        "bindAddress: 10.0.0.2",
        "inventory: ./machines",
        "trustedProxy: [10.1.0.0/16]",
        "dhcpInterface: eth1",
        "",
      ].join("\n"),
    };
    const c = parse(["--config", "/etc/metalman/metalman.yaml", "--http-port=8001"], files);
    assert.equal(c.configFile, "/etc/metalman/metalman.yaml");
    assert.equal(c.site, "lab");
    assert.equal(c.httpPort, 8001);
    assert.equal(c.bindAddress, "10.0.0.2");
    assert.equal(c.inventory, "/etc/metalman/machines");
    assert.deepEqual(c.trustedProxies, ["10.1.0.0/16"]);
    assert.equal(c.dhcpInterface, "eth1");
  });

  it("takes METALMAN_APISERVER_URL from the environment", () => {
    assert.equal(
      parse([], {}, { ...env, METALMAN_APISERVER_URL: "https://10.0.0.1:6443/" }).apiserverUrl,
      "https://10.0.0.1:6443",
    );
    fails([], "METALMAN_APISERVER_URL: must be", {}, { ...env, METALMAN_APISERVER_URL: "nope" });
  });

  it("returns help without validating anything else", () => {
    assert.equal(parse(["--http-port=abc", "-h"]).help, true);
    assert.equal(parse(["--help"]).help, true);
    const usage = servePxeUsage();
    for (const flag of [
      "--site",
      "--cache-dir",
      "--dhcp-auto-interface",
      "--trusted-proxy",
      "--leader-elect-retry-period",
    ]) {
      assert.ok(usage.includes(flag), flag);
    }
  });

  const flagErrors: Array<[string[], string]> = [
    [["--http-port=abc"], '--http-port: must be an integer 1-65535, got "abc"'],
    [["--health-port", "0"], '--health-port: must be an integer 1-65535, got "0"'],
    [["--tftp-port=70000"], "--tftp-port: must be an integer 1-65535"],
    [["--dhcp-port=-1"], "--dhcp-port: must be an integer 1-65535"],
    [["--bind-address=1.2.3"], "--bind-address: must be an IPv4 address"],
    [["--serve-url=ftp://x"], "--serve-url: must be an http:// or https:// URL"],
    [
      ["--leader-elect-lease-duration=15"],
      '--leader-elect-lease-duration: must be a positive Go duration like 15s, got "15"',
    ],
    [
      ["--leader-elect-renew-deadline=20s"],
      "--leader-elect-renew-deadline: must be shorter than the lease duration (15s)",
    ],
    [["--leader-elect-retry-period=9s"], "--leader-elect-retry-period: must be shorter than the renew deadline"],
    [["--trusted-proxy=10.0.0.0/33"], "--trusted-proxy: must be an IP address or CIDR"],
    [["--log-level=loud"], "--log-level: must be one of"],
    [["--site=Rack A"], "--site: must be a label value"],
    [["--dhcp-interface=a-very-long-interface-name"], "--dhcp-interface: must be a network interface name"],
    [
      ["--dhcp-interface=eth0", "--dhcp-auto-interface"],
      "--dhcp-auto-interface: cannot be combined with --dhcp-interface",
    ],
    [["--health-port=8880"], "--health-port: must differ from the HTTP port (8880)"],
    [["--dhcp-auto-interface=yes"], '--dhcp-auto-interface: must be true or false, got "yes"'],
    [["--no-such-flag"], "--no-such-flag: unknown flag"],
    [["--http-port"], "--http-port: needs a value"],
    [["serve"], 'unexpected argument "serve"'],
    [["--inventory="], "--inventory: must not be empty"],
    [["--config=/missing.yaml"], "--config: cannot read /missing.yaml"],
  ];
  for (const [argv, expected] of flagErrors) {
    it(`rejects ${argv.join(" ")} naming the flag`, () => fails(argv, expected));
  }

  const fileErrors: Array<[string, string]> = [
    ["httpPort: abc\n", 'm.yaml: httpPort: must be an integer 1-65535, got "abc"'],
    ["http-port: 80\n", "m.yaml: http-port: unknown key (did you mean httpPort?)"],
    ["dhcpAutoInterface: yes\n", 'm.yaml: dhcpAutoInterface: must be true or false, got "yes"'],
    ["bindAddress: [1]\n", "m.yaml: bindAddress: must be a string"],
    ["- a\n", "m.yaml: must be a mapping"],
    ["httpPort: [\n", "m.yaml: invalid YAML"],
    ["dhcpInterface: eth0\ndhcpAutoInterface: true\n", "m.yaml: dhcpAutoInterface: cannot be combined"],
    ["leaderElectRetryPeriod: 1\n", "m.yaml: leaderElectRetryPeriod: must be a positive Go duration"],
  ];
  for (const [text, expected] of fileErrors) {
    it(`rejects config file ${JSON.stringify(text)} naming the file and key`, () =>
      fails(["--config=m.yaml"], expected, { "/work/m.yaml": text }));
  }
});

describe("--dhcp-mode (issue 5 §1.2: relay, interface, proxy)", () => {
  it("keeps the old combinations: no flag derives the mode from the interface flags", () => {
    assert.equal(parse([]).dhcpMode, "");
    assert.equal(parse(["--dhcp-interface", "eth1"]).dhcpMode, "");
    assert.equal(parse(["--dhcp-auto-interface"]).dhcpMode, "");
  });

  it("accepts proxy and interface with an interface, relay without, from a flag or the config file", () => {
    assert.equal(parse(["--dhcp-mode", "proxy", "--dhcp-interface", "br0"]).dhcpMode, "proxy");
    assert.equal(parse(["--dhcp-mode=proxy", "--dhcp-auto-interface"]).dhcpMode, "proxy");
    assert.equal(parse(["--dhcp-mode", "interface", "--dhcp-interface", "br0"]).dhcpMode, "interface");
    assert.equal(parse(["--dhcp-mode", "relay"]).dhcpMode, "relay");
    const file = { "/work/m.yaml": "dhcpMode: proxy\ndhcpInterface: br0\n" };
    assert.equal(parse(["--config=m.yaml"], file).dhcpMode, "proxy");
  });

  it("rejects modes that contradict the interface flags, naming the field", () => {
    fails(["--dhcp-mode", "bogus"], '--dhcp-mode: must be one of relay, interface, proxy, got "bogus"');
    fails(["--dhcp-mode", "proxy"], "--dhcp-mode: proxy mode answers broadcasts on one NIC");
    fails(["--dhcp-mode", "interface"], "--dhcp-mode: interface mode answers broadcasts on one NIC");
    fails(["--dhcp-mode", "relay", "--dhcp-interface", "eth1"], "--dhcp-mode: relay mode listens on every address");
    fails(["--config=m.yaml"], "m.yaml: dhcpMode: proxy mode", { "/work/m.yaml": "dhcpMode: proxy\n" });
  });
});
