/**
 * OCI pulls when things go wrong, against Debian's docker-registry with skopeo-pushed images:
 * htpasswd auth (pull secret and --registry-auth-file), a download cut mid-blob that resumes
 * with Range, a corrupt blob in the registry's storage that is refused and never served, a
 * restart with the registry stopped that still serves, a moved tag pulled while the old digest
 * serves, and a cache on a small tmpfs that fills up (clear error, old digest still served).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, afterEach, before, it } from "node:test";
import { ApiClient } from "../../server/api/client.js";
import type { RunningAppliance } from "../../server/app/serve-pxe.js";
import type { ImageStatus } from "../../server/images/image-catalog.js";
import { labSuite, makeScratchDir, removeDir, run, runOk } from "./harness.js";
import {
  type BlobProxy,
  httpGet,
  machineYaml,
  OCI_TOOLS,
  PORT_BASE,
  pushTree,
  type Registry,
  startBlobProxy,
  startOciAppliance,
  startRegistry,
  until,
  writeTree,
} from "./oci-harness.js";

labSuite("OCI pulls when the registry, the network or the disk fail", OCI_TOOLS, () => {
  let scratch: string;
  let registry: Registry | undefined;
  let appliance: RunningAppliance | undefined;
  let proxy: BlobProxy | undefined;
  let mounted: string | undefined;
  let n = 0;

  before(async () => {
    scratch = await makeScratchDir("oc-fail-");
    registry = await startRegistry(path.join(scratch, "reg"), PORT_BASE + 40);
  });
  afterEach(async () => {
    await appliance?.close({ graceMs: 0 });
    appliance = undefined;
    await proxy?.close();
    proxy = undefined;
  });
  after(async () => {
    await registry?.stop();
    if (mounted) await run(["umount", "-l", mounted]);
    await removeDir(scratch);
  });

  /** A fresh inventory with one Machine (127.0.0.1) on `image`, and the appliance on it. */
  async function applianceFor(
    image: string,
    options: { extra?: string; args?: string[]; cacheDir?: string; files?: Record<string, string> } = {},
  ) {
    const dir = path.join(scratch, `run-${++n}`);
    const inventory = path.join(dir, "inventory");
    await mkdir(inventory, { recursive: true });
    for (const [name, text] of Object.entries(options.files ?? {})) {
      await writeFile(path.join(inventory, name), text);
      await chmod(path.join(inventory, name), 0o600);
    }
    await writeFile(path.join(inventory, "m.yaml"), machineYaml("node-01", "127.0.0.1", image, options.extra));
    appliance = await startOciAppliance({
      inventory,
      stateDir: path.join(dir, "state"),
      cacheDir: options.cacheDir ?? path.join(dir, "cache"),
      extraArgs: options.args,
    });
    return {
      dir,
      inventory,
      api: new ApiClient(appliance.apiSocket, "test"),
      http: Number(new URL(appliance.addresses.serveUrl).port),
    };
  }
  const status = async (api: ApiClient) => (await api.get<{ items: ImageStatus[] }>("/images")).items[0];
  const settled = (api: ApiClient, timeoutMs = 30_000) =>
    until(
      "the image to be ready or failed",
      async () => {
        const s = await status(api);
        return s && (s.state === "ready" || s.state === "failed") && !s.pullingDigest ? s : undefined;
      },
      timeoutMs,
    );

  it("pulls from a registry with htpasswd auth: a pull secret, or --registry-auth-file; none → clear error", async () => {
    const authDir = path.join(scratch, "auth-reg");
    await mkdir(authDir, { recursive: true });
    const htpasswd = path.join(authDir, "htpasswd");
    await runOk(["htpasswd", "-Bbc", htpasswd, "puller", "s3cret-pw"]);
    const authed = await startRegistry(authDir, PORT_BASE + 41, { htpasswd });
    try {
      const ref = `${authed.addr}/private/img:v1`;
      await pushTree(scratch, await writeTree(path.join(scratch, "priv"), { "secret.txt": "private" }), ref, {
        creds: "puller:s3cret-pw",
      });
      const dockerconfig = JSON.stringify({
        auths: { [authed.addr]: { auth: Buffer.from("puller:s3cret-pw").toString("base64") } },
      });

      // No credentials: refused, with the way out in the message.
      let run1 = await applianceFor(ref);
      let s = await settled(run1.api);
      assert.equal(s.state, "failed");
      assert.match(s.reason ?? "", /access denied \(401\)|user name and password/);
      assert.match(s.reason ?? "", /pullSecretRef|registry-auth-file/);
      assert.ok(!JSON.stringify(s).includes("s3cret"));
      await appliance!.close({ graceMs: 0 });

      // spec.pxe.pullSecretRef: a kubernetes.io/dockerconfigjson Secret in the inventory.
      const secret = [
        "apiVersion: v1",
        "kind: Secret",
        "metadata: {name: regcred, namespace: unbounded-kube}",
        "type: kubernetes.io/dockerconfigjson",
        `data: {.dockerconfigjson: ${Buffer.from(dockerconfig).toString("base64")}}`,
        "",
      ].join("\n");
      run1 = await applianceFor(ref, {
        extra: "    pullSecretRef: {name: regcred, namespace: unbounded-kube}",
        files: { "regcred.yaml": secret },
      });
      s = await settled(run1.api);
      assert.equal(s.state, "ready", s.reason);
      assert.equal((await httpGet(run1.http, "/secret.txt")).body.toString(), "private");
      await appliance!.close({ graceMs: 0 });

      // --registry-auth-file: a docker config.json.
      const authFile = path.join(scratch, "config.json");
      await writeFile(authFile, dockerconfig, { mode: 0o600 });
      const run2 = await applianceFor(ref, { args: [`--registry-auth-file=${authFile}`] });
      s = await settled(run2.api);
      assert.equal(s.state, "ready", s.reason);
    } finally {
      await authed.stop();
    }
  });

  it("resumes a download cut in the middle with a Range request, and serves the verified bytes", async () => {
    const big = randomBytes(3 * 1024 * 1024);
    const ref = `${registry!.addr}/netboot/resume:v1`;
    await pushTree(scratch, await writeTree(path.join(scratch, "resume"), { "big.bin": big }), ref);
    proxy = await startBlobProxy(registry!.addr, PORT_BASE + 42);
    proxy.cutOnce(1024 * 1024, 1024 * 1024);
    const mirror = path.join(scratch, "mirror.yaml");
    // The proxy is a mirror of the registry (also proves mirrors): the Machine names the registry.
    await writeFile(
      mirror,
      `registries:\n  ${JSON.stringify(registry!.addr)}:\n    mirrors: ["127.0.0.1:${proxy.port}"]\n    mirrorsOnly: true\n`,
    );
    const r = await applianceFor(ref, { args: [`--registry-config=${mirror}`] });
    const s = await settled(r.api);
    assert.equal(s.state, "ready", s.reason);
    const layer = proxy.requests.filter((q) => q.range !== undefined);
    assert.ok(layer.length >= 1, `a Range request followed the cut: ${JSON.stringify(proxy.requests)}`);
    assert.match(layer[0]!.range!, /^bytes=[1-9]\d*-$/);
    assert.ok((await httpGet(r.http, "/big.bin")).body.equals(big));
  });

  it("refuses a corrupt blob: the pull fails, nothing is served, the cache holds no tree", async () => {
    const ref = `${registry!.addr}/netboot/corrupt:v1`;
    await pushTree(
      scratch,
      await writeTree(path.join(scratch, "corrupt"), { "payload.bin": randomBytes(200_000) }),
      ref,
    );
    // Flip a byte of the image's layer in the registry's own storage (same length).
    const raw = await runOk(["skopeo", "inspect", "--raw", "--tls-verify=false", `docker://${ref}`]);
    const layerDigest = (JSON.parse(raw.stdout) as { layers: Array<{ digest: string }> }).layers[0]!.digest.slice(7);
    const biggest = path.join(
      registry!.storage,
      "docker",
      "registry",
      "v2",
      "blobs",
      "sha256",
      layerDigest.slice(0, 2),
      layerDigest,
      "data",
    );
    const data = await readFile(biggest);
    data[data.length - 100] = (data[data.length - 100]! + 1) % 256;
    await writeFile(biggest, data);
    const r = await applianceFor(ref);
    const s = await settled(r.api);
    assert.equal(s.state, "failed");
    assert.match(s.reason ?? "", /blob is corrupt .*refused/);
    const res = await httpGet(r.http, "/payload.bin");
    assert.equal(res.status, 503, "not ready: never the corrupt bytes");
    assert.equal(res.headers["retry-after"], "5");
    const cached = readdirSync(path.join(r.dir, "cache", "oci"));
    assert.deepEqual(cached, []);
    const events = appliance!.events.history("node-01").filter((e) => e.step === "image.pull" && e.result === "error");
    assert.ok(
      events.some((e) => e.reason === "digest_mismatch"),
      JSON.stringify(events),
    );
  });

  it("after a restart with the registry stopped, the cached digest still serves at once", async () => {
    const ref = `${registry!.addr}/netboot/restart:v1`;
    await pushTree(scratch, await writeTree(path.join(scratch, "restart"), { kernel: "restart-kernel" }), ref);
    const r = await applianceFor(ref);
    assert.equal((await settled(r.api)).state, "ready");
    await appliance!.close({ graceMs: 0 });
    await registry!.stop();
    try {
      appliance = await startOciAppliance({
        inventory: r.inventory,
        stateDir: path.join(r.dir, "state"),
        cacheDir: path.join(r.dir, "cache"),
      });
      const http = Number(new URL(appliance.addresses.serveUrl).port);
      // At once: before the registry could have been asked (it is down).
      const res = await httpGet(http, "/kernel");
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), "restart-kernel");
      const api = new ApiClient(appliance.apiSocket, "test");
      const s = await until(
        "the refresh to fail",
        async () => {
          const x = await status(api);
          return x?.reason ? x : undefined;
        },
        20_000,
      );
      assert.equal(s.state, "ready", "a failed refresh keeps serving the cached digest");
      assert.equal((await httpGet(http, "/kernel")).status, 200);
    } finally {
      await registry!.start();
    }
  });

  it("a moved tag is pulled while the old digest serves, then served; gc removes the old tree", async () => {
    const ref = `${registry!.addr}/netboot/moving:v1`;
    await pushTree(scratch, await writeTree(path.join(scratch, "m1"), { "version.txt": "one" }), ref);
    proxy = await startBlobProxy(registry!.addr, PORT_BASE + 43);
    const mirror = path.join(scratch, "mirror2.yaml");
    await writeFile(
      mirror,
      `registries:\n  ${JSON.stringify(registry!.addr)}:\n    mirrors: ["127.0.0.1:${proxy.port}"]\n    mirrorsOnly: true\n`,
    );
    const r = await applianceFor(ref, { args: [`--registry-config=${mirror}`] });
    const first = await settled(r.api);
    assert.equal((await httpGet(r.http, "/version.txt")).body.toString(), "one");
    await pushTree(
      scratch,
      await writeTree(path.join(scratch, "m2"), { "version.txt": "two", "pad.bin": randomBytes(600_000) }),
      ref,
    );
    proxy.throttle(300_000); // about 2 s for the new layer
    await r.api.post("/images/pull", { ref });
    const during = await until(
      "the new digest to be pulling",
      async () => {
        const s = await status(r.api);
        return s?.pullingDigest ? s : undefined;
      },
      10_000,
    );
    assert.equal(during.state, "ready");
    assert.equal(during.digest, first.digest);
    assert.equal((await httpGet(r.http, "/version.txt")).body.toString(), "one", "the old digest serves meanwhile");
    proxy.throttle(0);
    const moved = await until(
      "the new digest to serve",
      async () => {
        const s = await status(r.api);
        return s && s.digest !== first.digest && !s.pullingDigest ? s : undefined;
      },
      30_000,
    );
    assert.equal(moved.digest, during.pullingDigest);
    assert.equal((await httpGet(r.http, "/version.txt")).body.toString(), "two");
    const gc = await r.api.post<{ removed: Array<{ manifestDigest: string }> }>("/images/gc", {});
    assert.deepEqual(
      gc.removed.map((x) => x.manifestDigest),
      [first.manifestDigest],
    );
    assert.equal(readdirSync(path.join(r.dir, "cache", "oci")).length, 1);
  });

  it("with --image-cache-budget, an image no Machine uses any more is deleted after the next pull", async () => {
    const ref = `${registry!.addr}/netboot/budget:v1`;
    await pushTree(scratch, await writeTree(path.join(scratch, "b1"), { "version.txt": "one" }), ref);
    const r = await applianceFor(ref, { args: ["--image-cache-budget=1B"] });
    const first = await settled(r.api);
    assert.equal(first.state, "ready");
    await pushTree(scratch, await writeTree(path.join(scratch, "b2"), { "version.txt": "two" }), ref);
    await r.api.post("/images/pull", { ref });
    await until(
      "the new digest to serve",
      async () => {
        const s = await status(r.api);
        return s && s.digest !== first.digest && !s.pullingDigest ? s : undefined;
      },
      30_000,
    );
    const left = readdirSync(path.join(r.dir, "cache", "oci"));
    assert.deepEqual(
      left,
      [`sha256_${(await status(r.api))!.manifestDigest!.slice(7)}`],
      "only the served tree is left",
    );
    assert.equal((await httpGet(r.http, "/version.txt")).body.toString(), "two");
  });

  it("a cache disk that fills up during a pull: a clear error, the old digest still serves", async () => {
    const ref = `${registry!.addr}/netboot/full:v1`;
    await pushTree(scratch, await writeTree(path.join(scratch, "f1"), { "version.txt": "small" }), ref);
    const cacheDir = path.join(scratch, "tmpfs-cache");
    await mkdir(cacheDir, { recursive: true });
    await runOk(["mount", "-t", "tmpfs", "-o", "size=3m", "oc-cache", cacheDir]);
    mounted = cacheDir;
    const r = await applianceFor(ref, { cacheDir });
    const first = await settled(r.api);
    assert.equal(first.state, "ready");
    await pushTree(
      scratch,
      await writeTree(path.join(scratch, "f2"), { "version.txt": "big", "big.bin": randomBytes(4 * 1024 * 1024) }),
      ref,
    );
    await r.api.post("/images/pull", { ref });
    const s = await until(
      "the pull to fail",
      async () => {
        const x = await status(r.api);
        return x?.reason && !x.pullingDigest ? x : undefined;
      },
      30_000,
    );
    assert.equal(s.state, "ready");
    assert.equal(s.digest, first.digest);
    assert.match(s.reason ?? "", /no space left in the cache folder/);
    assert.equal((await httpGet(r.http, "/version.txt")).body.toString(), "small");
    await appliance!.close({ graceMs: 0 });
    appliance = undefined;
    await runOk(["umount", cacheDir]);
    mounted = undefined;
  });
});
