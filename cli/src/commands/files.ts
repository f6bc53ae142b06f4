import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { integer, str, type Command, type Context } from "../command.js";
import { UsageError } from "../errors.js";
import { bytes, print, table } from "../output.js";
import { counted, progress } from "../progress.js";

const REMOTE = /^([a-z0-9][a-z0-9-]*|env_[a-z0-9]{20}):(.*)$/;

/** `ENV:PATH` is a path in an environment; anything else is a local path. */
export function location(arg: string): { env: string; path: string } | { local: string } {
  const m = REMOTE.exec(arg);
  return m && !/^[a-zA-Z]:[\\/]/.test(arg) ? { env: m[1]!, path: m[2] || "." } : { local: arg };
}

async function upload(ctx: Context, ref: string, remote: string, local: string): Promise<number> {
  const client = ctx.client();
  if (local === "-") {
    const parts: Buffer[] = [];
    for await (const chunk of ctx.stdin) parts.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    return (await client.writeFile(ref, remote, Buffer.concat(parts))).size;
  }
  const info = await stat(local).catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read ${local}: ${err.code ?? err.message}`);
  });
  if (!info.isFile()) throw new UsageError(`${local} is not a file`, "Directories are not copied; archive them first (tar) and copy the archive.");
  const bar = progress(ctx.stderr, `${basename(local)} →`, info.size);
  const stream = counted(Readable.toWeb(createReadStream(local)) as ReadableStream<Uint8Array>, bar);
  const r = await client.writeFile(ref, remote, { stream, size: info.size });
  bar.done();
  return r.size;
}

/** Writes beside the target and renames, so the local file is never half written. */
async function download(ctx: Context, ref: string, remote: string, local: string | null): Promise<void> {
  const { body, size } = await ctx.client().readFileStream(ref, remote);
  // Printing to a terminal: the bar would tangle with the file's own text.
  const bar = progress(ctx.stderr, `${basename(remote)} ←`, size, { enabled: !(local === null && ctx.stdout.isTTY) });
  const source = Readable.fromWeb(counted(body, bar) as import("node:stream/web").ReadableStream<Uint8Array>);
  if (local === null) {
    await pipeline(source, ctx.stdout as Writable, { end: false });
    bar.done();
    return;
  }
  const temp = join(dirname(local), `.${basename(local)}.outpost-${process.pid}`);
  try {
    await pipeline(source, createWriteStream(temp, { mode: 0o644 }));
    await rename(temp, local);
  } finally {
    await rm(temp, { force: true });
  }
  bar.done();
}

export const fileCommands: Command[] = [
  {
    name: "cat",
    summary: "Print a file of an environment's workspace (streamed)",
    args: "ENV PATH",
    positionals: { min: 2, max: 2 },
    examples: ["outpost cat local notes/todo.md", "outpost cat local build/app.tar > app.tar"],
    async run(ctx, [ref, path]) {
      ctx.about(ref!);
      await download(ctx, ref!, path!, null);
    },
  },
  {
    name: "put",
    summary: "Write a local file (or stdin, '-') to a path in the workspace, replacing it whole",
    args: "ENV LOCAL PATH",
    positionals: { min: 3, max: 3 },
    examples: ["outpost put local ./report.pdf out/report.pdf", "echo hello | outpost put local - notes/hello.txt"],
    async run(ctx, [ref, local, path]) {
      ctx.about(ref!);
      const size = await upload(ctx, ref!, path!, local!);
      ctx.note(`wrote ${bytes(size)} to ${ref}:${path}`);
    },
  },
  {
    name: "cp",
    summary: "Copy a file between this machine and an environment, or within one (ENV:PATH names a workspace path)",
    args: "SRC DST",
    options: { overwrite: { type: "boolean", description: "within one environment: replace DST if it exists" } },
    positionals: { min: 2, max: 2 },
    examples: ["outpost cp ./data.csv local:input/data.csv", "outpost cp local:out/result.json .", "outpost cp local:a.txt local:b.txt"],
    async run(ctx, [src, dst], v) {
      const from = location(src!);
      const to = location(dst!);
      if ("local" in from && "local" in to) throw new UsageError("cp: neither SRC nor DST names an environment", "Write a workspace path as ENV:PATH, e.g. outpost cp ./a.txt local:a.txt.");
      if ("env" in from && "env" in to) {
        ctx.about(from.env);
        if (from.env === to.env) {
          await ctx.client().copyFile(from.env, from.path, to.path, { overwrite: v.overwrite === true });
          return ctx.note(`copied ${src} to ${dst}`);
        }
        const { size } = await ctx.client().statFile(from.env, from.path);
        const { body } = await ctx.client().readFileStream(from.env, from.path);
        await ctx.client().writeFile(to.env, to.path, { stream: body, size });
        return ctx.note(`copied ${bytes(size)} from ${src} to ${dst}`);
      }
      if ("env" in to && "local" in from) {
        ctx.about(to.env);
        const path = to.path === "." || to.path.endsWith("/") ? join(to.path, basename(from.local)) : to.path;
        const size = await upload(ctx, to.env, path, from.local);
        return ctx.note(`wrote ${bytes(size)} to ${to.env}:${path}`);
      }
      if ("env" in from && "local" in to) {
        ctx.about(from.env);
        const isDir = await stat(to.local).then((s) => s.isDirectory(), () => false);
        const local = isDir ? join(to.local, basename(from.path)) : to.local;
        await download(ctx, from.env, from.path, local);
        return ctx.note(`wrote ${local}`);
      }
    },
  },
  {
    name: "rm",
    summary: "Delete a path in an environment's workspace",
    args: "ENV PATH",
    options: { recursive: { type: "boolean", short: "r", description: "a directory and everything in it" } },
    positionals: { min: 2, max: 2 },
    async run(ctx, [ref, path], v) {
      ctx.about(ref!);
      const r = await ctx.client().deleteFile(ref!, path!, { recursive: v.recursive === true });
      if (!r.deleted) ctx.note(`${path} did not exist`);
    },
  },
  {
    name: "ls",
    summary: "List a directory of an environment's workspace",
    args: "ENV [PATH]",
    options: {
      recursive: { type: "boolean", short: "r", description: "the whole tree" },
      max: { type: "string", value: "N", description: "at most N entries (default 10000, at most 100000)" },
    },
    json: true,
    read: true,
    positionals: { min: 1, max: 2 },
    async run(ctx, [ref, path], v) {
      ctx.about(ref!);
      const r = await ctx.client().listFiles(ref!, path ?? ".", { recursive: v.recursive === true || undefined, maxEntries: integer(str(v.max), "--max", 1) });
      print(ctx, r, () => {
        const rows = r.entries.map((e) => ({ type: e.type === "directory" ? "dir" : e.type, size: e.type === "directory" ? "-" : bytes(e.size), modified: new Date(e.mtimeMs).toISOString().slice(0, 19).replace("T", " "), path: e.path }));
        return table(rows, ["type", "size", "modified", "path"]);
      });
      if (!ctx.json && r.truncated) ctx.note("(truncated: give --max N for more)");
    },
  },
  {
    name: "diff",
    summary: "What changed in the workspace: against git HEAD, or against the workspace as the agent first saw it",
    args: "ENV",
    options: { "max-file-bytes": { type: "string", value: "N", description: "skip the text of files larger than N bytes (default 262144, 256 KiB; at most 16 MiB)" } },
    json: true,
    read: true,
    positionals: { min: 1, max: 1 },
    async run(ctx, [ref], v) {
      ctx.about(ref!);
      const r = await ctx.client().diff(ref!, { maxFileBytes: integer(str(v["max-file-bytes"]), "--max-file-bytes", 1) });
      print(ctx, r, () => {
        if (r.files.length === 0) return ctx.note(`no changes (against ${r.base === "git" ? "git HEAD" : "the workspace as first seen"})`);
        return r.files.flatMap((f) => [`${f.status} ${f.from ? `${f.from} → ` : ""}${f.path}${f.binary ? " (binary)" : ""}${f.truncated ? " (truncated)" : ""}`, ...(f.diff ? [f.diff.replace(/\n$/, "")] : [])]).join("\n");
      });
    },
  },
];
