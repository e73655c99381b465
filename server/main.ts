#!/usr/bin/env node
/**
 * Entry point: the only module that reads argv and the environment. Everything else gets
 * its configuration passed in, so it can be tested and composed without global state.
 */
import { runCli } from "./app/cli.js";

runCli(process.argv.slice(2), process.env).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`metalman: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
