/**
 * TFTP replies leave from the address the request was sent to (issue 5 §1.4): the appliance
 * runs bound to 0.0.0.0 on a server namespace with a primary (10.213.0.1) and a secondary
 * (10.213.0.2) address on the same NIC, and the client asks the secondary one. EDK2 configures
 * its UDP instance with the server's address and drops anything else, so the test client here
 * does the same (--strict-source) and also reports every source it saw. Before the fix the
 * kernel picked the primary address by route for OACK, DATA and ERROR alike. A real client
 * (tftp-hpa, which checks nothing) is run too, for the byte-identical copy from the secondary.
 * Needs root; see test/lab/README.md.
 */
import assert from "node:assert/strict";
import { mkdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { after, before, it } from "node:test";
import {
  addAddress,
  appliancePath,
  type LabImage,
  labSuite,
  makeScratchDir,
  NsProcess,
  removeDir,
  run,
  runInNs,
  sha256,
  type VethLab,
  vethLabDown,
  vethLabUp,
  writeImage,
  writeInventory,
} from "./harness.js";

const SECONDARY_IP = "10.213.0.2";
const TFTP_PORT = 69;
const HEALTH_PORT = 8086;
const CLIENT_CLI = path.join(path.dirname(new URL(import.meta.url).pathname), "tftp-client-cli.js");

interface CliResult {
  outcome: string;
  sha256: string;
  size: number;
  sources: string[];
  error?: { code: number; message: string };
}

labSuite("TFTP: replies come from the address the request was sent to (server on 0.0.0.0)", ["tftp"], () => {
  let lab: VethLab | undefined;
  let scratch: string | undefined;
  let image: LabImage | undefined;
  let appliance: NsProcess | undefined;

  before(async () => {
    scratch = await makeScratchDir("m3b");
    lab = await vethLabUp("m3b", { staticClient: true });
    await addAddress(lab.serverNs, lab.serverIf, `${SECONDARY_IP}/16`);
    image = await writeImage(scratch, 1024 * 1024);
    const inventoryDir = await writeInventory(scratch, image, [
      {
        name: "lab-vip",
        leases: [{ mac: "02:4d:4d:00:03:0b", ipv4: lab.clientIp!, subnetMask: "255.255.0.0", gateway: lab.serverIp }],
      },
    ]);
    // The harness' Appliance derives --serve-url from the bind address; on 0.0.0.0 the DHCP
    // server IP comes from --serve-url, so this one is started by hand.
    await mkdir(path.join(scratch, "state"), { recursive: true });
    await mkdir(path.join(scratch, "cache"), { recursive: true });
    appliance = new NsProcess(lab.serverNs, [
      process.execPath,
      appliancePath(),
      "serve-pxe",
      "--inventory",
      inventoryDir,
      "--state-dir",
      path.join(scratch, "state"),
      "--cache-dir",
      path.join(scratch, "cache"),
      "--image-root",
      scratch,
      "--bind-address",
      "0.0.0.0",
      "--serve-url",
      `http://${lab.serverIp}:8885`,
      "--http-port",
      "8885",
      "--tftp-port",
      String(TFTP_PORT),
      "--health-port",
      String(HEALTH_PORT),
      "--log-level",
      "warn",
    ]);
    for (let i = 0; i < 120; i++) {
      const probe = await run(
        [
          "ip",
          "netns",
          "exec",
          lab.serverNs,
          "curl",
          "-sf",
          "-o",
          "/dev/null",
          "-m",
          "2",
          `http://127.0.0.1:${HEALTH_PORT}/healthz`,
        ],
        { timeoutMs: 5_000 },
      );
      if (probe.code === 0) break;
      assert.ok(appliance.running, `metalman exited:\n${appliance.tail()}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });

  after(async () => {
    await appliance?.stop(5_000);
    await vethLabDown(lab);
    await removeDir(scratch);
  });

  async function fetch(file: string, host: string): Promise<CliResult> {
    assert.ok(lab && appliance);
    const result = await runInNs(
      lab.clientNs,
      [
        process.execPath,
        CLIENT_CLI,
        "--host",
        host,
        "--port",
        String(TFTP_PORT),
        "--file",
        file,
        "--blksize",
        "1468",
        "--windowsize",
        "4",
        "--tsize",
        "--edk2",
        "--strict-source",
        "--timeout-ms",
        "500",
        "--deadline-ms",
        "8000",
      ],
      { timeoutMs: 20_000 },
    );
    return JSON.parse(result.stdout.trim().split("\n").pop() || "{}") as CliResult;
  }

  for (const host of [SECONDARY_IP, "10.213.0.1"]) {
    it(`OACK and DATA come from ${host} when the client asked ${host}`, async () => {
      assert.ok(image);
      const r = await fetch(image.bigFile, host);
      assert.deepEqual(r.sources, [host], `reply sources ${JSON.stringify(r)}`);
      assert.equal(r.outcome, "ok", JSON.stringify(r));
      assert.equal(r.sha256, image.bigSha256);
    });
  }

  it("an ERROR comes from the secondary address too", async () => {
    const r = await fetch("no-such-file.bin", SECONDARY_IP);
    assert.deepEqual(r.sources, [SECONDARY_IP], JSON.stringify(r));
    assert.equal(r.outcome, "error", JSON.stringify(r));
    assert.equal(r.error?.code, 1);
  });

  it("tftp-hpa fetches a byte-identical copy from the secondary address", async () => {
    assert.ok(lab && scratch && image && appliance);
    const out = path.join(scratch, "hpa.out");
    const result = await runInNs(
      lab.clientNs,
      ["tftp", "-m", "binary", SECONDARY_IP, String(TFTP_PORT), "-c", "get", image.bigFile, out],
      { timeoutMs: 30_000 },
    );
    try {
      assert.equal(result.code, 0, result.stderr);
      assert.equal(sha256(await readFile(out)), image.bigSha256);
    } finally {
      await rm(out, { force: true });
    }
  });
});
