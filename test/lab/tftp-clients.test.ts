/**
 * Real TFTP clients against the appliance (spec §4): tftp-hpa (no options, 512-byte lock-step),
 * atftp (blksize 1468 + RFC 7440 windowsize 16) and curl (tftp://, blksize 1468) each fetch a
 * 32 MiB file from a client whose address is a Machine's lease IP; a stranger address gets an
 * ERROR packet. Needs root; see test/lab/README.md.
 */
import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";
import { after, before, it } from "node:test";
import {
  type Appliance,
  type CommandResult,
  type LabImage,
  labSuite,
  runInNs,
  sha256File,
  startOneMachineLab,
  stopOneMachineLab,
  type VethLab,
} from "./harness.js";

const STRANGER_IP = "10.213.0.99";
const TRANSFER_TIMEOUT_MS = 90_000;

labSuite("TFTP: real clients fetch 32 MiB from metalman", ["tftp", "atftp"], () => {
  let lab: VethLab | undefined;
  let scratch: string | undefined;
  let image: LabImage | undefined;
  let appliance: Appliance | undefined;

  before(async () => {
    ({ lab, scratch, image, appliance } = await startOneMachineLab(
      "mmtf",
      { name: "lab-tftp", mac: "02:4d:4d:00:00:10" },
      STRANGER_IP,
    ));
  });

  after(async () => {
    await stopOneMachineLab({ lab, scratch, appliance });
  });

  async function assertDownloaded(out: string, result: CommandResult): Promise<void> {
    assert.ok(image);
    const why = `client code=${result.code} timedOut=${result.timedOut}\nstdout: ${result.stdout}\nstderr: ${result.stderr}\n--- metalman log tail ---\n${appliance?.process.tail()}`;
    try {
      assert.equal(result.timedOut, false, why);
      assert.ok(existsSync(out), `no output file\n${why}`);
      assert.equal(statSync(out).size, image.bigSize, why);
      assert.equal(await sha256File(out), image.bigSha256, why);
    } finally {
      await rm(out, { force: true });
    }
  }

  it("tftp-hpa (no options, 512-byte blocks, block number rollover) gets a byte-identical copy", async () => {
    assert.ok(lab && scratch && image);
    const out = path.join(scratch, "tftp-hpa.out");
    const result = await runInNs(
      lab.clientNs,
      ["tftp", "-m", "binary", lab.serverIp, String(appliance!.tftpPort), "-c", "get", image.bigFile, out],
      { timeoutMs: TRANSFER_TIMEOUT_MS },
    );
    await assertDownloaded(out, result);
  });

  it("atftp with blksize 1468 and windowsize 16 gets a byte-identical copy", async () => {
    assert.ok(lab && scratch && image);
    const out = path.join(scratch, "atftp.out");
    const result = await runInNs(
      lab.clientNs,
      [
        "atftp",
        "--get",
        "-r",
        image.bigFile,
        "-l",
        out,
        "--tftp-timeout",
        "2",
        "--option",
        "blksize 1468",
        "--option",
        "windowsize 16",
        lab.serverIp,
        String(appliance!.tftpPort),
      ],
      { timeoutMs: TRANSFER_TIMEOUT_MS },
    );
    assert.equal(result.code, 0, `atftp failed: ${result.stderr}`);
    await assertDownloaded(out, result);
  });

  it("curl tftp:// with blksize 1468 gets a byte-identical copy", async () => {
    assert.ok(lab && scratch && image);
    const out = path.join(scratch, "curl.out");
    const url = `tftp://${lab.serverIp}:${appliance!.tftpPort}/${image.bigFile}`;
    const result = await runInNs(
      lab.clientNs,
      ["curl", "-sS", "--max-time", "80", "--tftp-blksize", "1468", "-o", out, url],
      { timeoutMs: TRANSFER_TIMEOUT_MS },
    );
    assert.equal(result.code, 0, `curl failed: ${result.stderr}`);
    await assertDownloaded(out, result);
  });

  it("a client address that is no Machine's lease gets a TFTP error", async () => {
    assert.ok(lab && scratch && image);
    const out = path.join(scratch, "stranger.out");
    const url = `tftp://${lab.serverIp}:${appliance!.tftpPort}/${image.bigFile}`;
    const result = await runInNs(
      lab.clientNs,
      ["curl", "-sS", "--max-time", "20", "--interface", STRANGER_IP, "-o", out, url],
      { timeoutMs: 30_000 },
    );
    const why = `curl code=${result.code} stderr: ${result.stderr}\n--- metalman log tail ---\n${appliance?.process.tail()}`;
    await rm(out, { force: true });
    // curl maps a TFTP ERROR packet to exit codes 68..74 (68 = file not found, 69 = access
    // violation, ...); 28 would mean it gave up waiting, i.e. the request was ignored.
    assert.ok(result.code !== null && result.code >= 68 && result.code <= 74, `expected a TFTP error\n${why}`);
  });
});
