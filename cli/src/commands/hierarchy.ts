import type { Thread } from "@outpost/protocol";
import { integer, str, type Command } from "../command.js";
import { ago, print, table } from "../output.js";

const limit = { limit: { type: "string" as const, value: "N", description: "at most N (default 100, at most 500)" } };
const threadRows = (threads: Thread[]) =>
  table(threads.map((t) => ({ id: t.id, title: t.title ?? "-", objective: t.objectiveId ?? "-", parent: t.parentThreadId ?? "-", created: ago(t.createdAt) })), ["id", "title", "objective", "parent", "created"]);

/** Objectives (what the work is for) and threads (lines of work under one; runs and snapshots name them). */
export const hierarchyCommands: Command[] = [
  {
    name: "objectives create",
    summary: "Create an objective: what a line of work is for",
    args: "TITLE",
    options: { description: { type: "string", short: "d", value: "TEXT", description: "a longer description" } },
    json: true,
    positionals: { min: 1, max: 1 },
    examples: ["outpost objectives create 'make the build green'"],
    async run(ctx, [title], v) {
      const objective = await ctx.client().createObjective({ title: title!, description: str(v.description) });
      print(ctx, { objective }, () => objective.id);
    },
  },
  {
    name: "objectives list",
    summary: "The org's objectives, newest first",
    args: "",
    options: limit,
    json: true,
    read: true,
    positionals: { min: 0, max: 0 },
    async run(ctx, _p, v) {
      const objectives = await ctx.client().listObjectives({ limit: integer(str(v.limit), "--limit", 1) });
      print(ctx, { objectives }, () =>
        objectives.length ? table(objectives.map((o) => ({ id: o.id, title: o.title, created: ago(o.createdAt) })), ["id", "title", "created"]) : ctx.note("no objectives (create one with `outpost objectives create TITLE`)"),
      );
    },
  },
  {
    name: "objectives get",
    summary: "An objective and its threads",
    args: "OBJECTIVE",
    json: true,
    read: true,
    positionals: { min: 1, max: 1 },
    async run(ctx, [id]) {
      const r = await ctx.client().getObjective(id!);
      print(ctx, r, () => [`${r.objective.id}  ${r.objective.title}`, ...(r.objective.description ? [r.objective.description] : []), "", threadRows(r.threads) || "no threads"].join("\n"));
    },
  },
  {
    name: "threads create",
    summary: "Create a thread: under an objective, or branched from another thread",
    args: "",
    options: {
      objective: { type: "string", value: "ID", description: "the objective it works on" },
      parent: { type: "string", value: "ID", description: "the thread it branches from" },
      title: { type: "string", value: "TEXT", description: "its title" },
    },
    json: true,
    positionals: { min: 0, max: 0 },
    examples: ["outpost threads create --objective obj_… --title 'first try'", "outpost runs create local --thread thr_… -- my-agent"],
    async run(ctx, _p, v) {
      const thread = await ctx.client().createThread({ objectiveId: str(v.objective), parentThreadId: str(v.parent), title: str(v.title) });
      print(ctx, { thread }, () => thread.id);
    },
  },
  {
    name: "threads list",
    summary: "Threads, newest first",
    args: "",
    options: { objective: { type: "string", value: "ID", description: "only this objective's" }, ...limit },
    json: true,
    read: true,
    positionals: { min: 0, max: 0 },
    async run(ctx, _p, v) {
      const threads = await ctx.client().listThreads({ objectiveId: str(v.objective), limit: integer(str(v.limit), "--limit", 1) });
      print(ctx, { threads }, () => (threads.length ? threadRows(threads) : ctx.note("no threads (create one with `outpost threads create --objective ID`)")));
    },
  },
  {
    name: "threads get",
    summary: "A thread with its runs and snapshots",
    args: "THREAD",
    json: true,
    read: true,
    positionals: { min: 1, max: 1 },
    async run(ctx, [id]) {
      const r = await ctx.client().getThread(id!);
      print(ctx, r, () =>
        [
          `${r.thread.id}  ${r.thread.title ?? ""}`.trimEnd(),
          `objective ${r.thread.objectiveId ?? "-"}, branched from ${r.thread.parentThreadId ?? "-"}`,
          ...r.runs.map((x) => `run       ${x.id} ${x.state} in ${x.environmentId} (${ago(x.createdAt)})`),
          ...r.snapshots.map((s) => `snapshot  ${s.id} ${s.message || "-"} (${ago(s.createdAt)})`),
        ].join("\n"),
      );
    },
  },
];
