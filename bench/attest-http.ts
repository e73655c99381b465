/**
 * `POST /attest` end to end: requests per second through the real netboot HTTP app and the file
 * inventory (each answer writes and fsyncs the Machine's status), for RSA-2048 and P-256 EKs,
 * against tpm2-tools' software MakeCredential (`tpm2_makecredential -T none`, one process per
 * op, measured in the same run) - the same cryptographic work as our request, without HTTP,
 * JSON, sealing or the status write. bench/attest-crypto.ts measures the crypto alone.
 *
 * 32 Machines (leases 127.0.9.1-32, each request from its Machine's address), 4 requests in
 * flight, keep-alive; the attempt budget and the window are lifted (they would refuse a bench).
 * Usage: node dist/bench/attest-http.js [--seconds S]   (default 3 s per EK type)
 */
import { execFile, spawnSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { Agent, request } from "node:http";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { Registry } from "prom-client";
import { decodeTpm2bPublic, ekPublicFromKey, encodeTpm2bPublic, objectName } from "../server/attest/tpm/index.js";
import { tpmCredentials } from "../server/attest/tpm-adapter.js";
import { BootEventBus } from "../server/events/boot-events.js";
import { buildNetbootApp } from "../server/http/app.js";
import { DirImageStore } from "../server/images/dir-image-store.js";
import { FileInventory } from "../server/inventory/file-inventory.js";
import { NetbootResolver } from "../server/netboot/resolver.js";

const i = process.argv.indexOf("--seconds");
const seconds = i >= 0 ? Number(process.argv[i + 1]) : 3;
if (!(seconds > 0 && seconds <= 60)) throw new Error("--seconds must be in (0, 60]");
const MACHINES = 32;
const IN_FLIGHT = 4;
const log = pino({ level: "silent" });

function post(agent: Agent, port: number, localAddress: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method: "POST", path: "/attest", agent, localAddress }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end(body);
  });
}

function tool(argv: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(argv[0]!, argv.slice(1), { timeout: 10_000 }, (e) => (e ? reject(e) : resolve())),
  );
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "metalman-bench-attest-http-"));
  const srk = encodeTpm2bPublic(
    ekPublicFromKey(generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey, {
      objectAttributes: 0x00030472,
      authPolicy: Buffer.alloc(0),
    }),
  );
  const haveTool = spawnSync("sh", ["-c", "command -v tpm2_makecredential"], { stdio: "ignore" }).status === 0;
  console.log(
    `attest-http: ${seconds} s per EK type, ${MACHINES} Machines, ${IN_FLIGHT} in flight, node ${process.version}`,
  );
  try {
    for (const [label, keyOptions] of [
      ["RSA-2048", { type: "rsa", modulusLength: 2048 }],
      ["P-256", { type: "ec", namedCurve: "P-256" }],
    ] as const) {
      const run = path.join(dir, label);
      await mkdir(path.join(run, "inventory"), { recursive: true });
      const bodies: string[] = [];
      for (let m = 1; m <= MACHINES; m++) {
        const key =
          keyOptions.type === "rsa"
            ? generateKeyPairSync("rsa", { modulusLength: keyOptions.modulusLength }).publicKey
            : generateKeyPairSync("ec", { namedCurve: keyOptions.namedCurve }).publicKey;
        const ek = encodeTpm2bPublic(ekPublicFromKey(key));
        if (m === 1) await writeFile(path.join(run, "ek.pub"), ek);
        bodies.push(JSON.stringify({ ekPub: ek.toString("base64"), srkPub: srk.toString("base64") }));
        const machine = {
          apiVersion: "unbounded-cloud.io/v1alpha3",
          kind: "Machine",
          metadata: { name: `bench-${m}` },
          spec: {
            pxe: {
              image: "dir:/nonexistent",
              dhcpLeases: [
                {
                  mac: `02:00:00:00:09:${m.toString(16).padStart(2, "0")}`,
                  ipv4: `127.0.9.${m}`,
                  subnetMask: "255.0.0.0",
                  gateway: "127.0.0.1",
                },
              ],
            },
          },
        };
        await writeFile(path.join(run, "inventory", `bench-${m}.yaml`), JSON.stringify(machine));
      }
      const inventory = new FileInventory({
        dir: path.join(run, "inventory"),
        stateDir: path.join(run, "state"),
        log,
        watch: false,
      });
      await inventory.load();
      const app = buildNetbootApp({
        log,
        backend: inventory,
        events: new BootEventBus(),
        metrics: new Registry(),
        resolver: new NetbootResolver({
          images: new DirImageStore({ baseDirOf: () => "/", imageRoots: ["/nonexistent"], log }),
          render: () => "",
        }),
        connectionLimits: { maxConnections: 0, perClient: 0 },
        attest: {
          tpm: tpmCredentials,
          tokens: { issue: async () => ({ token: "benchb.0123456789abcdef", source: "bench" }) },
          expectWindowMs: 0,
          attempts: { burst: 1e9 },
        },
      });
      await app.listen({ host: "127.0.0.1", port: 0 });
      const port = (app.server.address() as { port: number }).port;
      const agents = bodies.map(() => new Agent({ keepAlive: true, maxSockets: 1 }));
      // Warm-up: every Machine pins its EK once.
      for (let m = 0; m < MACHINES; m++)
        if ((await post(agents[m]!, port, `127.0.9.${m + 1}`, bodies[m]!)) !== 200) throw new Error("warm-up failed");
      let done = 0;
      let next = 0;
      const deadline = performance.now() + seconds * 1000;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (performance.now() < deadline) {
            const m = next++ % MACHINES;
            const status = await post(agents[m]!, port, `127.0.9.${m + 1}`, bodies[m]!);
            if (status !== 200) throw new Error(`status ${status}`);
            done++;
          }
        }),
      );
      const perSec = done / ((performance.now() - t0) / 1000);
      for (const agent of agents) agent.destroy();
      await app.close();
      await inventory.close();
      console.log(
        `  ${label.padEnd(8)} metalman POST /attest (HTTP, status fsync) ${perSec.toFixed(0).padStart(6)} /s  (${done} requests)`,
      );
      if (!haveTool) continue;
      await writeFile(path.join(run, "secret.bin"), randomBytes(32));
      const name = objectName(decodeTpm2bPublic(srk)).toString("hex");
      const argv = [
        "tpm2_makecredential",
        "-T",
        "none",
        "-u",
        path.join(run, "ek.pub"),
        "-s",
        path.join(run, "secret.bin"),
        "-n",
        name,
        "-o",
        path.join(run, "cred.out"),
      ];
      let runs = 0;
      const toolDeadline = performance.now() + seconds * 1000;
      const t1 = performance.now();
      while (performance.now() < toolDeadline) {
        await tool(argv);
        runs++;
      }
      const toolPerSec = runs / ((performance.now() - t1) / 1000);
      console.log(
        `  ${label.padEnd(8)} tpm2_makecredential -T none              ${toolPerSec.toFixed(0).padStart(6)} /s  (${runs} runs)`,
      );
      console.log(
        `  ${label.padEnd(8)} ratio                                    ${(perSec / toolPerSec).toFixed(1).padStart(6)} x`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
