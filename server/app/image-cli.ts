/**
 * `metalman image list|pull|gc`: the OCI images of a running serve-pxe, over its management
 * socket (docs/images.md). `pull` follows the pull with a progress line until the image is
 * ready or failed (`--no-wait` returns at once).
 */
import type { ApiClient } from "../api/client.js";
import { parseGoDuration } from "../config/go-duration.js";
import type { GcResult, ImageStatus } from "../images/image-catalog.js";
import { type CliOut, parseCli } from "../util/cli-args.js";
import { apiFailure, apiSession, EXIT, OUTPUT_OPTION, table, toJson, UsageError } from "./api-cli.js";

export const IMAGE_USAGE = `metalman image: OCI netboot images of a running serve-pxe

Usage:
  metalman image list                 every image a Machine uses: state, digest, size, Machines
  metalman image pull [REF]           re-resolve now (every image without REF) and follow the pull
  metalman image gc [--budget-only]   delete cached images no Machine uses (--budget-only: only
                                      beyond --image-cache-budget)

Flags:
  --state-dir DIR    the serve-pxe --state-dir (default $HOME/.unbounded/metalman/state)
  -o, --output FMT   table (default) or json
  --no-wait          pull: return at once
  --timeout DUR      pull: give up following after DUR (Go duration, default 30m)

Exit codes: 0 done, 1 refused or the pull failed, 2 usage, 3 metalman not running, 4 timed out
`;

type Out = CliOut;

const OPTIONS = {
  ...OUTPUT_OPTION,
  "no-wait": { type: "boolean" },
  "budget-only": { type: "boolean" },
  timeout: { type: "string" },
} as const;

export async function runImageCli(argv: string[], env: NodeJS.ProcessEnv, out: Out): Promise<number> {
  const parsed = parseCli("image", IMAGE_USAGE, OPTIONS, argv, env, out);
  if (typeof parsed === "number") return parsed;
  const { values, command, args, stateDir } = parsed;
  const session = apiSession("image", values.output, stateDir, env, out);
  if (!session) return EXIT.USAGE;
  const timeoutMs = parseGoDuration(values.timeout ?? "30m");
  if (timeoutMs === undefined) {
    out.stderr("metalman image: --timeout must be a Go duration like 10m\n");
    return EXIT.USAGE;
  }
  const { client, json } = session;
  try {
    switch (command) {
      case "list": {
        if (args.length > 0) throw new UsageError("list takes no argument");
        const { items } = await client.get<{ items: ImageStatus[] }>("/images");
        out.stdout(json ? toJson({ items }) : imageTable(items));
        return EXIT.OK;
      }
      case "pull": {
        if (args.length > 1) throw new UsageError("pull takes at most one REF");
        const ref = args[0];
        const { items } = await client.post<{ items: ImageStatus[] }>("/images/pull", ref ? { ref } : {});
        if (values["no-wait"]) {
          out.stdout(json ? toJson({ items }) : imageTable(items));
          return EXIT.OK;
        }
        return await follow(client, out, json, ref, timeoutMs);
      }
      case "gc": {
        if (args.length > 0) throw new UsageError("gc takes no argument");
        const result = await client.post<GcResult>("/images/gc", { all: !values["budget-only"] });
        out.stdout(json ? toJson(result) : gcText(result));
        return EXIT.OK;
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    return apiFailure("image", IMAGE_USAGE, err, out);
  }
}

/**
 * Poll until the pull asked for is over: the image is ready without a pull in flight, or failed.
 * The first answer may still show the previous state (the check starts within a tick), so a
 * pull is only "over" once it was seen running or the registry's answer was recorded after the ask.
 */
async function follow(
  client: ApiClient,
  out: Out,
  json: boolean,
  ref: string | undefined,
  timeoutMs: number,
): Promise<number> {
  const askedAt = Date.now();
  const deadline = askedAt + timeoutMs;
  let lastLine = "";
  let seenPulling = false;
  for (;;) {
    const { items } = await client.get<{ items: ImageStatus[] }>("/images");
    const mine = items.filter((i) => ref === undefined || i.ref === ref);
    const running = mine.filter((i) => i.state === "pulling" || i.pullingDigest !== undefined);
    if (running.length > 0) seenPulling = true;
    const settled = mine.every(
      (i) =>
        i.state === "failed" ||
        (i.state === "ready" &&
          i.pullingDigest === undefined &&
          (seenPulling || Date.parse(i.resolvedAt ?? "") >= askedAt)),
    );
    if (!json) {
      for (const item of running) {
        const line = `${item.ref}: pulling ${mib(item.bytes)} of ${mib(item.totalBytes)}${percent(item)}`;
        if (line !== lastLine) out.stderr(`${line}\n`);
        lastLine = line;
      }
    }
    if (mine.length === 0 || settled) {
      out.stdout(json ? toJson({ items: mine }) : imageTable(mine));
      return mine.some((i) => i.state === "failed" || i.state === "not-ready") ? EXIT.REFUSED : EXIT.OK;
    }
    if (Date.now() > deadline) {
      out.stderr("metalman image: still pulling when --timeout ran out (it goes on)\n");
      return EXIT.WAIT_TIMEOUT;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function imageTable(items: ImageStatus[]): string {
  if (items.length === 0) return "no Machine uses an OCI image\n";
  return table(
    ["REF", "ARCH", "STATE", "DIGEST", "SIZE", "MACHINES", "REASON"],
    items.map((i) => [
      i.ref,
      i.architecture,
      i.pullingDigest ? `${i.state} (pulling ${i.pullingDigest.slice(7, 19)})` : i.state,
      i.digest ? i.digest.slice(0, 19) : "-",
      i.state === "pulling" ? `${mib(i.bytes)}/${mib(i.totalBytes)}` : i.bytes !== undefined ? mib(i.bytes) : "-",
      i.machines.join(",") || "-",
      i.reason ? i.reason.slice(0, 120) : "",
    ]),
  );
}

function gcText(result: GcResult): string {
  const lines = result.removed.map(
    (r) => `removed ${r.manifestDigest.slice(0, 19)}  ${mib(r.bytes)}  (${r.sourceRef})`,
  );
  lines.push(`freed ${mib(result.freedBytes)}; cache holds ${mib(result.cacheBytes)}`);
  return `${lines.join("\n")}\n`;
}

function mib(bytes: number | undefined): string {
  if (bytes === undefined) return "?";
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${bytes} B`;
}

function percent(item: ImageStatus): string {
  return item.totalBytes ? ` (${Math.floor(((item.bytes ?? 0) * 100) / item.totalBytes)}%)` : "";
}
