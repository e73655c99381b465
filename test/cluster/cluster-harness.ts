/**
 * Shared set-up of the cluster-sync tests: a fake API server, the real kubectl against it, a
 * temp state folder, and Machine manifests. Under CI a missing kubectl fails the test.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import pino from "pino";
import { HttpKubeApi, loadKubeConfig } from "../../server/cluster/kube-api.js";
import { FakeKubeApi } from "../support/fake-kube-api.js";
import { Kubectl, kubectlBinary } from "../support/kubectl.js";

export const silent = pino({ level: "silent" });

export function machineYaml(name: string, opts: { mac: string; ip: string; site?: string; image?: string }): string {
  return [
    "apiVersion: unbounded-cloud.io/v1alpha3",
    "kind: Machine",
    "metadata:",
    `  name: ${name}`,
    ...(opts.site !== undefined ? ["  labels:", `    unbounded-cloud.io/site: ${opts.site}`] : []),
    "spec:",
    "  pxe:",
    `    image: ${JSON.stringify(opts.image ?? "dir:/nonexistent")}`,
    "    dhcpLeases:",
    `    - {mac: "${opts.mac}", ipv4: "${opts.ip}", subnetMask: "255.255.255.0", gateway: "10.0.0.1"}`,
    "",
  ].join("\n");
}

export interface ClusterLab {
  api: FakeKubeApi;
  kubectl: Kubectl | undefined;
  stateDir: string;
  tmp: string;
  clientFor(): HttpKubeApi;
  /** Closed before the fake API stops and the temp folder goes (t.after runs hooks in order). */
  own<T extends { close(): Promise<void> | void }>(thing: T): T;
}

/** Starts a fake API (plus kubectl when installed; required under CI) and registers cleanup. */
export async function clusterLab(t: TestContext, opts: { requireKubectl?: boolean } = {}): Promise<ClusterLab> {
  const api = new FakeKubeApi({ bookmarkMs: 200 });
  await api.start();
  const bin = kubectlBinary();
  if (!bin && (opts.requireKubectl ?? true) && process.env.CI === "true")
    throw new Error("kubectl is not installed (scripts/test-deps.d/cluster.sh)");
  const kubectl = bin ? new Kubectl(bin, api.url) : undefined;
  const kubeConfig = kubectl ? await loadKubeConfig({ kubeconfig: kubectl.kubeconfig }) : undefined;
  const tmp = mkdtempSync(path.join(tmpdir(), "metalman-cluster-"));
  const stateDir = path.join(tmp, "state");
  const clients: HttpKubeApi[] = [];
  const owned: Array<{ close(): Promise<void> | void }> = [];
  t.after(async () => {
    for (const o of owned.reverse()) await o.close();
    for (const c of clients) c.close();
    await api.stop();
    kubectl?.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  });
  return {
    api,
    kubectl,
    stateDir,
    tmp,
    own: (thing) => {
      owned.push(thing);
      return thing;
    },
    clientFor: () => {
      if (!kubeConfig) throw new Error("no kubectl");
      const c = new HttpKubeApi(kubeConfig, { timeoutMs: 2000 });
      clients.push(c);
      return c;
    },
  };
}

/** Polls `check` every 5 ms until it is truthy or `ms` passed; resolves the elapsed ms or throws. */
export async function within(ms: number, what: string, check: () => unknown): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await check()) return performance.now() - start;
    if (performance.now() - start > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
