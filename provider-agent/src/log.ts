/**
 * One line per event on stderr, ISO time first. Secrets handed to the logger never reach the output
 * (the array is read on every line, so secrets pushed onto it later are hidden too).
 */
export type LogLevel = "info" | "debug";

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  debug(message: string): void;
}

export function createLogger(
  level: LogLevel,
  secrets: readonly string[] = [],
  write: (line: string) => void = (line) => void process.stderr.write(line),
): Logger {
  // Read on every line: a caller may add a secret later (a renewed agent token).
  const emit = (tag: string, message: string) => {
    let text = message.replace(/[\r\n]+/g, " ");
    for (const secret of secrets) if (secret.length > 0) text = text.split(secret).join("[redacted]");
    write(`${new Date().toISOString()} ${tag} ${text}\n`);
  };
  return {
    info: (m) => emit("info", m),
    warn: (m) => emit("warn", m),
    error: (m) => emit("error", m),
    debug: (m) => {
      if (level === "debug") emit("debug", m);
    },
  };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {}, debug() {} };
