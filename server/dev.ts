#!/usr/bin/env node
/** `npm start` entry: the dev launcher (server/app/dev-launcher.ts). Reads argv and env here only. */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseDevArgs, runDevLauncher } from "./app/dev-launcher.js";

const main = path.join(path.dirname(fileURLToPath(import.meta.url)), "main.js");
try {
  const options = parseDevArgs(process.argv.slice(2));
  process.exitCode = await runDevLauncher({
    ...options,
    main,
    env: process.env,
    out: (line) => process.stdout.write(`${line}\n`),
  });
} catch (error) {
  process.stderr.write(`npm start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
