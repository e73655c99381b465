/**
 * Issue 6 §9: `metalman bmc-emulator` as a newcomer runs it: several VM-less BMCs on
 * consecutive ports, one JSON line each with the URL and the certificate fingerprint (the
 * value status.redfish.certFingerprint will pin), redfishtool works against each, and SIGTERM
 * stops it with exit code 0.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import path from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { connect } from "node:tls";
import { repoRoot } from "../../../support/paths.js";
import { json, redfishtool, requireTool } from "./tools.js";

function leafFingerprint(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, rejectUnauthorized: false }, () => {
      const der = socket.getPeerCertificate().raw;
      socket.end();
      new X509Certificate(der); // parses
      resolve(createHash("sha256").update(der).digest("hex").match(/../g)!.join(":"));
    });
    socket.once("error", reject);
  });
}

describe("metalman bmc-emulator", () => {
  it("starts N BMCs, prints url and fingerprint, answers redfishtool, stops on SIGTERM", async (t) => {
    if (!requireTool(t, "redfishtool")) return;
    const main = path.join(repoRoot(), "dist", "server", "main.js");
    const child = spawn(
      process.execPath,
      [main, "bmc-emulator", "--port", "0", "--count", "2", "--name-prefix", "rack-a-"],
      {
        env: { ...process.env, METALMAN_BMC_PASSWORD: "pw-emulated" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    const lines = createInterface({ input: child.stdout! });
    const bmcs: Array<{ name: string; url: string; fingerprint: string }> = [];
    for await (const line of lines) {
      bmcs.push(JSON.parse(line));
      if (bmcs.length === 2) break;
    }
    assert.deepEqual(
      bmcs.map((b) => b.name),
      ["rack-a-01", "rack-a-02"],
    );
    for (const b of bmcs) {
      const url = new URL(b.url);
      assert.equal(b.fingerprint.length, 95);
      assert.equal(await leafFingerprint(url.hostname, Number(url.port)), b.fingerprint);
      const state = json(await redfishtool(url.host, ["Systems", "-I", "1", "get", "-P", "PowerState"]));
      assert.deepEqual(state, { PowerState: "On" });
    }
    const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    assert.equal(await exit, 0);
  });
});
