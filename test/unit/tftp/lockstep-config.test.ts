import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseServePxeArgs } from "../../../server/config/serve-pxe-config.js";
import { LOCKSTEP_THREADS_DEFAULT } from "../../../server/tftp/server.js";

describe("--tftp-lockstep-threads", () => {
  const env = {};
  it("defaults to the server's default, accepts 0 (off) to 1024, refuses the rest", () => {
    assert.equal(parseServePxeArgs([], env).tftpLockstepThreads, LOCKSTEP_THREADS_DEFAULT);
    assert.equal(parseServePxeArgs(["--tftp-lockstep-threads", "0"], env).tftpLockstepThreads, 0);
    assert.equal(parseServePxeArgs(["--tftp-lockstep-threads=16"], env).tftpLockstepThreads, 16);
    assert.throws(() => parseServePxeArgs(["--tftp-lockstep-threads=2000"], env), /tftp-lockstep-threads: must be/);
    assert.throws(() => parseServePxeArgs(["--tftp-lockstep-threads=x"], env), /tftp-lockstep-threads: must be/);
  });
});
