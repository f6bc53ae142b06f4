/** The shape of a command, its help text, and parsing its arguments with node:util parseArgs. */
import { parseArgs } from "node:util";
import type { Client } from "@outpost/client";
import type { Config } from "./config.js";
import { UsageError } from "./errors.js";

export interface Option {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** Shown in help: `--env K=V`. */
  value?: string;
  description: string;
}

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

export interface Context extends Io {
  json: boolean;
  /** The configured client; resolving it reads flags, env vars and the profile (see config.ts). */
  client(): Client;
  config(): Config;
  /** Names the environment the command is about, so errors can say what to do with it. */
  about(environment: string): void;
  out(line: string): void;
  /** Progress and notes: stderr, never stdout (which stays the command's output). */
  note(line: string): void;
  /** Ctrl-C: handlers run before exit (cancel a command, close a stream). */
  onInterrupt(handler: () => void | Promise<void>): void;
}

export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  /** Words after `outpost`: "env create". */
  name: string;
  summary: string;
  /** Arguments after the name, for the usage line: "NAME --provider P". */
  args: string;
  description?: string;
  options?: Record<string, Option>;
  /** Takes --json (every read command does; so do writes that answer a record). */
  json?: boolean;
  /** Only reads: no change anywhere (test/e2e/outpost-cli.test.ts runs each with --json). */
  read?: boolean;
  positionals: { min: number; max: number };
  examples?: string[];
  run(ctx: Context, positionals: string[], values: Values): Promise<number | void>;
}

export const GLOBAL_OPTIONS: Record<string, Option> = {
  url: { type: "string", value: "URL", description: "the control plane (default: OUTPOST_URL, then the profile)" },
  token: { type: "string", value: "TOKEN", description: "an API token (default: OUTPOST_TOKEN, then the profile)" },
  profile: { type: "string", value: "FILE", description: "a profile JSON { url, token } (default: OUTPOST_PROFILE, else the nearest .outpost/profile.json)" },
  help: { type: "boolean", short: "h", description: "this help" },
};
const JSON_OPTION: Option = { type: "boolean", description: "print JSON instead of text (stable for scripts)" };

export function optionsOf(c: Command): Record<string, Option> {
  return { ...(c.options ?? {}), ...(c.json ? { json: JSON_OPTION } : {}), ...GLOBAL_OPTIONS };
}

export function parse(c: Command, argv: string[]): { positionals: string[]; values: Values } {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    const options = Object.fromEntries(Object.entries(optionsOf(c)).map(([k, o]) => [k, { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) }]));
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    const takesCommand = /COMMAND/.test(c.args);
    throw new UsageError(
      `${c.name}: ${err instanceof Error ? err.message.replace(/\. To specify a positional.*$/s, "") : String(err)}`,
      takesCommand ? `Put the command after --, e.g. outpost ${c.name} ENV -- ls -la. See outpost ${c.name} --help.` : `See outpost ${c.name} --help.`,
    );
  }
  const values = parsed.values as Values;
  if (values.help) return { positionals: parsed.positionals, values };
  const n = parsed.positionals.length;
  if (n < c.positionals.min || n > c.positionals.max) {
    throw new UsageError(`${c.name}: expected ${c.args || "no arguments"}, got ${n ? parsed.positionals.map((p) => `'${p}'`).join(" ") : "nothing"}`, `Usage: outpost ${c.name} ${c.args}\nSee outpost ${c.name} --help.`);
  }
  return { positionals: parsed.positionals, values };
}

function optionLines(options: Record<string, Option>): string[] {
  const rows = Object.entries(options).map(([name, o]) => [`${o.short ? `-${o.short}, ` : "    "}--${name}${o.value ? ` ${o.value}` : ""}`, `${o.description}${o.multiple ? " (repeatable)" : ""}`] as const);
  const width = Math.max(...rows.map(([l]) => l.length));
  return rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`);
}

export function commandHelp(c: Command): string {
  const own = { ...(c.options ?? {}), ...(c.json ? { json: JSON_OPTION } : {}) };
  return [
    `Usage: outpost ${c.name}${c.args ? ` ${c.args}` : ""} [options]`,
    "",
    c.summary,
    ...(c.description ? ["", c.description] : []),
    ...(Object.keys(own).length ? ["", "Options:", ...optionLines(own)] : []),
    "",
    "Global options:",
    ...optionLines(GLOBAL_OPTIONS),
    ...(c.examples?.length ? ["", "Examples:", ...c.examples.map((e) => `  ${e}`)] : []),
    "",
  ].join("\n");
}

/** Help for a group of commands (`outpost env --help`) or for the whole CLI. */
export function listHelp(title: string, commands: Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [title, "", "Commands:", ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`), ""].join("\n");
}

/** KEY=VALUE pairs of a repeatable option. */
export function pairs(values: string[] | undefined, what: string): Record<string, string> | undefined {
  if (!values?.length) return undefined;
  const out: Record<string, string> = {};
  for (const v of values) {
    const at = v.indexOf("=");
    if (at <= 0) throw new UsageError(`${what}: '${v}' is not KEY=VALUE`);
    out[v.slice(0, at)] = v.slice(at + 1);
  }
  return out;
}

/** A whole number from an option, at least `min` and (when given, as the API's schema has it) at most `max`. */
export function integer(value: string | undefined, what: string, min = 0, max = Infinity): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`${what} must be a whole number${min ? ` of at least ${min}` : ""}, not '${value}'`);
  if (Number(value) > max) throw new UsageError(`${what} may be at most ${max}`);
  return Number(value);
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** A lifetime in seconds from `--ttl`: whole seconds (`3600`) or a number with a unit (`90m`, `12h`, `7d`). */
export function duration(value: string | undefined, what: string, limits: { min: number; max: number }): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)([smhd]?)$/.exec(value);
  const seconds = m ? Number(m[1]) * UNIT_SECONDS[m[2] || "s"]! : NaN;
  if (!(seconds >= limits.min && seconds <= limits.max)) {
    throw new UsageError(`${what} must be seconds or a number with s, m, h or d (e.g. 7d), from ${limits.min} s to ${limits.max} s, not '${value}'`);
  }
  return seconds;
}

export const str = (v: Values[string]): string | undefined => (typeof v === "string" ? v : undefined);
export const list = (v: Values[string]): string[] | undefined => (Array.isArray(v) ? v : undefined);
