import { type Logger, pino } from "pino";

/**
 * One pino logger for the whole process (Fastify uses it too). JSON lines on stdout, so
 * journald, `jq` and the tests all read the same format. BMC credentials and tokens must
 * never reach it: the redact list is the last line of defence, not the first.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "metalman" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ["password", "*.password", "token", "*.token", "req.headers.authorization", "headers.authorization"],
      censor: "[redacted]",
    },
  });
}
