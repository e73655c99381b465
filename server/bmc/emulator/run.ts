import { EMULATOR_USAGE, parseEmulatorArgs, startEmulators } from "./emulator-cli.js";

/** `metalman bmc-emulator`: starts the BMCs, prints them, serves until SIGINT/SIGTERM. */
export async function runBmcEmulator(argv: string[], env: NodeJS.ProcessEnv): Promise<number | undefined> {
  let flags: Awaited<ReturnType<typeof parseEmulatorArgs>>;
  try {
    flags = await parseEmulatorArgs(argv, env);
  } catch (err) {
    process.stderr.write(
      `metalman bmc-emulator: ${err instanceof Error ? err.message : String(err)}\n\n${EMULATOR_USAGE}`,
    );
    return 2;
  }
  if (flags === "help") {
    process.stdout.write(EMULATOR_USAGE);
    return 0;
  }
  const running = await startEmulators(flags);
  for (const { bmc, url } of running.bmcs) {
    process.stdout.write(
      `${JSON.stringify({ name: bmc.name, url, systemId: bmc.systemId, fingerprint: running.fingerprint })}\n`,
    );
  }
  const stop = () => {
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  return undefined;
}
