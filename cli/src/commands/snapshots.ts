import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Snapshot, SnapshotImportResult } from "@outpost/protocol";
import { integer, str, type Command, type Context } from "../command.js";
import { UsageError } from "../errors.js";
import { ago, bytes, print, table } from "../output.js";
import { counted, progress } from "../progress.js";

const FORMATS = ["bundle", "tar.gz"] as const;
const STRATEGIES = ["replace", "patch", "branch"] as const;

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], what: string): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`${what}: '${value}' is not one of ${allowed.join(", ")}`);
  return value as T;
}

function describe(s: Snapshot): string {
  const rows: Array<[string, string]> = [
    ["id", s.id],
    ["environment", s.environmentId],
    ["message", s.message || "-"],
    ["commit", s.commit],
    ["files", `${s.files} (${bytes(s.bytes)})`],
    ["thread", s.threadId ?? "-"],
    ["run", s.runId ?? "-"],
    ["parent", s.parentId ?? "-"],
    ["created", `${s.createdAt} (${ago(s.createdAt)})`],
    ["held by", s.environments.join(", ") || "-"],
    ...s.exports.map((e): [string, string] => ["export", `${e.id} ${e.format}${e.baseSnapshotId ? ` (incremental on ${e.baseSnapshotId})` : ""} ${bytes(e.size)} sha256 ${e.sha256}`]),
  ];
  return rows.map(([k, v]) => `${k.padEnd(11)} ${v}`).join("\n");
}

/** What an import or a merge did; conflicts (exit 1) go to stderr with what to do about them. */
function imported(ctx: Context, ref: string, r: SnapshotImportResult): string {
  if (r.conflicts.length) ctx.note(`conflicts (these files keep git's conflict markers in ${ref}'s workspace: edit them, then take a snapshot):\n${r.conflicts.map((c) => `  ${c}`).join("\n")}`);
  return `${r.strategy}: ${r.changed.length} path${r.changed.length === 1 ? "" : "s"} changed in ${ref}${r.preImport ? `; its former state is snapshot ${r.preImport.snapshotId}` : ""}`;
}

/** `snap_…` is a snapshot, anything else an environment's name or id. */
const side = (raw: string) => (/^snap_/.test(raw) ? { snapshotId: raw } : { environment: raw });

/** Downloads an export to a file (beside it, then renamed), checking the sha256 the control plane recorded. */
async function saveExport(ctx: Context, snapshotId: string, exportId: string, file: string): Promise<string> {
  const { body, size, sha256 } = await ctx.client().downloadSnapshotExport(snapshotId, exportId);
  const hash = createHash("sha256");
  const bar = progress(ctx.stderr, `${basename(file)} ←`, size);
  const hashing = counted(body, { add: bar.add, done: bar.done }).pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, c) {
        hash.update(chunk);
        c.enqueue(chunk);
      },
    }),
  );
  const temp = join(dirname(file), `.${basename(file)}.outpost-${process.pid}`);
  try {
    await pipeline(Readable.fromWeb(hashing as import("node:stream/web").ReadableStream<Uint8Array>), createWriteStream(temp));
    const got = hash.digest("hex");
    if (sha256 && got !== sha256) throw new Error(`the download of ${exportId} does not match its sha256 (got ${got}, expected ${sha256}); nothing was written, try again`);
    await rename(temp, file);
    bar.done();
    return got;
  } finally {
    await rm(temp, { force: true });
  }
}

export const snapshotCommands: Command[] = [
  {
    name: "snapshots create",
    summary: "Snapshot an environment's workspace (a commit in its shadow repository; the user's .git is not touched)",
    args: "ENV",
    options: {
      message: { type: "string", short: "m", value: "TEXT", description: "what the snapshot holds" },
      thread: { type: "string", value: "ID", description: "the thread it continues" },
      run: { type: "string", value: "ID", description: "the run it belongs to" },
      export: { type: "string", value: "FORMAT", description: "export it to R2 right away (bundle or tar.gz)" },
    },
    json: true,
    positionals: { min: 1, max: 1 },
    examples: ["outpost snapshots create local -m 'before the refactor'"],
    async run(ctx, [ref], v) {
      ctx.about(ref!);
      const format = oneOf(str(v.export), FORMATS, "--export");
      const s = await ctx.client().createSnapshot({ environment: ref!, message: str(v.message), threadId: str(v.thread), runId: str(v.run), export: format ? { format } : undefined });
      print(ctx, { snapshot: s }, () => `${s.id}: ${s.files} files, commit ${s.commit.slice(0, 12)}${s.exports[0] ? `, exported ${s.exports[0].id}` : ""}`);
    },
  },
  {
    name: "snapshots list",
    summary: "Snapshots, newest first",
    args: "",
    options: {
      env: { type: "string", value: "ENV", description: "taken in this environment" },
      thread: { type: "string", value: "ID", description: "on this thread" },
      limit: { type: "string", value: "N", description: "at most N (default 100, at most 500)" },
    },
    json: true,
    read: true,
    positionals: { min: 0, max: 0 },
    async run(ctx, _p, v) {
      const snapshots = await ctx.client().listSnapshots({ environment: str(v.env), threadId: str(v.thread), limit: integer(str(v.limit), "--limit", 1) });
      print(ctx, { snapshots }, () =>
        snapshots.length
          ? table(snapshots.map((s) => ({ id: s.id, environment: s.environmentId, files: String(s.files), created: ago(s.createdAt), message: s.message })), ["id", "environment", "files", "created", "message"])
          : ctx.note("no snapshots (take one with `outpost snapshots create ENV`)"),
      );
    },
  },
  {
    name: "snapshots get",
    summary: "A snapshot: commit, thread, exports, the environments that hold it",
    args: "SNAPSHOT",
    json: true,
    read: true,
    positionals: { min: 1, max: 1 },
    async run(ctx, [id]) {
      const s = await ctx.client().getSnapshot(id!);
      print(ctx, { snapshot: s }, () => describe(s));
    },
  },
  {
    name: "snapshots export",
    summary: "Export a snapshot to R2 as a git bundle (full, or incremental with --base) or a tar.gz; -o also downloads it",
    args: "SNAPSHOT",
    options: {
      format: { type: "string", value: "FORMAT", description: "bundle (default) or tar.gz" },
      base: { type: "string", value: "SNAPSHOT", description: "incremental: only what is new since this snapshot" },
      output: { type: "string", short: "o", value: "FILE", description: "download the export to FILE (sha256 checked)" },
    },
    json: true,
    positionals: { min: 1, max: 1 },
    examples: ["outpost snapshots export snap_… -o work.bundle", "outpost snapshots export snap_… --format tar.gz -o work.tar.gz"],
    async run(ctx, [id], v) {
      const r = await ctx.client().exportSnapshot(id!, { format: oneOf(str(v.format), FORMATS, "--format"), baseSnapshotId: str(v.base) });
      const file = str(v.output);
      if (file) await saveExport(ctx, id!, r.export.id, file);
      print(ctx, { export: r.export }, () => `${r.export.id}: ${r.export.format}, ${bytes(r.export.size)}, sha256 ${r.export.sha256}${file ? `; saved to ${file}` : ""}`);
    },
  },
  {
    name: "snapshots import",
    summary: "Bring a snapshot into an environment: verified before the workspace changes, then replace, patch or branch",
    args: "SNAPSHOT ENV",
    description: "replace: the workspace becomes the snapshot; patch: a three-way merge (conflicts listed, exit 1); branch: a new thread on which the snapshot is checked out. The workspace's former state is kept as a snapshot first.",
    options: {
      strategy: { type: "string", value: "HOW", description: "replace (default), patch or branch" },
      export: { type: "string", value: "ID", description: "which export to bring (default: the newest full one)" },
    },
    json: true,
    positionals: { min: 2, max: 2 },
    examples: ["outpost snapshots import snap_… review-env --strategy patch"],
    async run(ctx, [id, ref], v) {
      ctx.about(ref!);
      const r = await ctx.client().importSnapshot(id!, { environment: ref!, strategy: oneOf(str(v.strategy), STRATEGIES, "--strategy"), exportId: str(v.export) });
      print(ctx, { import: r.import }, () => imported(ctx, ref!, r.import));
      return r.import.conflicts.length ? 1 : 0;
    },
  },
  {
    name: "snapshots branch",
    summary: "A branch ready for a pull request in an environment's own git repository: outpost/NAME, one commit with the snapshot's files on its HEAD",
    args: "SNAPSHOT",
    description:
      "The work tree, index and HEAD of that repository are not touched; push the branch from there (outpost exec ENV -- git push origin outpost/NAME). " +
      "An existing branch of that name is refused (409); so is a workspace that is not a git checkout (409: git init and a first commit there, or take a patch with `outpost snapshots diff BASE SNAPSHOT --mail`).",
    options: {
      env: { type: "string", value: "ENV", description: "the environment whose repository gets the branch (default: the one the snapshot was taken in)" },
      name: { type: "string", value: "NAME", description: "the branch is outpost/NAME (default: the snapshot's thread, else the snapshot)" },
    },
    json: true,
    positionals: { min: 1, max: 1 },
    examples: ["outpost snapshots branch snap_… --env review-env --name faster-startup"],
    async run(ctx, [id], v) {
      const ref = str(v.env) ?? (await ctx.client().getSnapshot(id!)).environmentId;
      ctx.about(ref);
      const r = await ctx.client().branchSnapshot(id!, { environment: ref, name: str(v.name) });
      const b = r.branch;
      print(ctx, { branch: b }, () => `${b.branch} in ${ref}: ${b.commit.slice(0, 12)} on ${b.base.slice(0, 12)}, ${b.changed.length} file${b.changed.length === 1 ? "" : "s"} changed`);
    },
  },
  {
    name: "snapshots diff",
    summary: "The patch between two snapshots or environments (or its --stat, or git format-patch mail)",
    args: "FROM TO",
    description: "FROM and TO are each a snapshot id (snap_…) or an environment's name or id; an environment is compared as it is now. --json prints { patch }.",
    options: {
      stat: { type: "boolean", description: "only the changed files and line counts" },
      mail: { type: "boolean", description: "git format-patch output, for git am" },
    },
    json: true,
    read: true,
    positionals: { min: 2, max: 2 },
    examples: ["outpost snapshots diff snap_… local", "outpost snapshots diff local review-env --stat"],
    async run(ctx, [from, to], v) {
      if (v.stat === true && v.mail === true) throw new UsageError("snapshots diff: give at most one of --stat and --mail");
      const patch = await ctx.client().diffSnapshots({ from: side(from!), to: side(to!), format: v.stat === true ? "stat" : v.mail === true ? "format-patch" : "patch" });
      print(ctx, { patch }, () => void ctx.stdout.write(patch));
    },
  },
  {
    name: "snapshots merge",
    summary: "Merge a snapshot's (or an environment's) changes into an environment as a patch; conflicts exit 1",
    args: "FROM ENV",
    description: "FROM is a snapshot id (snap_…) or an environment's name or id. A three-way merge: conflicting files keep git's conflict markers and are listed.",
    json: true,
    positionals: { min: 2, max: 2 },
    examples: ["outpost snapshots merge snap_… review-env", "outpost snapshots merge feature-env main-env"],
    async run(ctx, [from, ref]) {
      ctx.about(ref!);
      const r = await ctx.client().mergeSnapshot({ into: ref!, from: side(from!) });
      print(ctx, { import: r.import }, () => imported(ctx, ref!, r.import));
      return r.import.conflicts.length ? 1 : 0;
    },
  },
];
