/**
 * The client side of bench/bootstorm.sh when the TFTP leg must use RFC 7440 windows (EDK2
 * asks for windowsize 4): curl has no windowsize and atftp cannot choose its source address,
 * so the TFTP leg is the repo's windowed test client (test/unit/tftp/client.ts, which ACKs
 * like EDK2: at the end of each window, and the last in-order block on a gap), bound to the
 * client's lease IP. The HTTP leg stays real curl with `--interface`. All clients start at
 * once; one line per client on stdout: `<index> ok <tftp ms> <http ms> <total ms>` or
 * `<index> fail <why>`. Bench tool, not part of the appliance.
 *
 * Usage: node dist/bench/bootstorm-clients.js SERVER TFTP_FILE TFTP_SIZE HTTP_FILE HTTP_SIZE
 *          TIMEOUT_S BLKSIZE WINDOWSIZE IP...
 */
import { spawn } from "node:child_process";
import { tftpGet } from "../test/unit/tftp/client.js";

function curlHttp(ip: string, url: string, timeoutS: number): Promise<{ code: number | null; size: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      "curl",
      ["-sS", "--interface", ip, "--max-time", String(timeoutS), "-o", "/dev/null", "-w", "%{size_download}", url],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let size = "";
    child.stdout.on("data", (chunk: Buffer) => {
      size += chunk.toString();
    });
    child.once("error", () => resolve({ code: null, size }));
    child.once("close", (code) => resolve({ code, size }));
  });
}

async function boot(
  index: number,
  ip: string,
  a: { server: string; tftpFile: string; tftpSize: number; httpFile: string; httpSize: number; timeoutS: number },
  blksize: string,
  windowsize: string,
): Promise<string> {
  const t0 = performance.now();
  const tftp = await tftpGet({
    host: a.server,
    port: 69,
    filename: a.tftpFile,
    localAddress: ip,
    // EDK2's order and values (Mtftp4 with PcdTftpWindowSize 4).
    options: { blksize, windowsize, tsize: "0" },
    keepData: false,
    timeoutMs: 2_000,
    deadlineMs: a.timeoutS * 1000,
  });
  if (tftp.outcome !== "ok") {
    const why = tftp.error ? `:${tftp.error.code}:${tftp.error.message.replace(/\s+/g, "_")}` : "";
    return `${index} fail tftp-${tftp.outcome}${why}`;
  }
  if (tftp.size !== a.tftpSize) return `${index} fail tftp-size:${tftp.size}`;
  const t1 = performance.now();
  const http = await curlHttp(ip, `http://${a.server}:80/${a.httpFile}`, a.timeoutS);
  if (http.code !== 0) return `${index} fail http-rc:${http.code}`;
  if (Number(http.size) !== a.httpSize) return `${index} fail http-size:${http.size}`;
  const t2 = performance.now();
  const ms = (x: number) => Math.round(x);
  return `${index} ok ${ms(t1 - t0)} ${ms(t2 - t1)} ${ms(t2 - t0)} windowsize=${tftp.oack?.windowsize ?? "1"}`;
}

async function main(argv: string[]): Promise<void> {
  const [server, tftpFile, tftpSize, httpFile, httpSize, timeoutS, blksize, windowsize, ...ips] = argv;
  if (!server || !tftpFile || !httpFile || !blksize || !windowsize || ips.length === 0) {
    process.stderr.write(
      "usage: bootstorm-clients SERVER TFTP_FILE TFTP_SIZE HTTP_FILE HTTP_SIZE TIMEOUT_S BLKSIZE WINDOWSIZE IP...\n",
    );
    process.exitCode = 2;
    return;
  }
  const args = {
    server,
    tftpFile,
    tftpSize: Number(tftpSize),
    httpFile,
    httpSize: Number(httpSize),
    timeoutS: Number(timeoutS),
  };
  const lines = await Promise.all(
    ips.map((ip, i) => boot(i, ip, args, blksize, windowsize).catch((err: Error) => `${i} fail ${err.message}`)),
  );
  process.stdout.write(`${lines.join("\n")}\n`);
}

void main(process.argv.slice(2));
