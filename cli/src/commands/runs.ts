import type { Run } from "@outpost/protocol";
import { integer, list, pairs, str, type Command } from "../command.js";
import { ago, print, table } from "../output.js";

function describe(r: Run): string {
  const rows: Array<[string, string]> = [
    ["id", r.id],
    ["state", r.state],
    ["environment", r.environmentId],
    ["command", r.command.join(" ")],
    ["pid", r.pid === null ? "-" : String(r.pid)],
    ["exit", r.exitCode !== null ? String(r.exitCode) : r.signal ?? "-"],
    ["error", r.error ?? "-"],
    ["thread", r.threadId ?? "-"],
    ["objective", r.objectiveId ?? "-"],
    ["created", `${r.createdAt} (${ago(r.createdAt)})`],
    ["started", r.startedAt ?? "-"],
    ["ended", r.endedAt ?? "-"],
    ["output", `${r.outputChunks} pieces (outpost logs ENV shows them as run.output events)`],
  ];
  return rows.map(([k, v]) => `${k.padEnd(11)} ${v}`).join("\n");
}

const brief = (r: Run) => `${r.id}: ${r.state}`;

export const runCommands: Command[] = [
  {
    name: "runs list",
    summary: "An environment's runs, newest first",
    args: "ENV",
    options: { limit: { type: "string", value: "N", description: "at most N (default 100, at most 500)" } },
    json: true,
    read: true,
    positionals: { min: 1, max: 1 },
    async run(ctx, [ref], v) {
      ctx.about(ref!);
      const runs = await ctx.client().listRuns(ref!, { limit: integer(str(v.limit), "--limit", 1) });
      print(ctx, { runs }, () =>
        runs.length
          ? table(runs.map((r) => ({ id: r.id, state: r.state, exit: r.exitCode === null ? r.signal ?? "" : String(r.exitCode), created: ago(r.createdAt), command: r.command.join(" ") })), ["id", "state", "exit", "created", "command"])
          : ctx.note("no runs (start one with `outpost runs create ENV -- COMMAND`)"),
      );
    },
  },
  {
    name: "runs get",
    summary: "A run: state, exit code, times",
    args: "RUN",
    json: true,
    read: true,
    positionals: { min: 1, max: 1 },
    async run(ctx, [id]) {
      const r = await ctx.client().getRun(id!);
      print(ctx, { run: r }, () => describe(r));
    },
  },
  {
    name: "runs create",
    summary: "Start a long-lived agent process (a run) in an environment's workspace",
    args: "ENV -- COMMAND [ARG...]",
    description: "Its output and exit are recorded in the environment's event log (outpost logs ENV -f follows them) and outlive disconnects.",
    options: {
      message: { type: "string", short: "m", value: "TEXT", description: "written to its stdin and set as OUTPOST_RUN_MESSAGE" },
      env: { type: "string", short: "e", multiple: true, value: "K=V", description: "an environment variable for it" },
      thread: { type: "string", value: "ID", description: "the thread it belongs to" },
      objective: { type: "string", value: "ID", description: "the objective it works on" },
    },
    json: true,
    positionals: { min: 2, max: Infinity },
    examples: ["outpost runs create local -m 'fix the failing test' -- claude -p"],
    async run(ctx, [ref, ...command], v) {
      ctx.about(ref!);
      const r = await ctx.client().createRun(ref!, { agent: { command, env: pairs(list(v.env), "--env") }, message: str(v.message), threadId: str(v.thread), objectiveId: str(v.objective) });
      print(ctx, { run: r }, () => brief(r));
    },
  },
  {
    name: "runs cancel",
    summary: "Cancel a run: SIGTERM to its process group",
    args: "RUN",
    json: true,
    positionals: { min: 1, max: 1 },
    async run(ctx, [id]) {
      const r = await ctx.client().cancelRun(id!);
      print(ctx, { run: r }, () => brief(r));
    },
  },
];
