/**
 * The test TFTP client (test/unit/tftp/client.ts) as a command, so lab tests can run it inside
 * a client namespace: `ip netns exec <ns> node dist/test/lab/tftp-client-cli.js --host ...`.
 * Prints one JSON line: the result without the data (outcome, size, sha256, counters, sources).
 */
import { parseArgs } from "node:util";
import { tftpGet } from "../unit/tftp/client.js";

const { values } = parseArgs({
  options: {
    host: { type: "string" },
    port: { type: "string", default: "69" },
    file: { type: "string" },
    blksize: { type: "string" },
    windowsize: { type: "string" },
    tsize: { type: "boolean", default: false },
    "timeout-ms": { type: "string", default: "1000" },
    "deadline-ms": { type: "string", default: "120000" },
    edk2: { type: "boolean", default: false },
    "strict-source": { type: "boolean", default: false },
  },
});
if (!values.host || !values.file) {
  process.stderr.write(
    "usage: tftp-client-cli --host IP --file NAME [--port N] [--blksize N] [--windowsize N] [--tsize] [--edk2] [--strict-source]\n",
  );
  process.exit(2);
}
const options: Record<string, string> = {};
if (values.tsize) options.tsize = "0";
if (values.blksize) options.blksize = values.blksize;
if (values.windowsize) options.windowsize = values.windowsize;
const started = performance.now();
const result = await tftpGet({
  host: values.host,
  port: Number(values.port),
  filename: values.file,
  options,
  localAddress: "0.0.0.0",
  timeoutMs: Number(values["timeout-ms"]),
  deadlineMs: Number(values["deadline-ms"]),
  keepData: false,
  edk2Acks: values.edk2,
  strictSource: values["strict-source"],
});
const { data: _data, ...rest } = result;
process.stdout.write(`${JSON.stringify({ ...rest, ms: Math.round(performance.now() - started) })}\n`);
process.exit(result.outcome === "ok" ? 0 : 1);
