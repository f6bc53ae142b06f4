/**
 * `outpost`: finds the command named by the first words of argv, parses its options, runs it with a
 * context (client, output, Ctrl-C), and turns any failure into a message with a hint and an exit code.
 */
import { Client } from "@outpost/client";
import { commandHelp, GLOBAL_OPTIONS, listHelp, parse, type Command, type Context, type Io } from "./command.js";
import { resolveConfig, type Config } from "./config.js";
import { explain, formatError, UsageError } from "./errors.js";
import type { WebSocketFactory } from "@outpost/client";

export interface Runtime extends Io {
  env: Record<string, string | undefined>;
  cwd: string;
  webSocket?: WebSocketFactory;
  /** Registers a Ctrl-C handler for the duration of the command. */
  onSignal(handler: () => void): () => void;
}

const TOP = `outpost: the command line of the Outpost control plane

Usage: outpost COMMAND [ARGS] [options]     outpost COMMAND --help for each command

Configuration, first found wins: --url/--token; the file named by --profile;
OUTPOST_URL/OUTPOST_TOKEN; the profile in OUTPOST_PROFILE, else the nearest .outpost/profile.json
(written by \`npm start\`), else $OUTPOST_HOME/.outpost/profile.json. ENV is an environment's name or id.
Read commands take --json. Errors go to stderr with a hint, and exit non-zero (2: wrong usage).`;

function groups(commands: Command[]): Map<string, Command[]> {
  const out = new Map<string, Command[]>();
  for (const c of commands) {
    const [first] = c.name.split(" ");
    out.set(first!, [...(out.get(first!) ?? []), c]);
  }
  return out;
}

/** Splits argv into the command's name words and everything else (options may come first). */
export function locate(argv: string[], commands: Command[]): { command: Command | null; group: Command[] | null; rest: string[]; words: string[] } {
  const valued = new Set(Object.entries(GLOBAL_OPTIONS).filter(([, o]) => o.type === "string").map(([k]) => `--${k}`));
  const leading: string[] = [];
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith("-") && argv[i] !== "--") {
    leading.push(argv[i]!);
    if (valued.has(argv[i]!) && i + 1 < argv.length) leading.push(argv[++i]!);
    i++;
  }
  const words = argv.slice(i, i + 2);
  const byName = new Map(commands.map((c) => [c.name, c]));
  for (const n of [2, 1]) {
    const name = words.slice(0, n).join(" ");
    const command = byName.get(name);
    if (command && words.length >= n) return { command, group: null, rest: [...leading, ...argv.slice(i + n)], words: words.slice(0, n) };
  }
  const group = words[0] ? groups(commands).get(words[0]) ?? null : null;
  return { command: null, group, rest: [...leading, ...argv.slice(i + (group ? 1 : 0))], words: words.slice(0, group ? 1 : 0) };
}

export async function runCli(argv: string[], rt: Runtime, commands: Command[]): Promise<number> {
  const write = (s: NodeJS.WritableStream, text: string) => void s.write(text);
  const state: { config: Config | null } = { config: null };
  let client: Client | null = null;
  let about: string | undefined;
  let flags: { url?: string; token?: string; profile?: string } = {};
  const interrupts: Array<() => void | Promise<void>> = [];
  try {
    if (argv[0] === "help") argv = [...argv.slice(1), "--help"];
    const found = locate(argv, commands);
    const wantsHelp = found.rest.includes("--help") || found.rest.includes("-h");
    if (!found.command) {
      if (found.group) {
        write(rt.stdout, listHelp(`Usage: outpost ${found.words[0]} SUBCOMMAND [ARGS] [options]`, found.group));
        return wantsHelp ? 0 : 2;
      }
      const unknown = argv.find((a) => !a.startsWith("-"));
      if (unknown === undefined || wantsHelp) {
        write(rt.stdout, `${listHelp(TOP, commands)}\n`);
        return unknown === undefined && !wantsHelp ? 2 : 0;
      }
      throw new UsageError(`'${unknown}' is not an outpost command`, "See `outpost --help` for the list.");
    }
    const command = found.command;
    if (wantsHelp) {
      write(rt.stdout, commandHelp(command));
      return 0;
    }
    const { positionals, values } = parse(command, found.rest);
    flags = { url: values.url as string | undefined, token: values.token as string | undefined, profile: values.profile as string | undefined };
    const ctx: Context = {
      ...rt,
      json: values.json === true,
      config: () => (state.config ??= resolveConfig({ flags, env: rt.env, cwd: rt.cwd })),
      client: () => (client ??= new Client(ctx.config().url, ctx.config().token, { webSocket: rt.webSocket })),
      about: (environment) => void (about = environment),
      out: (line) => write(rt.stdout, `${line}\n`),
      note: (line) => write(rt.stderr, `${line}\n`),
      onInterrupt: (handler) => void interrupts.push(handler),
    };
    const off = rt.onSignal(() => {
      if (interrupts.length === 0) throw new Interrupted();
      for (const h of interrupts.splice(0)) void Promise.resolve(h()).catch(() => undefined);
    });
    try {
      return (await command.run(ctx, positionals, values)) ?? 0;
    } finally {
      off();
    }
  } catch (err) {
    if (err instanceof Interrupted) return 130;
    const explained = explain(err, { url: state.config?.url ?? flags.url, tokenSource: state.config?.source.token, environment: about });
    write(rt.stderr, formatError(explained));
    return explained.exitCode;
  }
}

class Interrupted extends Error {}
