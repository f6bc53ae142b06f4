import { constants } from "node:os";
import type { ExecBody } from "@outpost/protocol";
import { integer, list, pairs, str, type Command, type Context } from "../command.js";
import { json } from "../output.js";
import { UsageError } from "../errors.js";

/** The CLI's exit for a finished command: its own code, 128+N for signal N, 124 on timeout (as timeout(1)). */
export function exitCodeOf(r: { exitCode: number | null; signal?: string | null; timedOut?: boolean }): number {
  if (r.timedOut) return 124;
  if (r.exitCode !== null) return r.exitCode;
  const n = r.signal ? (constants.signals as Record<string, number>)[r.signal] : undefined;
  return n ? 128 + n : 1;
}

/** The API takes stdin as at most 16 MiB of base64: 12 MiB of bytes. */
const MAX_STDIN = 12 * 1024 * 1024;

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if ((size += b.length) > MAX_STDIN) throw new UsageError("exec -i: stdin is larger than 12 MiB", "Copy it into the workspace with `outpost put ENV - PATH` and have the command read the file.");
    parts.push(b);
  }
  return Buffer.concat(parts);
}

export const execCommand: Command = {
  name: "exec",
  summary: "Run a command in an environment; its output streams, its exit code becomes outpost's",
  args: "ENV -- COMMAND [ARG...]",
  description:
    "The command runs as argv in the workspace, never through a shell unless --shell is given (then COMMAND is one string).\nExit status: the command's own; 128+N when a signal N killed it; 124 when it timed out; 1 when it could not run (the reason on stderr). Ctrl-C cancels it.",
  options: {
    cwd: { type: "string", value: "DIR", description: "working directory, relative to the workspace" },
    env: { type: "string", short: "e", multiple: true, value: "K=V", description: "an environment variable for the command" },
    timeout: { type: "string", value: "MS", description: "kill it after MS milliseconds (default 60000, a minute; at most 86400000, a day)" },
    shell: { type: "boolean", description: "run COMMAND (one string) with /bin/sh -c" },
    stdin: { type: "boolean", short: "i", description: "send outpost's stdin to the command (read fully first, at most 12 MiB)" },
  },
  json: true,
  positionals: { min: 2, max: Infinity },
  examples: ["outpost exec local -- ls -la", "outpost exec local --shell -- 'npm test | tail -5'", "echo hi | outpost exec local -i -- wc -c"],
  async run(ctx, [ref, ...command], v) {
    ctx.about(ref!);
    const body: ExecBody = {
      command,
      cwd: str(v.cwd),
      env: pairs(list(v.env), "--env"),
      timeoutMs: integer(str(v.timeout), "--timeout", 1),
      shell: v.shell === true ? true : undefined,
      stdin: v.stdin === true ? (await readAll(ctx.stdin)).toString("base64") : undefined,
    };
    if (ctx.json) {
      const r = await ctx.client().exec(ref!, body);
      ctx.out(json(r));
      return exitCodeOf(r);
    }
    return streamed(ctx, ref!, body);
  },
};

async function streamed(ctx: Context, ref: string, body: ExecBody): Promise<number> {
  const client = ctx.client();
  const abort = new AbortController();
  let execId: string | null = null;
  let interrupted = false;
  ctx.onInterrupt(async () => {
    interrupted = true;
    if (execId) await client.cancelExec(ref, execId).catch(() => abort.abort());
    else abort.abort();
  });
  for await (const line of client.execStream(ref, body, { signal: abort.signal })) {
    switch (line.type) {
      case "started":
        execId = line.execId;
        break;
      case "stdout":
        ctx.stdout.write(line.data);
        break;
      case "stderr":
        ctx.stderr.write(line.data);
        break;
      case "exit":
        if (line.timedOut) ctx.note(`outpost: the command timed out after ${body.timeoutMs} ms and was killed`);
        return interrupted && line.cancelled ? 130 : exitCodeOf(line);
      case "error":
        ctx.note(`outpost: the command could not run: ${line.message} (${line.code})`);
        return 1;
    }
  }
  ctx.note("outpost: the exec stream ended without an exit status");
  return 1;
}
