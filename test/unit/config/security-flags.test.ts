/**
 * The flags of issue 5 §4.3/§4.4: --health-bind-address (the health listener's own address) and
 * --image-root (repeatable folders that dir: images must lie in), as flags and config-file keys.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, parseServePxeArgs, servePxeUsage } from "../../../server/config/serve-pxe-config.js";

const env = { HOME: "/home/op" };

describe("--health-bind-address and --image-root", () => {
  it("default to 0.0.0.0 (upstream) and $HOME/.unbounded/metalman/images", () => {
    const c = parseServePxeArgs([], env, { cwd: "/work" });
    assert.equal(c.healthBindAddress, "0.0.0.0");
    assert.deepEqual(c.imageRoots, ["/home/op/.unbounded/metalman/images"]);
  });

  it("take flags: an IPv4 address; repeatable absolute-or-relative folders (commas kept)", () => {
    const c = parseServePxeArgs(
      ["--health-bind-address", "127.0.0.1", "--image-root=/srv/images", "--image-root", "rel,with,commas"],
      env,
      { cwd: "/work" },
    );
    assert.equal(c.healthBindAddress, "127.0.0.1");
    assert.deepEqual(c.imageRoots, ["/srv/images", "/work/rel,with,commas"]);
    assert.match(servePxeUsage(), /--health-bind-address VALUE/);
    assert.match(servePxeUsage(), /--image-root DIR/);
  });

  it("take config keys, relative to the file", () => {
    const file = "healthBindAddress: 10.0.0.2\nimageRoot: [images, /srv/more]\n";
    const c = parseServePxeArgs(["--config", "/etc/metalman/metalman.yaml"], env, { readFile: () => file });
    assert.equal(c.healthBindAddress, "10.0.0.2");
    assert.deepEqual(c.imageRoots, ["/etc/metalman/images", "/srv/more"]);
    const single = parseServePxeArgs(["--config", "/etc/m.yaml"], env, { readFile: () => "imageRoot: imgs\n" });
    assert.deepEqual(single.imageRoots, ["/etc/imgs"]);
  });

  it("--tftp-max-transfers[-per-client]: counts of at least 1, defaults 512 and 8", () => {
    const d = parseServePxeArgs([], env);
    assert.equal(d.tftpMaxTransfers, 512);
    assert.equal(d.tftpMaxTransfersPerClient, 8);
    const c = parseServePxeArgs(["--tftp-max-transfers=2000", "--tftp-max-transfers-per-client", "2"], env);
    assert.equal(c.tftpMaxTransfers, 2000);
    assert.equal(c.tftpMaxTransfersPerClient, 2);
    assert.throws(
      () => parseServePxeArgs(["--tftp-max-transfers=0"], env),
      /^ConfigError: --tftp-max-transfers: must be/,
    );
  });

  it("--http-max-connections[-per-client]: counts, defaults 1024 and 32", () => {
    const d = parseServePxeArgs([], env);
    assert.equal(d.httpMaxConnections, 1024);
    assert.equal(d.httpMaxConnectionsPerClient, 32);
    const c = parseServePxeArgs(["--http-max-connections=0", "--http-max-connections-per-client", "4"], env);
    assert.equal(c.httpMaxConnections, 0);
    assert.equal(c.httpMaxConnectionsPerClient, 4);
    const f = parseServePxeArgs(["--config", "/m.yaml"], env, { readFile: () => "httpMaxConnectionsPerClient: 8\n" });
    assert.equal(f.httpMaxConnectionsPerClient, 8);
    assert.throws(
      () => parseServePxeArgs(["--http-max-connections-per-client=-1"], env),
      /^ConfigError: --http-max-connections-per-client: must be an integer/,
    );
  });

  it("refuse bad values naming the field", () => {
    assert.throws(
      () => parseServePxeArgs(["--health-bind-address=localhost"], env),
      (e: unknown) => e instanceof ConfigError && /^--health-bind-address: must be an IPv4 address/.test(e.message),
    );
    assert.throws(
      () => parseServePxeArgs(["--image-root="], env),
      (e: unknown) => e instanceof ConfigError && /^--image-root: must name a folder/.test(e.message),
    );
    assert.throws(
      () => parseServePxeArgs(["--config", "/m.yaml"], env, { readFile: () => "imageRoot: 3\n" }),
      (e: unknown) => e instanceof ConfigError && /imageRoot: must be a folder/.test(e.message),
    );
  });
});
