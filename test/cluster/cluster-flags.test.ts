/** The cluster-mode flags of issue 10: --kubeconfig (a path) and --in-cluster, as flags and config keys. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { siteSelector } from "../../server/cluster/kube-backend.js";
import { leaseName } from "../../server/cluster/leader-election.js";
import { ConfigError, parseServePxeArgs, servePxeUsage } from "../../server/config/serve-pxe-config.js";

const env = { HOME: "/home/op" };

describe("--kubeconfig and --in-cluster", () => {
  it("default to standalone", () => {
    const c = parseServePxeArgs([], env, { cwd: "/work" });
    assert.equal(c.kubeconfig, undefined);
    assert.equal(c.inCluster, false);
  });

  it("take a kubeconfig path (relative to the working folder or the config file) and a bool", () => {
    assert.equal(parseServePxeArgs(["--kubeconfig", "kc.yaml"], env, { cwd: "/work" }).kubeconfig, "/work/kc.yaml");
    assert.equal(parseServePxeArgs(["--in-cluster"], env, { cwd: "/work" }).inCluster, true);
    const fromFile = parseServePxeArgs(["--config=/etc/metalman/m.yaml"], env, {
      cwd: "/work",
      readFile: () => "kubeconfig: admin.conf\ninCluster: false\n",
    });
    assert.equal(fromFile.kubeconfig, "/etc/metalman/admin.conf");
    assert.throws(() => parseServePxeArgs(["--kubeconfig="], env), ConfigError);
  });

  it("are in --help", () => {
    assert.match(servePxeUsage(), /--kubeconfig VALUE/);
    assert.match(servePxeUsage(), /--in-cluster /);
  });

  it("name the site selector and the Lease as upstream does (spec §1.2, §1.3)", () => {
    assert.equal(siteSelector(""), "!unbounded-cloud.io/site");
    assert.equal(siteSelector("rack-a"), "unbounded-cloud.io/site=rack-a");
    assert.equal(leaseName(""), "metalman");
    assert.equal(leaseName("rack-a"), "metalman-rack-a");
  });
});
