import { pino, type Logger } from "pino";

export type { Logger };

/** The service logger: structured JSON through pino, level from `LOG_LEVEL` (default `info`). */
export function createLogger(opts: { level?: string; name?: string } = {}): Logger {
  return pino({ name: opts.name ?? "sluice", level: opts.level ?? process.env.LOG_LEVEL ?? "info" });
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = pino({ level: "silent" });
