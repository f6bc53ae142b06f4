/**
 * What the agent's and the host's command lines share: the flags both take, strict parsing, usage
 * errors that point at `--help`, and the checks of numbers and log levels.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { LogLevel } from "./log.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** `--url`, `--token`, `--heartbeat-ms`, `--log-level`, `--help`: both commands take them. */
export const COMMON_FLAGS = {
  url: { type: "string" },
  token: { type: "string" },
  "heartbeat-ms": { type: "string" },
  "log-level": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies Options;

type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; strict: true; allowPositionals: false; options: O }>>["values"];

/** Parses strictly (no positionals, no unknown flags); the error names what was wrong. */
export function parseFlags<O extends Options>(argv: string[], options: O): { ok: true; values: Parsed<O> } | { ok: false; error: string } {
  try {
    return { ok: true, values: parseArgs({ args: argv, strict: true, allowPositionals: false, options }).values };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

/** Writes a usage error the way both commands do and returns the usage exit code. */
export function usageError(command: string, exitCode: number): (message: string) => number {
  return (message) => {
    process.stderr.write(`${command}: ${message}\nRun '${command} --help' for usage.\n`);
    return exitCode;
  };
}

/** A positive whole number from a flag, its default when unset, null when it is not one. */
export function positiveInteger(value: string | undefined, fallback: number): number | null {
  const n = Number(value ?? fallback);
  return Number.isInteger(n) && n > 0 ? n : null;
}

export function logLevel(value: string | undefined): LogLevel | null {
  const level = value ?? "info";
  return level === "info" || level === "debug" ? level : null;
}
