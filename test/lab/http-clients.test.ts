/**
 * curl against the appliance's HTTP file server (spec §5.3) from a client whose address is a
 * Machine's lease IP: a 32 MiB artifact byte-identical, a Range request (206 + the right bytes),
 * a Go template rendered for that Machine, and 404 for a stranger address. Needs root; see
 * test/lab/README.md.
 */
import assert from "node:assert/strict";
import { readFile, rm } from "node:fs/promises";
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
const MACHINE = "lab-http";

interface HttpResult {
  status: number;
  headers: string;
  result: CommandResult;
}

labSuite("HTTP: curl against metalman's file server", [], () => {
  let lab: VethLab | undefined;
  let scratch: string | undefined;
  let image: LabImage | undefined;
  let appliance: Appliance | undefined;

  before(async () => {
    ({ lab, scratch, image, appliance } = await startOneMachineLab(
      "mmh",
      { name: MACHINE, mac: "02:4d:4d:00:00:20" },
      STRANGER_IP,
    ));
  });

  after(async () => {
    await stopOneMachineLab({ lab, scratch, appliance });
  });

  /** curl GET from the client namespace; body to `out`, headers to `<out>.headers`. */
  async function get(urlPath: string, out: string, extra: string[] = []): Promise<HttpResult> {
    assert.ok(lab && appliance);
    const headerFile = `${out}.headers`;
    const url = `http://${lab.serverIp}:${appliance.httpPort}/${urlPath}`;
    const result = await runInNs(
      lab.clientNs,
      ["curl", "-sS", "--max-time", "60", "-o", out, "-D", headerFile, "-w", "%{http_code}", ...extra, url],
      { timeoutMs: 70_000 },
    );
    const headers = await readFile(headerFile, "utf8").catch(() => "");
    await rm(headerFile, { force: true });
    assert.equal(result.code, 0, `curl ${url} failed: ${result.stderr}\n${appliance.process.tail()}`);
    return { status: Number(result.stdout.trim()), headers, result };
  }

  const why = (response: HttpResult): string =>
    `status ${response.status}\n${response.headers}\n--- metalman log tail ---\n${appliance?.process.tail()}`;

  it("GET of a 32 MiB artifact is byte-identical", async () => {
    assert.ok(scratch && image);
    const out = path.join(scratch, "big.out");
    try {
      const response = await get(image.bigFile, out);
      assert.equal(response.status, 200, why(response));
      assert.equal(await sha256File(out), image.bigSha256, why(response));
    } finally {
      await rm(out, { force: true });
    }
  });

  it("a Range request answers 206 with exactly those bytes", async () => {
    assert.ok(scratch && image);
    const out = path.join(scratch, "range.out");
    const first = 1_000_003;
    const last = 2_000_002;
    try {
      const response = await get(image.bigFile, out, ["-r", `${first}-${last}`]);
      assert.equal(response.status, 206, why(response));
      assert.match(response.headers, new RegExp(`content-range: bytes ${first}-${last}/${image.bigSize}`, "i"));
      const body = await readFile(out);
      assert.ok(body.equals(image.bigBytes.subarray(first, last + 1)), `range body differs (${body.length} bytes)`);
    } finally {
      await rm(out, { force: true });
    }
  });

  it("a template is rendered for the requesting Machine", async () => {
    assert.ok(scratch && image && lab);
    const out = path.join(scratch, "grub.cfg");
    const response = await get(image.templatePath, out);
    const body = await readFile(out, "utf8").catch(() => "");
    await rm(out, { force: true });
    assert.equal(response.status, 200, why(response));
    assert.equal(body, `set hostname=${MACHINE} ip=${lab.clientIp}\n`, why(response));
  });

  it("a client address that is no Machine's lease gets 404", async () => {
    assert.ok(scratch && image);
    for (const urlPath of [image.bigFile, image.templatePath]) {
      const out = path.join(scratch, "stranger.out");
      const response = await get(urlPath, out, ["--interface", STRANGER_IP]);
      await rm(out, { force: true });
      assert.equal(response.status, 404, `${urlPath}: ${why(response)}`);
    }
  });
});
