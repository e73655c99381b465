/**
 * `metalman user hash`: the hash appliance.yaml's admin.passwordHash takes. From stdin it prints
 * only the hash (which the console's store verifies); without --password-stdin it generates a
 * password and prints it once; a password out of bounds is refused; no users file is needed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runUserCli } from "../../../server/app/user-cli.js";
import { isPasswordHash, verifyPassword } from "../../../server/console/password-hash.js";

function run(argv: string[], stdin?: string) {
  const out = { stdout: "", stderr: "" };
  const io = {
    stdout: (s: string) => {
      out.stdout += s;
    },
    stderr: (s: string) => {
      out.stderr += s;
    },
    stdin: stdin === undefined ? undefined : async () => stdin,
  };
  // A state dir that does not exist: hash must not read or make it.
  return runUserCli(argv, { HOME: "/nonexistent-home" }, io).then((code) => ({ code, ...out }));
}

describe("metalman user hash", () => {
  it("hashes the password from stdin; the console verifies it", async () => {
    const r = await run(["hash", "--password-stdin"], "a long rack password\n");
    assert.equal(r.code, 0, r.stderr);
    const hash = r.stdout.trim();
    assert.ok(isPasswordHash(hash), hash);
    assert.ok(await verifyPassword("a long rack password", hash));
    assert.ok(!r.stdout.includes("a long rack password"), "the password is not echoed");
  });

  it("without --password-stdin: a generated password, shown once, and its hash", async () => {
    const r = await run(["hash"]);
    assert.equal(r.code, 0, r.stderr);
    const password = /^password: (\S+)$/m.exec(r.stdout)?.[1] ?? "";
    const hash = r.stdout.trim().split("\n").at(-1) ?? "";
    assert.ok(await verifyPassword(password, hash));
  });

  it("refuses a short password and extra arguments", async () => {
    const short = await run(["hash", "--password-stdin"], "short\n");
    assert.equal(short.code, 1);
    assert.match(short.stderr, /12 to 256 characters/);
    const extra = await run(["hash", "admin"]);
    assert.equal(extra.code, 1);
  });
});
