/**
 * OCI lab helpers: Debian's docker-registry (distribution 2.8) on loopback ports 15000-15099,
 * images built by the shared lab's registry.sh and pushed by skopeo, a loopback proxy in front
 * of the registry that can cut or slow blob downloads, and the appliance started in-process on
 * loopback with an OCI cache. Every process is stopped by PID, every folder removed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { pino } from "pino";
import { type RunningAppliance, startAppliance } from "../../server/app/serve-pxe.js";
import { loopbackConfig, loopbackProbes } from "../unit/app/loopback-appliance.js";
import { labDir, runOk } from "./harness.js";

export const OCI_TOOLS = ["docker-registry", "skopeo", "htpasswd", "zstd", "tftp"] as const;

/** Ports of this suite (the helper's range); each test file uses its own. */
export const PORT_BASE = 15000;

export interface Registry {
  addr: string;
  dir: string;
  storage: string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** Start docker-registry on 127.0.0.1:port, storage in dir; with `htpasswd` basic auth (bcrypt file). */
export async function startRegistry(dir: string, port: number, options: { htpasswd?: string } = {}): Promise<Registry> {
  await mkdir(path.join(dir, "storage"), { recursive: true });
  const addr = `127.0.0.1:${port}`;
  const auth = options.htpasswd ? `auth:\n  htpasswd:\n    realm: metalman-test\n    path: ${options.htpasswd}\n` : "";
  await writeFile(
    path.join(dir, "config.yml"),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/storage\n  delete:\n    enabled: true\n${auth}http:\n  addr: ${addr}\n`,
  );
  let child: ChildProcess | undefined;
  const registry: Registry = {
    addr,
    dir,
    storage: path.join(dir, "storage"),
    start: async () => {
      child = spawn("docker-registry", ["serve", path.join(dir, "config.yml")], {
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr?.on("data", (c: Buffer) => {
        stderr = (stderr + c.toString()).slice(-4000);
      });
      for (let i = 0; i < 100; i++) {
        const up = await new Promise<boolean>((resolve) => {
          const req = http.get(`http://${addr}/v2/`, (res) => {
            res.resume();
            resolve(res.statusCode === 200 || res.statusCode === 401);
          });
          req.on("error", () => resolve(false));
        });
        if (up) return;
        if (child.exitCode !== null) break;
        await sleep(100);
      }
      throw new Error(`docker-registry did not start on ${addr}: ${stderr}`);
    },
    stop: async () => {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise((resolve) => c.once("exit", resolve));
      c.kill("SIGTERM");
      const timer = setTimeout(() => c.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
  await registry.start();
  return registry;
}

/** A tree (written from `files`) as an OCI layout (registry.sh build: one layer holding it under /disk/). */
export async function writeTree(dir: string, files: Record<string, string | Buffer>): Promise<string> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  return dir;
}

/** Build `tree` into an image (amd64 unless said) and push it to `ref` with skopeo. Returns the manifest digest as pushed. */
export async function pushTree(
  scratch: string,
  tree: string,
  ref: string,
  options: { arch?: string; creds?: string; zstd?: boolean } = {},
): Promise<void> {
  const layout = path.join(scratch, `layout-${Math.random().toString(36).slice(2)}`);
  await runOk(["bash", path.join(labDir(), "registry.sh"), "build", tree, layout, "latest", options.arch ?? "amd64"], {
    timeoutMs: 60_000,
  });
  await runOk(
    [
      "skopeo",
      "copy",
      "--quiet",
      "--dest-tls-verify=false",
      ...(options.creds ? ["--dest-creds", options.creds] : []),
      ...(options.zstd ? ["--dest-compress-format", "zstd"] : []),
      `oci:${layout}:latest`,
      `docker://${ref}`,
    ],
    { timeoutMs: 120_000 },
  );
  await rm(layout, { recursive: true, force: true });
}

export async function pushMultiArch(amd64: string, arm64: string, ref: string): Promise<void> {
  await runOk(["bash", path.join(labDir(), "registry.sh"), "push-multiarch", amd64, arm64, ref], {
    timeoutMs: 120_000,
  });
}

/** The digest skopeo sees for a reference (sha256 of the raw manifest). */
export async function remoteDigest(ref: string, creds?: string): Promise<string> {
  const r = await runOk([
    "skopeo",
    "inspect",
    "--tls-verify=false",
    ...(creds ? ["--creds", creds] : []),
    "--format",
    "{{.Digest}}",
    `docker://${ref}`,
  ]);
  return r.stdout.trim();
}

export interface BlobProxy {
  port: number;
  /** Blob GETs seen: path and Range header. */
  requests: Array<{ path: string; range?: string }>;
  /** Cut the next blob download of a body over this many bytes after `cutAfter` bytes. */
  cutOnce(bytes: number, minBody: number): void;
  /** Send blob bodies at about this many bytes per second (0 = full speed). */
  throttle(bytesPerSecond: number): void;
  close(): Promise<void>;
}

/** A loopback HTTP proxy to the registry that can cut a blob download once, or slow blobs down. */
export async function startBlobProxy(upstream: string, port: number): Promise<BlobProxy> {
  let cut: { after: number; minBody: number } | undefined;
  let rate = 0;
  const requests: BlobProxy["requests"] = [];
  const server = http.createServer((req, res) => {
    const isBlob = /\/blobs\/sha256:/.test(req.url ?? "");
    if (isBlob) requests.push({ path: req.url ?? "", ...(req.headers.range ? { range: req.headers.range } : {}) });
    const [host, p] = upstream.split(":");
    const up = http.request(
      { host, port: Number(p), method: req.method, path: req.url, headers: { ...req.headers, host: upstream } },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        const length = Number(upRes.headers["content-length"] ?? 0);
        const plan = isBlob && cut && length >= cut.minBody ? cut : undefined;
        if (plan) cut = undefined;
        let sent = 0;
        upRes.on("data", async (chunk: Buffer) => {
          if (plan && sent + chunk.length > plan.after) {
            res.write(chunk.subarray(0, Math.max(0, plan.after - sent)));
            sent = plan.after;
            upRes.destroy();
            res.socket?.destroy();
            return;
          }
          sent += chunk.length;
          if (isBlob && rate > 0) {
            upRes.pause();
            res.write(chunk);
            await sleep((chunk.length / rate) * 1000);
            upRes.resume();
          } else {
            res.write(chunk);
          }
        });
        upRes.on("end", () => res.end());
        upRes.on("error", () => res.destroy());
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    cutOnce: (after, minBody) => {
      cut = { after, minBody };
    },
    throttle: (bytesPerSecond) => {
      rate = bytesPerSecond;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface OciAppliance {
  appliance: RunningAppliance;
  close(): Promise<void>;
}

/** The appliance on loopback with --cache-dir CACHE; retries short so failures show within seconds. */
export async function startOciAppliance(opts: {
  inventory: string;
  stateDir: string;
  cacheDir: string;
  extraArgs?: string[];
}): Promise<RunningAppliance> {
  const config = await loopbackConfig({
    ...opts,
    extraArgs: [`--image-root=${opts.inventory}`, ...(opts.extraArgs ?? [])],
  });
  return startAppliance(config, {
    log: pino({ level: "silent" }),
    probes: loopbackProbes,
    bmcDrivers: false,
    images: { client: { retry: { attempts: 3, baseDelayMs: 50, maxDelayMs: 200 } }, retryMs: 300 },
  });
}

export function machineYaml(name: string, ip: string, image: string, extra = ""): string {
  const last = Number(ip.split(".").at(-1));
  return [
    "apiVersion: unbounded-cloud.io/v1alpha3",
    "kind: Machine",
    `metadata: {name: ${name}}`,
    "spec:",
    "  pxe:",
    `    image: ${JSON.stringify(image)}`,
    ...(extra ? [extra] : []),
    "    dhcpLeases:",
    `    - {mac: "02:00:00:00:00:${last.toString(16).padStart(2, "0")}", ipv4: ${ip}, subnetMask: 255.0.0.0, gateway: 127.0.0.254}`,
    "  operations: {repaveCounter: 1}",
    "---",
    "",
  ].join("\n");
}

/** GET a path from the netboot port as the Machine at `from` (its lease IP). */
export function httpGet(
  port: number,
  urlPath: string,
  from = "127.0.0.1",
): Promise<{ status: number; body: Buffer; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: urlPath, localAddress: from, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
  });
}

export async function until<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function readJson<T>(file: string): Promise<T> {
  return JSON.parse(await readFile(file, "utf8")) as T;
}
